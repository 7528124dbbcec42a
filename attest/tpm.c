/* tpm: the host TPM through tpm2-tss ESAPI, any TCTI. Enrolment creates two
 * persistent keys under the owner's storage primary key: a P-256 ECDH key
 * whose only authorisation is PolicyPCR over the host's measured PCRs (so a
 * host that booted something else cannot use it), and a restricted P-256
 * ECDSA attestation key that signs quotes. */
#include <stdlib.h>
#include <string.h>

#include <tss2/tss2_esys.h>
#include <tss2/tss2_rc.h>
#include <tss2/tss2_tctildr.h>

#include "attest/internal.h"
#include "base/base.h"

struct smg_tpm {
	TSS2_TCTI_CONTEXT *tcti;
	ESYS_CONTEXT *ectx;
};

int attest_tss_err(const char *what, TSS2_RC rc)
{
	smg_err("tpm: %s failed: %s (0x%x)", what, Tss2_RC_Decode(rc), (unsigned)rc);
	return SMG_ERR_TPM;
}

int smg_tpm_open(const char *tcti, struct smg_tpm **out)
{
	struct smg_tpm *t;
	TSS2_RC rc;

	*out = NULL;
	if (tcti == NULL || *tcti == '\0')
		return SMG_ERR_INVAL;
	/* tpm2-tss prints every TPM error itself; we log them once, here. */
	setenv("TSS2_LOG", "all+none", 0);
	if ((t = calloc(1, sizeof(*t))) == NULL)
		return SMG_ERR_NOMEM;
	rc = Tss2_TctiLdr_Initialize(tcti, &t->tcti);
	if (rc != TSS2_RC_SUCCESS) {
		smg_err("tpm: cannot open TCTI '%s': %s", tcti, Tss2_RC_Decode(rc));
		free(t);
		return SMG_ERR_TPM;
	}
	rc = Esys_Initialize(&t->ectx, t->tcti, NULL);
	if (rc != TSS2_RC_SUCCESS) {
		attest_tss_err("Esys_Initialize", rc);
		Tss2_TctiLdr_Finalize(&t->tcti);
		free(t);
		return SMG_ERR_TPM;
	}
	*out = t;
	return SMG_OK;
}

void smg_tpm_close(struct smg_tpm *t)
{
	if (t == NULL)
		return;
	Esys_Finalize(&t->ectx);
	Tss2_TctiLdr_Finalize(&t->tcti);
	free(t);
}

static void pcr_select(uint32_t mask, TPML_PCR_SELECTION *sel)
{
	memset(sel, 0, sizeof(*sel));
	sel->count = 1;
	sel->pcrSelections[0].hash = TPM2_ALG_SHA256;
	sel->pcrSelections[0].sizeofSelect = 3;
	for (unsigned i = 0; i < SMG_PCR_COUNT; i++)
		if (mask & (1u << i))
			sel->pcrSelections[0].pcrSelect[i / 8] |=
			    (uint8_t)(1u << (i % 8));
}

static uint32_t selection_mask(const TPML_PCR_SELECTION *sel)
{
	uint32_t m = 0;

	for (UINT32 k = 0; k < sel->count && k < TPM2_NUM_PCR_BANKS; k++) {
		const TPMS_PCR_SELECTION *s = &sel->pcrSelections[k];
		if (s->hash != TPM2_ALG_SHA256)
			continue;
		for (unsigned i = 0; i < s->sizeofSelect && i < 3; i++)
			m |= (uint32_t)s->pcrSelect[i] << (8 * i);
	}
	return m;
}

