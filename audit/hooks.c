/* hooks: what the engine calls. The source signs its manifest; the
 * destination checks that signature against the key the handshake proved,
 * then countersigns a receipt (with the TPM's AK as well in a TPM-bound
 * session); the source checks the receipt before COMMIT. A missing or
 * wrong signature on either side is an integrity failure: the migration
 * aborts before anything resumes. Tickets are admitted at plan time. */
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "attest/attest.h"
#include "audit/internal.h"
#include "proto/proto.h"
#include "transport/transport.h"

void smg_audit_mig_init(struct smg_audit_mig *m, bool source)
{
	memset(m, 0, sizeof(*m));
	m->source = source;
	m->started_ms = audit_wall_ms();
}

static bool d32(const ProtobufCBinaryData *b)
{
	return b->len == SMG_AUDIT_DIGEST_LEN;
}

/* The claim of a manifest in this session: the source is whoever sent it. */
static int claim_fill(struct smg_audit_claim *c, const Smg__Manifest *mf,
		      const struct smg_session *s, bool source)
{
	memset(c, 0, sizeof(*c));
	if (mf->migration_id == NULL || strlen(mf->migration_id) > SMG_AUDIT_ID_MAX ||
	    !audit_name_ok(mf->migration_id, SMG_AUDIT_ID_MAX) ||
	    !d32(&mf->memory_root) || mf->n_disk_roots > SMG_AUDIT_DISKS_MAX ||
	    !d32(&mf->config_hash) || !d32(&mf->device_hash) ||
	    (mf->vtpm_hash.len != 0 && !d32(&mf->vtpm_hash)))
		return SMG_ERR_PROTO;
	snprintf(c->id, sizeof(c->id), "%s", mf->migration_id);
	memcpy(c->memory_root, mf->memory_root.data, SMG_AUDIT_DIGEST_LEN);
	c->n_disks = (unsigned)mf->n_disk_roots;
	for (size_t i = 0; i < mf->n_disk_roots; i++) {
		if (!d32(&mf->disk_roots[i]))
			return SMG_ERR_PROTO;
		memcpy(c->disk_roots[i], mf->disk_roots[i].data, SMG_AUDIT_DIGEST_LEN);
	}
	memcpy(c->config_hash, mf->config_hash.data, SMG_AUDIT_DIGEST_LEN);
	memcpy(c->device_hash, mf->device_hash.data, SMG_AUDIT_DIGEST_LEN);
	if ((c->has_vtpm = mf->vtpm_hash.len != 0))
		memcpy(c->vtpm_hash, mf->vtpm_hash.data, SMG_AUDIT_DIGEST_LEN);
	/* The session's own transcript, not the manifest's copy of it. */
	memcpy(c->transcript, smg_session_transcript(s), SMG_AUDIT_DIGEST_LEN);
	snprintf(source ? c->src : c->dst, SMG_AUDIT_NAME_MAX + 1, "%s",
		 smg_session_our_name(s));
	snprintf(source ? c->dst : c->src, SMG_AUDIT_NAME_MAX + 1, "%s",
		 smg_session_peer_name(s));
	smg_session_our_key(s, source ? c->src_key : c->dst_key);
	memcpy(source ? c->dst_key : c->src_key, smg_session_peer_key(s),
	       SMG_AUDIT_KEY_LEN);
	return SMG_OK;
}

/* Fault "wrong key": a valid signature by some other Ed25519 key. */
static void sign_other(const uint8_t *msg, size_t len, uint8_t sig[SMG_AUDIT_SIG_LEN])
{
	uint8_t pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES];

	crypto_sign_keypair(pk, sk);
	crypto_sign_detached(sig, NULL, msg, len, sk);
	sodium_memzero(sk, sizeof(sk));
}

int smg_audit_manifest_sign(struct smg_audit_mig *m, const struct smg_session *s,
			    Smg__Manifest *mf)
{
	uint8_t msg[AUDIT_MANIFEST_MSG_LEN];
	size_t len;
	int r;

	if ((r = claim_fill(&m->claim, mf, s, true)) != SMG_OK)
		return SMG_ERR_INTERNAL;
	m->has_claim = true;
	smg_audit_claim_digest(&m->claim, m->manifest_digest);
	audit_manifest_msg(m->manifest_digest, msg, &len);
	if (audit_fault_on("audit_manifest_wrong_key"))
		sign_other(msg, len, m->manifest_sig);
	else if ((r = smg_session_sign(s, msg, len, m->manifest_sig)) != SMG_OK)
		return r;
	m->has_manifest_sig = true;
	if (audit_fault_on("audit_manifest_sig_flip"))
		m->manifest_sig[7] ^= 0x10;
	if (!audit_fault_on("audit_manifest_unsigned"))
		mf->signature = (ProtobufCBinaryData){SMG_AUDIT_SIG_LEN, m->manifest_sig};
	return SMG_OK;
}

