/* evidence: the manifest claim the source signs and the receipt the
 * destination countersigns, in canonical binary encodings (never the
 * protobuf bytes, whose encoding is not unique). The receipt arrives from
 * the network and sits in peers' logs: it is decoded with the bounded
 * reader only, and every field has a fixed size or a capped length. */
#include <string.h>

#include <sodium.h>

#include "attest/attest.h"
#include "audit/internal.h"

#define CLAIM_ENC_MAX 1024

static int wr_name(struct smg_wr *w, const char *s, size_t max)
{
	return smg_wr_string16(w, s, strlen(s), max);
}

void smg_audit_claim_digest(const struct smg_audit_claim *c,
			    uint8_t out[SMG_AUDIT_DIGEST_LEN])
{
	uint8_t buf[CLAIM_ENC_MAX];
	struct smg_wr w;
	int r;

	smg_wr_init(&w, buf, sizeof(buf));
	if ((r = smg_wr_u8(&w, 1)) != 0 ||
	    (r = wr_name(&w, c->id, SMG_AUDIT_ID_MAX)) != 0 ||
	    (r = smg_wr_bytes(&w, c->memory_root, SMG_AUDIT_DIGEST_LEN)) != 0 ||
	    (r = smg_wr_u8(&w, (uint8_t)c->n_disks)) != 0)
		goto out;
	for (unsigned i = 0; i < c->n_disks && i < SMG_AUDIT_DISKS_MAX; i++)
		if ((r = smg_wr_bytes(&w, c->disk_roots[i], SMG_AUDIT_DIGEST_LEN)) != 0)
			goto out;
	if ((r = smg_wr_bytes(&w, c->config_hash, SMG_AUDIT_DIGEST_LEN)) != 0 ||
	    (r = smg_wr_bytes(&w, c->device_hash, SMG_AUDIT_DIGEST_LEN)) != 0 ||
	    (r = smg_wr_u8(&w, c->has_vtpm)) != 0 ||
	    (c->has_vtpm &&
	     (r = smg_wr_bytes(&w, c->vtpm_hash, SMG_AUDIT_DIGEST_LEN)) != 0) ||
	    (r = smg_wr_bytes(&w, c->transcript, SMG_AUDIT_DIGEST_LEN)) != 0 ||
	    (r = wr_name(&w, c->src, SMG_AUDIT_NAME_MAX)) != 0 ||
	    (r = smg_wr_bytes(&w, c->src_key, SMG_AUDIT_KEY_LEN)) != 0 ||
	    (r = wr_name(&w, c->dst, SMG_AUDIT_NAME_MAX)) != 0 ||
	    (r = smg_wr_bytes(&w, c->dst_key, SMG_AUDIT_KEY_LEN)) != 0)
		goto out;
out:
	/* A claim that does not fit cannot be produced by the engine; its
	 * digest is then all-zero, which no signature covers. */
	if (r != 0 || c->n_disks > SMG_AUDIT_DISKS_MAX)
		memset(out, 0, SMG_AUDIT_DIGEST_LEN);
	else
		audit_hash(buf, w.off, out);
}

static void
manifest_msg(const uint8_t digest[SMG_AUDIT_DIGEST_LEN],
	     uint8_t msg[sizeof(SMG_AUDIT_MANIFEST_CTX) + SMG_AUDIT_DIGEST_LEN])
{
	memcpy(msg, SMG_AUDIT_MANIFEST_CTX, sizeof(SMG_AUDIT_MANIFEST_CTX));
	memcpy(msg + sizeof(SMG_AUDIT_MANIFEST_CTX), digest, SMG_AUDIT_DIGEST_LEN);
}