int smg_tpm_read_pcrs(struct smg_tpm *t, uint32_t mask,
		      uint8_t vals[SMG_PCR_COUNT][SMG_PCR_LEN])
{
	uint32_t left = mask & SMG_PCR_MASK_ALL;

	/* The TPM answers at most eight digests per call: ask again for the
	 * rest until every requested PCR came back. */
	while (left != 0) {
		TPML_PCR_SELECTION sel, *got = NULL;
		TPML_DIGEST *dig = NULL;
		uint32_t got_mask, counter;
		unsigned d = 0;
		TSS2_RC rc;

		pcr_select(left, &sel);
		rc = Esys_PCR_Read(t->ectx, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
				   &sel, &counter, &got, &dig);
		if (rc != TSS2_RC_SUCCESS)
			return attest_tss_err("PCR_Read", rc);
		got_mask = selection_mask(got) & left;
		for (unsigned i = 0; i < SMG_PCR_COUNT && d < dig->count; i++) {
			if (!(got_mask & (1u << i)))
				continue;
			if (dig->digests[d].size != SMG_PCR_LEN) {
				Esys_Free(got);
				Esys_Free(dig);
				smg_err("tpm: PCR %u has a %u-byte digest", i,
					dig->digests[d].size);
				return SMG_ERR_TPM;
			}
			memcpy(vals[i], dig->digests[d].buffer, SMG_PCR_LEN);
			d++;
		}
		Esys_Free(got);
		Esys_Free(dig);
		if (got_mask == 0) {
			smg_err("tpm: the SHA-256 bank lacks PCRs 0x%06x", left);
			return SMG_ERR_TPM;
		}
		left &= ~got_mask;
	}
	return SMG_OK;
}

/* PolicyPCR(mask) at the current PCR values, in a session of type. */
static int pcr_policy_session(struct smg_tpm *t, TPM2_SE type, uint32_t mask,
			      ESYS_TR *sess)
{
	TPMT_SYM_DEF sym = {.algorithm = TPM2_ALG_NULL};
	TPM2B_DIGEST none = {.size = 0};
	TPML_PCR_SELECTION sel;
	TSS2_RC rc;

	*sess = ESYS_TR_NONE;
	rc = Esys_StartAuthSession(t->ectx, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
				   ESYS_TR_NONE, ESYS_TR_NONE, NULL, type, &sym,
				   TPM2_ALG_SHA256, sess);
	if (rc != TSS2_RC_SUCCESS)
		return attest_tss_err("StartAuthSession", rc);
	pcr_select(mask, &sel);
	rc = Esys_PolicyPCR(t->ectx, *sess, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
			    &none, &sel);
	if (rc != TSS2_RC_SUCCESS) {
		Esys_FlushContext(t->ectx, *sess);
		*sess = ESYS_TR_NONE;
		return attest_tss_err("PolicyPCR", rc);
	}
	return SMG_OK;
}

/* The authPolicy a key needs to be usable only at today's PCR values. */
static int pcr_policy_digest(struct smg_tpm *t, uint32_t mask, TPM2B_DIGEST *out)
{
	TPM2B_DIGEST *d = NULL;
	ESYS_TR sess;
	TSS2_RC rc;
	int r;

	if ((r = pcr_policy_session(t, TPM2_SE_TRIAL, mask, &sess)) != 0)
		return r;
	rc = Esys_PolicyGetDigest(t->ectx, sess, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
				  &d);
	Esys_FlushContext(t->ectx, sess);
	if (rc != TSS2_RC_SUCCESS)
		return attest_tss_err("PolicyGetDigest", rc);
	*out = *d;
	Esys_Free(d);
	return SMG_OK;
}

static void ecc_template(TPM2B_PUBLIC *pub, TPMA_OBJECT attrs)
{
	memset(pub, 0, sizeof(*pub));
	pub->publicArea.type = TPM2_ALG_ECC;
	pub->publicArea.nameAlg = TPM2_ALG_SHA256;
	pub->publicArea.objectAttributes =
	    attrs | TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
	    TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_NODA;
	pub->publicArea.parameters.eccDetail.symmetric.algorithm = TPM2_ALG_NULL;
	pub->publicArea.parameters.eccDetail.scheme.scheme = TPM2_ALG_NULL;
	pub->publicArea.parameters.eccDetail.curveID = TPM2_ECC_NIST_P256;
	pub->publicArea.parameters.eccDetail.kdf.scheme = TPM2_ALG_NULL;
}

/* The owner's ECC storage primary key (TCG template: deterministic, so
 * recreating it yields the same key). */