static int integrity(struct smg_audit_mig *m, const struct smg_session *s, bool sig,
		     const char *what)
{
	smg_peer_log(SMG_LOG_ERROR, "evidence from '%s' rejected: %s",
		     smg_session_peer_name(s), what);
	m->bad_sig |= sig;
	return SMG_ERR_INTEGRITY;
}

int smg_audit_manifest_check(struct smg_audit_mig *m, const struct smg_session *s,
			     const Smg__Manifest *mf)
{
	if (claim_fill(&m->claim, mf, s, false) != SMG_OK)
		return integrity(m, s, false, "manifest fields malformed");
	m->has_claim = true;
	smg_audit_claim_digest(&m->claim, m->manifest_digest);
	if (mf->signature.len == 0)
		return integrity(m, s, true, "the manifest is unsigned");
	if (mf->signature.len != SMG_AUDIT_SIG_LEN)
		return integrity(m, s, true, "the manifest signature is malformed");
	memcpy(m->manifest_sig, mf->signature.data, SMG_AUDIT_SIG_LEN);
	m->has_manifest_sig = true;
	if (!smg_audit_manifest_sig_ok(&m->claim, smg_session_peer_key(s),
				       m->manifest_sig))
		return integrity(m, s, true,
				 "manifest signature invalid (not by the source's "
				 "enrolled key over this manifest and session)");
	return SMG_OK;
}

static void receipt_from_claim(const struct smg_audit_mig *m,
			       struct smg_audit_receipt *rc)
{
	const struct smg_audit_claim *c = &m->claim;

	memset(rc, 0, sizeof(*rc));
	snprintf(rc->id, sizeof(rc->id), "%s", c->id);
	memcpy(rc->manifest, m->manifest_digest, SMG_AUDIT_DIGEST_LEN);
	memcpy(rc->transcript, c->transcript, SMG_AUDIT_DIGEST_LEN);
	snprintf(rc->src, sizeof(rc->src), "%s", c->src);
	memcpy(rc->src_key, c->src_key, SMG_AUDIT_KEY_LEN);
	snprintf(rc->dst, sizeof(rc->dst), "%s", c->dst);
	memcpy(rc->dst_key, c->dst_key, SMG_AUDIT_KEY_LEN);
	rc->result = SMG_RECEIPT_RESULT_VERIFIED;
	rc->outcome = SMG_RECEIPT_OUTCOME_READY;
	rc->has_ticket = m->has_ticket;
	memcpy(rc->ticket, m->ticket_digest, SMG_AUDIT_DIGEST_LEN);
}

static int tpm_sign(struct smg_audit *a, struct smg_audit_mig *m, const uint8_t *msg,
		    size_t len)
{
	int r;

	if (audit_fault_on("audit_receipt_tpm_wrong_key"))
		r = audit_fault_p256_sign(msg, len, m->receipt_tpm_sig);
	else
		r = smg_attest_sign(a->attest, msg, len, m->receipt_tpm_sig,
				    m->receipt_tpm_sig + 32);
	if (r != SMG_OK)
		return r;
	if (audit_fault_on("audit_receipt_tpm_sig_flip"))
		m->receipt_tpm_sig[40] ^= 0x01;
	m->has_tpm_sig = !audit_fault_on("audit_receipt_tpm_unsigned");
	return SMG_OK;
}

int smg_audit_receipt_sign(struct smg_audit *a, struct smg_audit_mig *m,
			   const struct smg_session *s, Smg__Ready *rd)
{
	struct smg_audit_receipt rc;
	uint8_t msg[AUDIT_RECEIPT_MSG_MAX];
	size_t mlen;
	bool tpm = (smg_session_capabilities(s) & SMG_CAP_TPM) != 0;
	int r;

	if (!m->has_claim)
		return SMG_ERR_STATE;
	receipt_from_claim(m, &rc);
	rc.plan_at_ms = m->plan_at_ms;
	rc.verified_at_ms = audit_wall_ms();
	if (tpm) {
		if (a == NULL || a->attest == NULL) {
			smg_err("audit: TPM-bound session but no TPM to countersign the "
				"receipt");
			return SMG_ERR_TPM;
		}
		rc.tpm = true;
		if ((r = smg_attest_ak_public(a->attest, rc.ak)) != SMG_OK)
			return r;
	}
	if ((r = smg_audit_receipt_encode(&rc, m->receipt, sizeof(m->receipt),
					  &m->receipt_len)) != SMG_OK ||
	    (r = audit_receipt_msg(m->receipt, m->receipt_len, msg, sizeof(msg),
				   &mlen)) != SMG_OK)
		return r;
	if (audit_fault_on("audit_receipt_wrong_key"))
		sign_other(msg, mlen, m->receipt_sig);
	else if ((r = smg_session_sign(s, msg, mlen, m->receipt_sig)) != SMG_OK)
		return r;
	m->has_receipt_sig = true;
	if (audit_fault_on("audit_receipt_sig_flip"))
		m->receipt_sig[3] ^= 0x80;
	if (tpm) {
		/* In the downtime: the VM is paused on the source until COMMIT. */
		uint64_t t0 = smg_now_ns();
		if ((r = tpm_sign(a, m, msg, mlen)) != SMG_OK)
			return r;
		smg_info("receipt countersigned by the TPM's AK in %.1f ms",
			 (double)(smg_now_ns() - t0) / 1e6);
	}
	rd->receipt = (ProtobufCBinaryData){m->receipt_len, m->receipt};
	if (!audit_fault_on("audit_receipt_unsigned"))
		rd->signature = (ProtobufCBinaryData){SMG_AUDIT_SIG_LEN, m->receipt_sig};
	if (m->has_tpm_sig)
		rd->tpm_signature =
		    (ProtobufCBinaryData){SMG_AUDIT_SIG_LEN, m->receipt_tpm_sig};
	return SMG_OK;
}