bool smg_audit_manifest_sig_ok(const struct smg_audit_claim *c,
			       const uint8_t key[SMG_AUDIT_KEY_LEN],
			       const uint8_t sig[SMG_AUDIT_SIG_LEN])
{
	uint8_t d[SMG_AUDIT_DIGEST_LEN];
	uint8_t msg[sizeof(SMG_AUDIT_MANIFEST_CTX) + SMG_AUDIT_DIGEST_LEN];

	smg_audit_claim_digest(c, d);
	manifest_msg(d, msg);
	return crypto_sign_verify_detached(sig, msg, sizeof(msg), key) == 0;
}

void audit_manifest_msg(const uint8_t digest[SMG_AUDIT_DIGEST_LEN], uint8_t *msg,
			size_t *len)
{
	manifest_msg(digest, msg);
	*len = sizeof(SMG_AUDIT_MANIFEST_CTX) + SMG_AUDIT_DIGEST_LEN;
}

int smg_audit_receipt_encode(const struct smg_audit_receipt *rc, uint8_t *buf, size_t cap,
			     size_t *len)
{
	struct smg_wr w;
	int r;

	*len = 0;
	smg_wr_init(&w, buf, cap);
	if ((r = smg_wr_u8(&w, SMG_RECEIPT_VERSION)) != 0 ||
	    (r = wr_name(&w, rc->id, SMG_AUDIT_ID_MAX)) != 0 ||
	    (r = smg_wr_bytes(&w, rc->manifest, SMG_AUDIT_DIGEST_LEN)) != 0 ||
	    (r = smg_wr_bytes(&w, rc->transcript, SMG_AUDIT_DIGEST_LEN)) != 0 ||
	    (r = wr_name(&w, rc->src, SMG_AUDIT_NAME_MAX)) != 0 ||
	    (r = smg_wr_bytes(&w, rc->src_key, SMG_AUDIT_KEY_LEN)) != 0 ||
	    (r = wr_name(&w, rc->dst, SMG_AUDIT_NAME_MAX)) != 0 ||
	    (r = smg_wr_bytes(&w, rc->dst_key, SMG_AUDIT_KEY_LEN)) != 0 ||
	    (r = smg_wr_u8(&w, rc->result)) != 0 ||
	    (r = smg_wr_u8(&w, rc->outcome)) != 0 ||
	    (r = smg_wr_u64(&w, rc->plan_at_ms)) != 0 ||
	    (r = smg_wr_u64(&w, rc->verified_at_ms)) != 0 ||
	    (r = smg_wr_u8(&w, rc->has_ticket)) != 0 ||
	    (rc->has_ticket &&
	     (r = smg_wr_bytes(&w, rc->ticket, SMG_AUDIT_DIGEST_LEN)) != 0) ||
	    (r = smg_wr_u8(&w, rc->tpm)) != 0 ||
	    (rc->tpm && (r = smg_wr_bytes(&w, rc->ak, SMG_AUDIT_AK_LEN)) != 0))
		return r;
	*len = w.off;
	return SMG_OK;
}

static int rd_name(struct smg_rd *rd, char *out, size_t max)
{
	const uint8_t *p;
	size_t n;
	int r;

	if ((r = smg_rd_string16(rd, max, &p, &n)) != 0)
		return r;
	if (n == 0 || memchr(p, '\0', n) != NULL)
		return SMG_ERR_PROTO;
	memcpy(out, p, n);
	out[n] = '\0';
	return audit_name_ok(out, max) ? SMG_OK : SMG_ERR_PROTO;
}

/* A flag byte is 0 or 1; anything else is a second spelling of the same
 * receipt and is refused. */
static int rd_flag(struct smg_rd *rd, bool *v)
{
	uint8_t b;
	int r;

	if ((r = smg_rd_u8(rd, &b)) != 0)
		return r;
	if (b > 1)
		return SMG_ERR_PROTO;
	*v = b;
	return SMG_OK;
}

int smg_audit_receipt_decode(const uint8_t *buf, size_t len,
			     struct smg_audit_receipt *out)
{
	struct smg_rd rd;
	uint8_t ver;
	int r;