static int create_primary(struct smg_tpm *t, ESYS_TR *primary)
{
	TPM2B_SENSITIVE_CREATE sens = {0};
	TPML_PCR_SELECTION none = {0};
	TPM2B_DATA outside = {0};
	TPM2B_PUBLIC pub;
	TSS2_RC rc;

	ecc_template(&pub, TPMA_OBJECT_USERWITHAUTH | TPMA_OBJECT_RESTRICTED |
			       TPMA_OBJECT_DECRYPT);
	pub.publicArea.parameters.eccDetail.symmetric.algorithm = TPM2_ALG_AES;
	pub.publicArea.parameters.eccDetail.symmetric.keyBits.aes = 128;
	pub.publicArea.parameters.eccDetail.symmetric.mode.aes = TPM2_ALG_CFB;
	rc = Esys_CreatePrimary(t->ectx, ESYS_TR_RH_OWNER, ESYS_TR_PASSWORD, ESYS_TR_NONE,
				ESYS_TR_NONE, &sens, &pub, &outside, &none, primary, NULL,
				NULL, NULL, NULL);
	if (rc != TSS2_RC_SUCCESS)
		return attest_tss_err("CreatePrimary (storage key)", rc);
	return SMG_OK;
}

/* Create tmpl under primary, load it and make it persistent at handle. */
static int create_persistent(struct smg_tpm *t, ESYS_TR primary, const TPM2B_PUBLIC *tmpl,
			     TPM2_HANDLE handle, const char *what)
{
	TPM2B_SENSITIVE_CREATE sens = {0};
	TPML_PCR_SELECTION none = {0};
	TPM2B_DATA outside = {0};
	TPM2B_PRIVATE *priv = NULL;
	TPM2B_PUBLIC *pub = NULL;
	ESYS_TR obj = ESYS_TR_NONE, pers = ESYS_TR_NONE;
	TSS2_RC rc;
	int r = SMG_ERR_TPM;

	rc = Esys_Create(t->ectx, primary, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE,
			 &sens, tmpl, &outside, &none, &priv, &pub, NULL, NULL, NULL);
	if (rc != TSS2_RC_SUCCESS) {
		smg_err("tpm: creating the %s failed", what);
		return attest_tss_err("Create", rc);
	}
	rc = Esys_Load(t->ectx, primary, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE,
		       priv, pub, &obj);
	if (rc != TSS2_RC_SUCCESS) {
		attest_tss_err("Load", rc);
		goto out;
	}
	rc = Esys_EvictControl(t->ectx, ESYS_TR_RH_OWNER, obj, ESYS_TR_PASSWORD,
			       ESYS_TR_NONE, ESYS_TR_NONE, handle, &pers);
	if (rc != TSS2_RC_SUCCESS) {
		attest_tss_err("EvictControl (persist)", rc);
		goto out;
	}
	Esys_TR_Close(t->ectx, &pers);
	r = SMG_OK;
out:
	if (obj != ESYS_TR_NONE)
		Esys_FlushContext(t->ectx, obj);
	Esys_Free(priv);
	Esys_Free(pub);
	return r;
}

/* ESYS_TR for a persistent handle, or SMG_ERR_NOT_FOUND. */
static int persistent_tr(struct smg_tpm *t, TPM2_HANDLE handle, ESYS_TR *tr)
{
	TSS2_RC rc;

	rc = Esys_TR_FromTPMPublic(t->ectx, handle, ESYS_TR_NONE, ESYS_TR_NONE,
				   ESYS_TR_NONE, tr);
	if (rc != TSS2_RC_SUCCESS) {
		smg_debug("tpm: no object at 0x%08x: %s", handle, Tss2_RC_Decode(rc));
		*tr = ESYS_TR_NONE;
		return SMG_ERR_NOT_FOUND;
	}
	return SMG_OK;
}

static int evict(struct smg_tpm *t, TPM2_HANDLE handle)
{
	ESYS_TR tr, none;
	TSS2_RC rc;

	if (persistent_tr(t, handle, &tr) != 0)
		return SMG_OK;
	rc = Esys_EvictControl(t->ectx, ESYS_TR_RH_OWNER, tr, ESYS_TR_PASSWORD,
			       ESYS_TR_NONE, ESYS_TR_NONE, handle, &none);
	/* ESAPI keeps the evicted object's TR; drop it or a new key at the same
	 * handle cannot be looked up again in this context. */
	Esys_TR_Close(t->ectx, &tr);
	if (rc != TSS2_RC_SUCCESS)
		return attest_tss_err("EvictControl (remove)", rc);
	return SMG_OK;
}

