/* ticket: an operator's signed permission for one migration:
 *   u8 version | str16 operator | key(32) | str16 vm | str16 from | str16 to
 *   | u64 issued | u64 not_after | nonce(16) | Ed25519 signature(64)
 * over "secmig ticket v1\0" || everything before the signature. It travels
 * in the PLAN and is read from files: decoded with the bounded reader only,
 * names checked, nothing after the signature. */
#include <string.h>

#include <sodium.h>

#include "audit/internal.h"
#include "transport/transport.h"

#define ARMOR_BEGIN "-----BEGIN SECMIG TICKET-----"
#define ARMOR_END   "-----END SECMIG TICKET-----"
#define ARMOR_WRAP  64

static int encode_body(const struct smg_ticket *t, struct smg_wr *w)
{
	int r;

	if (!audit_name_ok(t->operator_name, SMG_AUDIT_NAME_MAX) ||
	    !audit_name_ok(t->vm, SMG_AUDIT_NAME_MAX) ||
	    !audit_name_ok(t->from, SMG_AUDIT_NAME_MAX) ||
	    !audit_name_ok(t->to, SMG_AUDIT_NAME_MAX))
		return SMG_ERR_INVAL;
	if ((r = smg_wr_u8(w, SMG_TICKET_VERSION)) != 0 ||
	    (r = smg_wr_string16(w, t->operator_name, strlen(t->operator_name),
				 SMG_AUDIT_NAME_MAX)) != 0 ||
	    (r = smg_wr_bytes(w, t->key, SMG_AUDIT_KEY_LEN)) != 0 ||
	    (r = smg_wr_string16(w, t->vm, strlen(t->vm), SMG_AUDIT_NAME_MAX)) != 0 ||
	    (r = smg_wr_string16(w, t->from, strlen(t->from), SMG_AUDIT_NAME_MAX)) != 0 ||
	    (r = smg_wr_string16(w, t->to, strlen(t->to), SMG_AUDIT_NAME_MAX)) != 0 ||
	    (r = smg_wr_u64(w, t->issued)) != 0 ||
	    (r = smg_wr_u64(w, t->not_after)) != 0 ||
	    (r = smg_wr_bytes(w, t->nonce, SMG_TICKET_NONCE_LEN)) != 0)
		return r;
	return SMG_OK;
}

static int signed_msg(const uint8_t *body, size_t len, uint8_t *msg, size_t cap,
		      size_t *mlen)
{
	if (sizeof(SMG_TICKET_CTX) + len > cap)
		return SMG_ERR_TOO_LONG;
	memcpy(msg, SMG_TICKET_CTX, sizeof(SMG_TICKET_CTX));
	memcpy(msg + sizeof(SMG_TICKET_CTX), body, len);
	*mlen = sizeof(SMG_TICKET_CTX) + len;
	return SMG_OK;
}

int smg_ticket_sign(struct smg_ticket *t, const struct smg_identity *op, uint8_t *buf,
		    size_t cap, size_t *len)
{
	uint8_t msg[sizeof(SMG_TICKET_CTX) + SMG_TICKET_MAX];
	struct smg_wr w;
	size_t mlen;
	int r;

	*len = 0;
	smg_identity_public(op, t->key);
	randombytes_buf(t->nonce, sizeof(t->nonce));
	smg_wr_init(&w, buf, cap);
	if ((r = encode_body(t, &w)) != 0)
		return r;
	t->signed_len = w.off;
	if ((r = signed_msg(buf, w.off, msg, sizeof(msg), &mlen)) != 0 ||
	    (r = smg_identity_sign(op, msg, mlen, t->sig)) != 0 ||
	    (r = smg_wr_bytes(&w, t->sig, sizeof(t->sig))) != 0)
		return r;
	*len = w.off;
	return SMG_OK;
}

static int rd_name(struct smg_rd *rd, char *out)
{
	const uint8_t *p;
	size_t n;
	int r;

	if ((r = smg_rd_string16(rd, SMG_AUDIT_NAME_MAX, &p, &n)) != 0)
		return r;
	if (n == 0 || memchr(p, '\0', n) != NULL)
		return SMG_ERR_PROTO;
	memcpy(out, p, n);
	out[n] = '\0';
	return audit_name_ok(out, SMG_AUDIT_NAME_MAX) ? SMG_OK : SMG_ERR_PROTO;
}