	memset(out, 0, sizeof(*out));
	if (len > SMG_RECEIPT_MAX)
		return SMG_ERR_TOO_LONG;
	smg_rd_init(&rd, buf, len);
	if ((r = smg_rd_u8(&rd, &ver)) != 0)
		return r;
	if (ver != SMG_RECEIPT_VERSION)
		return SMG_ERR_VERSION;
	if ((r = rd_name(&rd, out->id, SMG_AUDIT_ID_MAX)) != 0 ||
	    (r = smg_rd_bytes(&rd, out->manifest, SMG_AUDIT_DIGEST_LEN)) != 0 ||
	    (r = smg_rd_bytes(&rd, out->transcript, SMG_AUDIT_DIGEST_LEN)) != 0 ||
	    (r = rd_name(&rd, out->src, SMG_AUDIT_NAME_MAX)) != 0 ||
	    (r = smg_rd_bytes(&rd, out->src_key, SMG_AUDIT_KEY_LEN)) != 0 ||
	    (r = rd_name(&rd, out->dst, SMG_AUDIT_NAME_MAX)) != 0 ||
	    (r = smg_rd_bytes(&rd, out->dst_key, SMG_AUDIT_KEY_LEN)) != 0 ||
	    (r = smg_rd_u8(&rd, &out->result)) != 0 ||
	    (r = smg_rd_u8(&rd, &out->outcome)) != 0 ||
	    (r = smg_rd_u64(&rd, &out->plan_at_ms)) != 0 ||
	    (r = smg_rd_u64(&rd, &out->verified_at_ms)) != 0 ||
	    (r = rd_flag(&rd, &out->has_ticket)) != 0 ||
	    (out->has_ticket &&
	     (r = smg_rd_bytes(&rd, out->ticket, SMG_AUDIT_DIGEST_LEN)) != 0) ||
	    (r = rd_flag(&rd, &out->tpm)) != 0 ||
	    (out->tpm && (r = smg_rd_bytes(&rd, out->ak, SMG_AUDIT_AK_LEN)) != 0))
		return r;
	if (out->tpm && out->ak[0] != 0x04)
		return SMG_ERR_PROTO;
	return smg_rd_end(&rd);
}

/* "secmig receipt v1\0" || blob: what both the host key and the AK sign. */
int audit_receipt_msg(const uint8_t *blob, size_t len, uint8_t *msg, size_t cap,
		      size_t *mlen)
{
	if (len > SMG_RECEIPT_MAX || sizeof(SMG_RECEIPT_CTX) + len > cap)
		return SMG_ERR_TOO_LONG;
	memcpy(msg, SMG_RECEIPT_CTX, sizeof(SMG_RECEIPT_CTX));
	memcpy(msg + sizeof(SMG_RECEIPT_CTX), blob, len);
	*mlen = sizeof(SMG_RECEIPT_CTX) + len;
	return SMG_OK;
}

int smg_audit_receipt_sig_check(const uint8_t *blob, size_t len,
				const uint8_t key[SMG_AUDIT_KEY_LEN],
				const uint8_t sig[SMG_AUDIT_SIG_LEN], const uint8_t *ak,
				const uint8_t *tpm_sig)
{
	uint8_t msg[sizeof(SMG_RECEIPT_CTX) + SMG_RECEIPT_MAX];
	size_t mlen;

	if (audit_receipt_msg(blob, len, msg, sizeof(msg), &mlen) != SMG_OK)
		return SMG_ERR_BAD_SIG;
	if (crypto_sign_verify_detached(sig, msg, mlen, key) != 0)
		return SMG_ERR_BAD_SIG;
	if (tpm_sig != NULL && (ak == NULL || smg_p256_verify(ak, msg, mlen, tpm_sig,
							      tpm_sig + 32) != SMG_OK))
		return SMG_ERR_BAD_SIG;
	return SMG_OK;
}
