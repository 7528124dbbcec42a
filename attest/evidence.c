/* evidence: decoding and checking a peer's TPM2_Quote. Every byte here came
 * from the network, so it is read through the bounded reader only, and the
 * checks run in a fixed order so the first failure names exactly what was
 * wrong (an AK we never enrolled, a forged signature, a replayed quote, a
 * host that booted something other than its golden measurements). */
#include <stdio.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <sodium.h>
#include <tss2/tss2_tpm2_types.h>

#include "attest/internal.h"
#include "base/base.h"

#define QUOTE_SELECT_MAX 4 /* sizeofSelect: 24 PCRs need 3 bytes */

int smg_evidence_decode(const uint8_t *buf, size_t len, struct smg_evidence *out)
{
	struct smg_rd rd;
	uint8_t ver;
	int r;

	memset(out, 0, sizeof(*out));
	if (len > SMG_EVIDENCE_MAX)
		return SMG_ERR_TOO_LONG;
	smg_rd_init(&rd, buf, len);
	if ((r = smg_rd_u8(&rd, &ver)) != 0)
		return r;
	if (ver != SMG_EVIDENCE_VERSION)
		return SMG_ERR_VERSION;
	if ((r = smg_rd_bytes(&rd, out->ak_pub, SMG_P256_POINT_LEN)) != 0 ||
	    (r = smg_rd_string16(&rd, SMG_ATTEST_BLOB_MAX, &out->attest,
				 &out->attest_len)) != 0 ||
	    (r = smg_rd_bytes(&rd, out->sig_r, SMG_P256_COORD_LEN)) != 0 ||
	    (r = smg_rd_bytes(&rd, out->sig_s, SMG_P256_COORD_LEN)) != 0)
		return r;
	return smg_rd_end(&rd);
}

static int read_pcr_selection(struct smg_rd *rd, uint32_t *mask)
{
	uint32_t count;
	int r;

	*mask = 0;
	if ((r = smg_rd_u32(rd, &count)) != 0)
		return r;
	/* A lying count must not make us loop: cap it first. */
	if (count > SMG_ATTEST_SEL_MAX)
		return SMG_ERR_TOO_LONG;
	if (count != 1)
		return SMG_ERR_PROTO; /* we only ever ask for the SHA-256 bank */
	{
		uint16_t hash;
		uint8_t n;
		const uint8_t *sel;

		if ((r = smg_rd_u16(rd, &hash)) != 0 || (r = smg_rd_u8(rd, &n)) != 0)
			return r;
		if (n > QUOTE_SELECT_MAX)
			return SMG_ERR_TOO_LONG;
		if ((r = smg_rd_ptr(rd, n, &sel)) != 0)
			return r;
		if (hash != TPM2_ALG_SHA256)
			return SMG_ERR_PROTO;
		for (unsigned i = 0; i < n; i++) {
			if (i >= 3 && sel[i] != 0)
				return SMG_ERR_PROTO; /* PCR beyond 23 */
			if (i < 3)
				*mask |= (uint32_t)sel[i] << (8 * i);
		}
	}
	return SMG_OK;
}

int smg_quote_parse_attest(const uint8_t *buf, size_t len, struct smg_quote_attest *out)
{
	const uint8_t *p;
	size_t n;
	uint64_t fw;
	uint8_t safe;
	struct smg_rd rd;
	int r;

	memset(out, 0, sizeof(*out));
	if (len > SMG_ATTEST_BLOB_MAX)
		return SMG_ERR_TOO_LONG;
	smg_rd_init(&rd, buf, len);
	if ((r = smg_rd_u32(&rd, &out->magic)) != 0 ||
	    (r = smg_rd_u16(&rd, &out->type)) != 0 ||
	    (r = smg_rd_string16(&rd, SMG_ATTEST_NAME_MAX, &p, &n)) != 0 ||
	    (r = smg_rd_string16(&rd, SMG_ATTEST_EXTRA_MAX, &p, &n)) != 0)
		return r;
	memcpy(out->extra, p, n);
	out->extra_len = n;
	if ((r = smg_rd_u64(&rd, &out->clock)) != 0 ||
	    (r = smg_rd_u32(&rd, &out->reset_count)) != 0 ||
	    (r = smg_rd_u32(&rd, &out->restart_count)) != 0 ||
	    (r = smg_rd_u8(&rd, &safe)) != 0 || (r = smg_rd_u64(&rd, &fw)) != 0)
		return r;
	if (out->magic != TPM2_GENERATED_VALUE || out->type != TPM2_ST_ATTEST_QUOTE)
		return SMG_ERR_PROTO;
	if ((r = read_pcr_selection(&rd, &out->pcr_mask)) != 0 ||
	    (r = smg_rd_string16(&rd, 64, &p, &n)) != 0)
		return r;
	if (n != SMG_PCR_LEN)
		return SMG_ERR_PROTO;
	memcpy(out->pcr_digest, p, n);
	return smg_rd_end(&rd);
}