/* The receipt must say what we know: our manifest, our session, us, the
 * peer that answered, verified and ready, our ticket. */
static const char *receipt_mismatch(const struct smg_audit_mig *m,
				    const struct smg_audit_receipt *got, bool tpm)
{
	struct smg_audit_receipt want;

	receipt_from_claim(m, &want);
	if (strcmp(got->id, want.id) != 0)
		return "receipt names another migration";
	if (sodium_memcmp(got->manifest, want.manifest, SMG_AUDIT_DIGEST_LEN) != 0)
		return "receipt names another manifest";
	if (sodium_memcmp(got->transcript, want.transcript, SMG_AUDIT_DIGEST_LEN) != 0)
		return "receipt names another session";
	if (strcmp(got->src, want.src) != 0 || strcmp(got->dst, want.dst) != 0 ||
	    sodium_memcmp(got->src_key, want.src_key, SMG_AUDIT_KEY_LEN) != 0 ||
	    sodium_memcmp(got->dst_key, want.dst_key, SMG_AUDIT_KEY_LEN) != 0)
		return "receipt names other hosts";
	if (got->result != SMG_RECEIPT_RESULT_VERIFIED ||
	    got->outcome != SMG_RECEIPT_OUTCOME_READY)
		return "receipt does not say verified and ready";
	if (got->has_ticket != want.has_ticket ||
	    (got->has_ticket &&
	     sodium_memcmp(got->ticket, want.ticket, SMG_AUDIT_DIGEST_LEN) != 0))
		return "receipt names another ticket";
	if (got->tpm != tpm)
		return tpm ? "TPM-bound session but the receipt is not AK-signed"
			   : "receipt claims an AK in a software-mode session";
	return NULL;
}

int smg_audit_receipt_check(struct smg_audit_mig *m, const struct smg_session *s,
			    const struct smg_policy *policy, const Smg__Ready *rd)
{
	bool tpm = (smg_session_capabilities(s) & SMG_CAP_TPM) != 0;
	const struct smg_policy_peer *pe = NULL;
	struct smg_audit_receipt rc;
	const char *bad;

	if (rd->receipt.len == 0)
		return integrity(m, s, true, "READY carries no receipt");
	if (smg_audit_receipt_decode(rd->receipt.data, rd->receipt.len, &rc) != SMG_OK)
		return integrity(m, s, false, "the receipt is malformed");
	memcpy(m->receipt, rd->receipt.data, rd->receipt.len);
	m->receipt_len = rd->receipt.len;
	if ((bad = receipt_mismatch(m, &rc, tpm)) != NULL)
		return integrity(m, s, false, bad);
	if (rd->signature.len != SMG_AUDIT_SIG_LEN)
		return integrity(m, s, true,
				 rd->signature.len == 0
				     ? "the receipt is unsigned"
				     : "the receipt signature is malformed");
	memcpy(m->receipt_sig, rd->signature.data, SMG_AUDIT_SIG_LEN);
	m->has_receipt_sig = true;
	if (tpm) {
		if (rd->tpm_signature.len != SMG_AUDIT_SIG_LEN)
			return integrity(m, s, true,
					 "TPM-bound session but the receipt carries no "
					 "AK signature");
		memcpy(m->receipt_tpm_sig, rd->tpm_signature.data, SMG_AUDIT_SIG_LEN);
		m->has_tpm_sig = true;
		pe = smg_policy_find_peer(policy, smg_session_peer_name(s));
		if (pe == NULL || !pe->has_ak ||
		    sodium_memcmp(pe->ak_pub, rc.ak, SMG_AUDIT_AK_LEN) != 0)
			return integrity(m, s, true,
					 "the receipt's AK is not the destination's "
					 "enrolled AK");
	}
	if (smg_audit_receipt_sig_check(m->receipt, m->receipt_len,
					smg_session_peer_key(s), m->receipt_sig, NULL,
					NULL) != SMG_OK)
		return integrity(m, s, true,
				 "receipt signature invalid (not by the destination's "
				 "enrolled key over this receipt)");
	if (tpm && smg_audit_receipt_sig_check(m->receipt, m->receipt_len,
					       smg_session_peer_key(s), m->receipt_sig,
					       rc.ak, m->receipt_tpm_sig) != SMG_OK)
		return integrity(m, s, true,
				 "receipt AK signature invalid (not made by the "
				 "destination's TPM over this receipt)");
	return SMG_OK;
}