static void point_out(const TPMS_ECC_POINT *p, uint8_t out[SMG_P256_POINT_LEN])
{
	memset(out, 0, SMG_P256_POINT_LEN);
	out[0] = 0x04;
	/* right-align: a TPM may drop leading zero bytes of a coordinate */
	if (p->x.size <= SMG_P256_COORD_LEN)
		memcpy(out + 1 + SMG_P256_COORD_LEN - p->x.size, p->x.buffer, p->x.size);
	if (p->y.size <= SMG_P256_COORD_LEN)
		memcpy(out + 1 + 2 * SMG_P256_COORD_LEN - p->y.size, p->y.buffer,
		       p->y.size);
}

static int read_public(struct smg_tpm *t, TPM2_HANDLE handle, TPM2B_PUBLIC **pub)
{
	ESYS_TR tr;
	TSS2_RC rc;

	if (persistent_tr(t, handle, &tr) != 0)
		return SMG_ERR_NOT_FOUND;
	rc = Esys_ReadPublic(t->ectx, tr, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, pub,
			     NULL, NULL);
	Esys_TR_Close(t->ectx, &tr);
	if (rc != TSS2_RC_SUCCESS)
		return attest_tss_err("ReadPublic", rc);
	if ((*pub)->publicArea.type != TPM2_ALG_ECC ||
	    (*pub)->publicArea.parameters.eccDetail.curveID != TPM2_ECC_NIST_P256) {
		Esys_Free(*pub);
		*pub = NULL;
		smg_err("tpm: handle 0x%08x holds something other than a P-256 key; "
			"re-run tpm-enroll --force",
			handle);
		return SMG_ERR_TPM;
	}
	return SMG_OK;
}

int smg_tpm_load_keys(struct smg_tpm *t, uint32_t pcr_mask, struct smg_tpm_keys *out)
{
	TPM2B_PUBLIC *ecdh = NULL, *ak = NULL;
	TPM2B_DIGEST want;
	int r;

	memset(out, 0, sizeof(*out));
	if ((r = read_public(t, SMG_TPM_HANDLE_ECDH, &ecdh)) != 0 ||
	    (r = read_public(t, SMG_TPM_HANDLE_AK, &ak)) != 0)
		goto out;
	point_out(&ecdh->publicArea.unique.ecc, out->ecdh_pub);
	point_out(&ak->publicArea.unique.ecc, out->ak_pub);
	out->pcr_mask = pcr_mask;
	if ((r = smg_tpm_read_pcrs(t, pcr_mask, out->pcr)) != 0 ||
	    (r = pcr_policy_digest(t, pcr_mask, &want)) != 0)
		goto out;
	out->pcrs_match =
	    want.size == ecdh->publicArea.authPolicy.size &&
	    memcmp(want.buffer, ecdh->publicArea.authPolicy.buffer, want.size) == 0;
out:
	Esys_Free(ecdh);
	Esys_Free(ak);
	return r;
}

int smg_tpm_enroll(struct smg_tpm *t, uint32_t pcr_mask, bool force,
		   struct smg_tpm_keys *out)
{
	ESYS_TR primary = ESYS_TR_NONE, tr;
	TPM2B_PUBLIC ecdh, ak;
	bool have;
	int r;

	memset(out, 0, sizeof(*out));
	if (pcr_mask == 0 || (pcr_mask & ~SMG_PCR_MASK_ALL) != 0)
		return SMG_ERR_INVAL;
	have = persistent_tr(t, SMG_TPM_HANDLE_ECDH, &tr) == 0;
	if (have)
		Esys_TR_Close(t->ectx, &tr);
	if (have && persistent_tr(t, SMG_TPM_HANDLE_AK, &tr) == 0) {
		Esys_TR_Close(t->ectx, &tr);
		if (!force)
			return smg_tpm_load_keys(t, pcr_mask, out);
	}
	if ((r = evict(t, SMG_TPM_HANDLE_ECDH)) != 0 ||
	    (r = evict(t, SMG_TPM_HANDLE_AK)) != 0)
		return r;