int smg_ticket_decode(const uint8_t *buf, size_t len, struct smg_ticket *out)
{
	struct smg_rd rd;
	uint8_t ver;
	int r;

	memset(out, 0, sizeof(*out));
	if (len > SMG_TICKET_MAX)
		return SMG_ERR_TOO_LONG;
	smg_rd_init(&rd, buf, len);
	if ((r = smg_rd_u8(&rd, &ver)) != 0)
		return r;
	if (ver != SMG_TICKET_VERSION)
		return SMG_ERR_VERSION;
	if ((r = rd_name(&rd, out->operator_name)) != 0 ||
	    (r = smg_rd_bytes(&rd, out->key, SMG_AUDIT_KEY_LEN)) != 0 ||
	    (r = rd_name(&rd, out->vm)) != 0 || (r = rd_name(&rd, out->from)) != 0 ||
	    (r = rd_name(&rd, out->to)) != 0 ||
	    (r = smg_rd_u64(&rd, &out->issued)) != 0 ||
	    (r = smg_rd_u64(&rd, &out->not_after)) != 0 ||
	    (r = smg_rd_bytes(&rd, out->nonce, SMG_TICKET_NONCE_LEN)) != 0)
		return r;
	out->signed_len = rd.off;
	if ((r = smg_rd_bytes(&rd, out->sig, SMG_AUDIT_SIG_LEN)) != 0)
		return r;
	return smg_rd_end(&rd);
}

bool smg_ticket_sig_ok(const uint8_t *buf, size_t len, const struct smg_ticket *t,
		       const uint8_t key[SMG_AUDIT_KEY_LEN])
{
	uint8_t msg[sizeof(SMG_TICKET_CTX) + SMG_TICKET_MAX];
	size_t mlen;

	if (t->signed_len > len ||
	    signed_msg(buf, t->signed_len, msg, sizeof(msg), &mlen) != SMG_OK)
		return false;
	return crypto_sign_verify_detached(t->sig, msg, mlen, key) == 0;
}

void smg_ticket_digest(const uint8_t *buf, size_t len, uint8_t out[SMG_AUDIT_DIGEST_LEN])
{
	audit_hash(buf, len, out);
}

int smg_ticket_armor(const uint8_t *buf, size_t len, char *out, size_t cap)
{
	char b64[sodium_base64_ENCODED_LEN(SMG_TICKET_MAX,
					   sodium_base64_VARIANT_ORIGINAL)];
	size_t off = 0, n;
	int k;

	if (len > SMG_TICKET_MAX)
		return SMG_ERR_TOO_LONG;
	audit_b64(buf, len, b64, sizeof(b64));
	n = strlen(b64);
	if ((k = snprintf(out, cap, "%s\n", ARMOR_BEGIN)) < 0 || (size_t)k >= cap)
		return SMG_ERR_NOSPACE;
	off = (size_t)k;
	for (size_t i = 0; i < n; i += ARMOR_WRAP) {
		k = snprintf(out + off, cap - off, "%.*s\n", ARMOR_WRAP, b64 + i);
		if (k < 0 || (size_t)k >= cap - off)
			return SMG_ERR_NOSPACE;
		off += (size_t)k;
	}
	k = snprintf(out + off, cap - off, "%s\n", ARMOR_END);
	return k < 0 || (size_t)k >= cap - off ? SMG_ERR_NOSPACE : SMG_OK;
}

/* Comment lines ('#') may precede the block; inside it only base64 lines. */
int smg_ticket_dearmor(const char *text, size_t len, uint8_t *buf, size_t cap,
		       size_t *out_len)
{
	char b64[SMG_TICKET_TEXT_MAX + 1];
	size_t off = 0, n = 0;
	bool in = false, done = false;
	const char *end;

	*out_len = 0;
	if (len > SMG_TICKET_TEXT_MAX)
		return SMG_ERR_TOO_LONG;
	if (memchr(text, '\0', len) != NULL)
		return SMG_ERR_PROTO;
	while (off < len && !done) {
		const char *nl = memchr(text + off, '\n', len - off);
		size_t l = nl != NULL ? (size_t)(nl - (text + off)) : len - off;
		const char *line = text + off;

		off += l + (nl != NULL);
		if (l > 0 && line[l - 1] == '\r')
			l--;
		if (!in) {
			if (l == strlen(ARMOR_BEGIN) && !memcmp(line, ARMOR_BEGIN, l))
				in = true;
			else if (l > 0 && line[0] != '#')
				return SMG_ERR_PROTO;
		} else if (l == strlen(ARMOR_END) && !memcmp(line, ARMOR_END, l)) {
			done = true;
		} else {
			if (n + l > sizeof(b64) - 1)
				return SMG_ERR_TOO_LONG;
			memcpy(b64 + n, line, l);
			n += l;
		}
	}
	if (!done)
		return SMG_ERR_TRUNCATED;
	b64[n] = '\0';
	if (sodium_base642bin(buf, cap, b64, n, NULL, out_len, &end,
			      sodium_base64_VARIANT_ORIGINAL) != 0 ||
	    end != b64 + n)
		return SMG_ERR_PROTO;
	return SMG_OK;
}