void smg_pcr_digest(uint32_t mask, const uint8_t vals[SMG_PCR_COUNT][SMG_PCR_LEN],
		    uint8_t out[SMG_PCR_LEN])
{
	crypto_hash_sha256_state c;

	crypto_hash_sha256_init(&c);
	for (unsigned i = 0; i < SMG_PCR_COUNT; i++)
		if (mask & (1u << i))
			crypto_hash_sha256_update(&c, vals[i], SMG_PCR_LEN);
	crypto_hash_sha256_final(&c, out);
}

int smg_p256_verify(const uint8_t pub[SMG_P256_POINT_LEN], const uint8_t *msg, size_t len,
		    const uint8_t sig_r[SMG_P256_COORD_LEN],
		    const uint8_t sig_s[SMG_P256_COORD_LEN])
{
	EVP_PKEY *key = attest_p256_from_point(pub);
	EVP_MD_CTX *md = NULL;
	ECDSA_SIG *sig = NULL;
	BIGNUM *r = NULL, *s = NULL;
	unsigned char *der = NULL;
	int der_len;
	bool ok = false;

	if (key == NULL)
		return SMG_ERR_BAD_SIG;
	r = BN_bin2bn(sig_r, SMG_P256_COORD_LEN, NULL);
	s = BN_bin2bn(sig_s, SMG_P256_COORD_LEN, NULL);
	if (r == NULL || s == NULL || (sig = ECDSA_SIG_new()) == NULL)
		goto out;
	if (ECDSA_SIG_set0(sig, r, s) != 1)
		goto out;
	r = s = NULL; /* owned by sig now */
	if ((der_len = i2d_ECDSA_SIG(sig, &der)) <= 0)
		goto out;
	if ((md = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, key) != 1)
		goto out;
	ok = EVP_DigestVerify(md, der, (size_t)der_len, msg, len) == 1;
out:
	OPENSSL_free(der);
	EVP_MD_CTX_free(md);
	ECDSA_SIG_free(sig);
	BN_free(r);
	BN_free(s);
	EVP_PKEY_free(key);
	return ok ? SMG_OK : SMG_ERR_BAD_SIG;
}

/* ECDSA-SHA256 over the TPMS_ATTEST bytes with the AK. */
static bool sig_ok(const struct smg_evidence *ev)
{
	return smg_p256_verify(ev->ak_pub, ev->attest, ev->attest_len, ev->sig_r,
			       ev->sig_s) == SMG_OK;
}

static int fail(int err, const char *peer, const char *check, const char *detail,
		char *why, size_t why_len)
{
	smg_peer_log(SMG_LOG_ERROR, "attest: evidence from '%s' rejected: %s%s%s", peer,
		     check, detail[0] ? ": " : "", detail);
	if (why != NULL && why_len > 0)
		snprintf(why, why_len, "%s", check);
	return err;
}

int smg_evidence_verify(const uint8_t *buf, size_t len,
			const struct smg_evidence_expect *exp, char *why, size_t why_len)
{
	const char *peer = exp->peer != NULL ? exp->peer : "?";
	struct smg_quote_attest q;
	struct smg_evidence ev;
	uint8_t golden[SMG_PCR_LEN];
	char detail[160] = "";
	int r;

	if ((r = smg_evidence_decode(buf, len, &ev)) != 0) {
		snprintf(detail, sizeof(detail), "%s", smg_strerror(r));
		return fail(SMG_ERR_ATTEST, peer, "malformed evidence", detail, why,
			    why_len);
	}
	if (CRYPTO_memcmp(ev.ak_pub, exp->ak_pub, SMG_P256_POINT_LEN) != 0)
		return fail(SMG_ERR_ATTEST, peer,
			    "unknown AK (not the enrolled attestation key)", "", why,
			    why_len);
	if (!sig_ok(&ev))
		return fail(SMG_ERR_ATTEST, peer,
			    "quote signature invalid (tampered or not from the AK)", "",
			    why, why_len);
	/* Signed by the enrolled AK from here on; still bounded-parsed. */
	if ((r = smg_quote_parse_attest(ev.attest, ev.attest_len, &q)) != 0) {
		snprintf(detail, sizeof(detail), "%s", smg_strerror(r));
		return fail(SMG_ERR_ATTEST, peer, "not a TPM-generated quote", detail,
			    why, why_len);
	}
	if (q.extra_len != exp->qual_len ||
	    CRYPTO_memcmp(q.extra, exp->qual, exp->qual_len) != 0)
		return fail(
		    SMG_ERR_ATTEST, peer,
		    "qualifying data mismatch (quote not made for this session; replay?)",
		    "", why, why_len);
	if (q.pcr_mask != exp->pcr_mask) {
		snprintf(detail, sizeof(detail), "quoted 0x%06x, enrolled 0x%06x",
			 q.pcr_mask, exp->pcr_mask);
		return fail(SMG_ERR_ATTEST, peer, "PCR selection mismatch", detail, why,
			    why_len);
	}
	smg_pcr_digest(exp->pcr_mask, exp->golden, golden);
	if (CRYPTO_memcmp(golden, q.pcr_digest, SMG_PCR_LEN) != 0)
		return fail(SMG_ERR_ATTEST, peer,
			    "PCR digest does not match the enrolled golden values", "",
			    why, why_len);
	return SMG_OK;
}