	/* ECDH key: no userWithAuth, so the USER role needs the policy. */
	ecc_template(&ecdh, TPMA_OBJECT_DECRYPT);
	ecdh.publicArea.parameters.eccDetail.scheme.scheme = TPM2_ALG_ECDH;
	ecdh.publicArea.parameters.eccDetail.scheme.details.ecdh.hashAlg =
	    TPM2_ALG_SHA256;
	if ((r = pcr_policy_digest(t, pcr_mask, &ecdh.publicArea.authPolicy)) != 0)
		return r;
	ecc_template(&ak, TPMA_OBJECT_USERWITHAUTH | TPMA_OBJECT_RESTRICTED |
			      TPMA_OBJECT_SIGN_ENCRYPT);
	ak.publicArea.parameters.eccDetail.scheme.scheme = TPM2_ALG_ECDSA;
	ak.publicArea.parameters.eccDetail.scheme.details.ecdsa.hashAlg = TPM2_ALG_SHA256;

	if ((r = create_primary(t, &primary)) != 0)
		return r;
	if ((r = create_persistent(t, primary, &ecdh, SMG_TPM_HANDLE_ECDH, "ECDH key")) !=
		0 ||
	    (r = create_persistent(t, primary, &ak, SMG_TPM_HANDLE_AK,
				   "attestation key")) != 0)
		goto out;
	if ((r = smg_tpm_load_keys(t, pcr_mask, out)) != 0)
		goto out;
	out->created = true;
out:
	Esys_FlushContext(t->ectx, primary);
	return r;
}

static bool is_policy_fail(TSS2_RC rc)
{
	/* format-one codes carry the session number in bits 8..10 */
	return (rc & TPM2_RC_FMT1) != 0 &&
	       (rc & (0x3f | TPM2_RC_FMT1)) == TPM2_RC_POLICY_FAIL;
}

int smg_tpm_ecdh_zgen(struct smg_tpm *t, uint32_t pcr_mask,
		      const uint8_t peer_point[SMG_P256_POINT_LEN],
		      uint8_t z[SMG_P256_COORD_LEN])
{
	TPM2B_ECC_POINT in = {0}, *res = NULL;
	ESYS_TR key, sess;
	TSS2_RC rc;
	int r;

	memset(z, 0, SMG_P256_COORD_LEN);
	if (peer_point[0] != 0x04)
		return SMG_ERR_INVAL;
	if (persistent_tr(t, SMG_TPM_HANDLE_ECDH, &key) != 0) {
		smg_err("tpm: no ECDH key at 0x%08x; run `secmig tpm-enroll` first",
			SMG_TPM_HANDLE_ECDH);
		return SMG_ERR_TPM;
	}
	if ((r = pcr_policy_session(t, TPM2_SE_POLICY, pcr_mask, &sess)) != 0)
		goto out_key;
	/* One use: the TPM flushes the session after ZGen. */
	Esys_TRSess_SetAttributes(t->ectx, sess, 0, TPMA_SESSION_CONTINUESESSION);
	in.point.x.size = SMG_P256_COORD_LEN;
	in.point.y.size = SMG_P256_COORD_LEN;
	memcpy(in.point.x.buffer, peer_point + 1, SMG_P256_COORD_LEN);
	memcpy(in.point.y.buffer, peer_point + 1 + SMG_P256_COORD_LEN,
	       SMG_P256_COORD_LEN);
	rc = Esys_ECDH_ZGen(t->ectx, key, sess, ESYS_TR_NONE, ESYS_TR_NONE, &in, &res);
	if (rc != TSS2_RC_SUCCESS) {
		Esys_FlushContext(t->ectx, sess);
		if (is_policy_fail(rc)) {
			smg_err(
			    "tpm: the TPM refused the ECDH key: its PCR policy is not "
			    "satisfied (PCRs changed since enrolment); this host is not "
			    "in "
			    "its enrolled state");
			r = SMG_ERR_TPM;
		} else {
			r = attest_tss_err("ECDH_ZGen", rc);
		}
		goto out_key;
	}
	if (res->point.x.size > SMG_P256_COORD_LEN) {
		r = SMG_ERR_TPM;
		goto out_res;
	}
	memcpy(z + SMG_P256_COORD_LEN - res->point.x.size, res->point.x.buffer,
	       res->point.x.size);
	r = SMG_OK;
out_res:
	/* Z is a secret: wipe the ESAPI copy before freeing it */
	OPENSSL_cleanse(res, sizeof(*res));
	Esys_Free(res);
out_key:
	Esys_TR_Close(t->ectx, &key);
	return r;
}

/* Wire form: version, AK point, TPMS_ATTEST bytes, ECDSA r and s. */
static int evidence_encode(const uint8_t ak[SMG_P256_POINT_LEN], const TPM2B_ATTEST *q,
			   const TPMT_SIGNATURE *sig, uint8_t *ev, size_t cap,
			   size_t *len)
{
	const TPMS_SIGNATURE_ECC *e = &sig->signature.ecdsa;
	uint8_t r[SMG_P256_COORD_LEN] = {0}, s[SMG_P256_COORD_LEN] = {0};
	struct smg_wr wr;
	int err;

	if (sig->sigAlg != TPM2_ALG_ECDSA || e->hash != TPM2_ALG_SHA256 ||
	    e->signatureR.size > SMG_P256_COORD_LEN ||
	    e->signatureS.size > SMG_P256_COORD_LEN) {
		smg_err("tpm: the AK produced an unexpected signature (alg 0x%x)",
			sig->sigAlg);
		return SMG_ERR_TPM;
	}
	memcpy(r + SMG_P256_COORD_LEN - e->signatureR.size, e->signatureR.buffer,
	       e->signatureR.size);
	memcpy(s + SMG_P256_COORD_LEN - e->signatureS.size, e->signatureS.buffer,
	       e->signatureS.size);
	smg_wr_init(&wr, ev, cap);
	if ((err = smg_wr_u8(&wr, SMG_EVIDENCE_VERSION)) != 0 ||
	    (err = smg_wr_bytes(&wr, ak, SMG_P256_POINT_LEN)) != 0 ||
	    (err = smg_wr_string16(&wr, q->attestationData, q->size,
				   SMG_ATTEST_BLOB_MAX)) != 0 ||
	    (err = smg_wr_bytes(&wr, r, sizeof(r))) != 0 ||
	    (err = smg_wr_bytes(&wr, s, sizeof(s))) != 0)
		return err;
	*len = wr.off;
	return SMG_OK;
}

int smg_tpm_quote(struct smg_tpm *t, uint32_t pcr_mask, const uint8_t *qual,
		  size_t qual_len, uint8_t *ev, size_t cap, size_t *ev_len)
{
	TPMT_SIG_SCHEME scheme = {.scheme = TPM2_ALG_NULL};
	TPM2B_DATA qd = {0};
	TPM2B_ATTEST *quoted = NULL;
	TPMT_SIGNATURE *sig = NULL;
	TPM2B_PUBLIC *akpub = NULL;
	uint8_t ak[SMG_P256_POINT_LEN];
	TPML_PCR_SELECTION sel;
	ESYS_TR key;
	TSS2_RC rc;
	int r;

	*ev_len = 0;
	if (qual_len > sizeof(qd.buffer))
		return SMG_ERR_INVAL;
	if ((r = read_public(t, SMG_TPM_HANDLE_AK, &akpub)) != 0) {
		smg_err(
		    "tpm: no attestation key at 0x%08x; run `secmig tpm-enroll` first",
		    SMG_TPM_HANDLE_AK);
		return r == SMG_ERR_NOT_FOUND ? SMG_ERR_TPM : r;
	}
	point_out(&akpub->publicArea.unique.ecc, ak);
	Esys_Free(akpub);
	if (persistent_tr(t, SMG_TPM_HANDLE_AK, &key) != 0)
		return SMG_ERR_TPM;
	qd.size = (UINT16)qual_len;
	memcpy(qd.buffer, qual, qual_len);
	pcr_select(pcr_mask, &sel);
	rc = Esys_Quote(t->ectx, key, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &qd,
			&scheme, &sel, &quoted, &sig);
	Esys_TR_Close(t->ectx, &key);
	if (rc != TSS2_RC_SUCCESS)
		return attest_tss_err("Quote", rc);
	r = evidence_encode(ak, quoted, sig, ev, cap, ev_len);
	Esys_Free(quoted);
	Esys_Free(sig);
	return r;
}

int smg_tpm_ak_public(struct smg_tpm *t, uint8_t ak[SMG_P256_POINT_LEN])
{
	TPM2B_PUBLIC *pub = NULL;
	int r;

	if ((r = read_public(t, SMG_TPM_HANDLE_AK, &pub)) != 0) {
		smg_err(
		    "tpm: no attestation key at 0x%08x; run `secmig tpm-enroll` first",
		    SMG_TPM_HANDLE_AK);
		return r == SMG_ERR_NOT_FOUND ? SMG_ERR_TPM : r;
	}
	point_out(&pub->publicArea.unique.ecc, ak);
	Esys_Free(pub);
	return SMG_OK;
}

/* Right-aligned copy of one ECDSA coordinate. */
static int coord_out(const TPM2B_ECC_PARAMETER *p, uint8_t out[SMG_P256_COORD_LEN])
{
	if (p->size > SMG_P256_COORD_LEN)
		return SMG_ERR_TPM;
	memset(out, 0, SMG_P256_COORD_LEN);
	memcpy(out + SMG_P256_COORD_LEN - p->size, p->buffer, p->size);
	return SMG_OK;
}

int smg_tpm_sign(struct smg_tpm *t, const uint8_t *msg, size_t len,
		 uint8_t sig_r[SMG_P256_COORD_LEN], uint8_t sig_s[SMG_P256_COORD_LEN])
{
	TPMT_SIG_SCHEME scheme = {.scheme = TPM2_ALG_NULL};
	TPM2B_MAX_BUFFER data = {0};
	TPM2B_DIGEST *digest = NULL;
	TPMT_TK_HASHCHECK *ticket = NULL;
	TPMT_SIGNATURE *sig = NULL;
	ESYS_TR key = ESYS_TR_NONE;
	TSS2_RC rc;
	int r = SMG_ERR_TPM;

	if (len > sizeof(data.buffer))
		return SMG_ERR_INVAL;
	data.size = (UINT16)len;
	memcpy(data.buffer, msg, len);
	/* The TPM hashes the message itself: only then does it hand out the
	 * ticket a restricted key needs, and it refuses to ticket anything
	 * that begins with TPM_GENERATED_VALUE (a forged quote). */
	rc = Esys_Hash(t->ectx, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &data,
		       TPM2_ALG_SHA256, ESYS_TR_RH_OWNER, &digest, &ticket);
	if (rc != TSS2_RC_SUCCESS)
		return attest_tss_err("Hash", rc);
	if (persistent_tr(t, SMG_TPM_HANDLE_AK, &key) != 0) {
		smg_err(
		    "tpm: no attestation key at 0x%08x; run `secmig tpm-enroll` first",
		    SMG_TPM_HANDLE_AK);
		goto out;
	}
	rc = Esys_Sign(t->ectx, key, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, digest,
		       &scheme, ticket, &sig);
	if (rc != TSS2_RC_SUCCESS) {
		attest_tss_err("Sign (AK)", rc);
		goto out;
	}
	if (sig->sigAlg != TPM2_ALG_ECDSA ||
	    sig->signature.ecdsa.hash != TPM2_ALG_SHA256 ||
	    coord_out(&sig->signature.ecdsa.signatureR, sig_r) != 0 ||
	    coord_out(&sig->signature.ecdsa.signatureS, sig_s) != 0) {
		smg_err("tpm: the AK produced an unexpected signature (alg 0x%x)",
			sig->sigAlg);
		goto out;
	}
	r = SMG_OK;
out:
	if (key != ESYS_TR_NONE)
		Esys_TR_Close(t->ectx, &key);
	Esys_Free(digest);
	Esys_Free(ticket);
	Esys_Free(sig);
	return r;
}
