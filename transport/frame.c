/* Encrypted framing: [u32 BE n][secretstream message of n bytes], the
 * message's plaintext being [type][payload]. Sealing and opening are in
 * place: libsodium's push writes the encrypted tag byte at c[0] before it
 * reads m, and XORs m into c+1, so m == c+1 is safe; pull authenticates
 * the ciphertext before it decrypts c+1 into m == c+1. No payload copy. */
#include <string.h>

#include "transport/internal.h"

int smg_frame_seal(struct frame_tx *tx, uint8_t *buf, uint8_t type, size_t len,
		   bool final, size_t *wire)
{
	unsigned char tag = crypto_secretstream_xchacha20poly1305_TAG_MESSAGE;
	unsigned long long clen;
	uint8_t *c = buf + FRAME_LEN_BYTES;

	if (len > SMG_FRAME_PAYLOAD_MAX)
		return SMG_ERR_TOO_LONG;
	if (tx->final)
		return SMG_ERR_AFTER_FINAL;
	if (final)
		tag = crypto_secretstream_xchacha20poly1305_TAG_FINAL;
	else if (tx->since_rekey + len + 1 >= tx->rekey_bytes ||
		 (tx->rekey_at_ms != 0 && smg_now_ms() >= tx->rekey_at_ms))
		tag = crypto_secretstream_xchacha20poly1305_TAG_REKEY;
	c[1] = type;
	if (crypto_secretstream_xchacha20poly1305_push(&tx->st, c, &clen, c + 1, len + 1,
						       NULL, 0, tag) != 0)
		return SMG_ERR_CRYPTO;
	smg_store_be32(buf, (uint32_t)clen);
	if (tag == crypto_secretstream_xchacha20poly1305_TAG_REKEY) {
		tx->since_rekey = 0;
		if (tx->rekey_at_ms != 0)
			tx->rekey_at_ms = smg_now_ms() + SMG_REKEY_INTERVAL_MS;
	} else {
		tx->since_rekey += len + 1;
	}
	tx->final = final;
	*wire = FRAME_LEN_BYTES + (size_t)clen;
	return SMG_OK;
}

int smg_frame_check_len(const uint8_t *buf, size_t have, size_t *need)
{
	uint32_t n;

	if (have < FRAME_LEN_BYTES) {
		*need = FRAME_LEN_BYTES;
		return SMG_ERR_TRUNCATED;
	}
	n = smg_load_be32(buf);
	/* The length is the peer's unauthenticated claim: refuse it before
	 * waiting for, or making room for, that many bytes. */
	if (n > FRAME_MSG_MAX)
		return SMG_ERR_TOO_LONG;
	if (n < FRAME_MSG_MIN)
		return SMG_ERR_PROTO;
	*need = FRAME_LEN_BYTES + n;
	return have < *need ? SMG_ERR_TRUNCATED : SMG_OK;
}

int smg_frame_open(struct frame_rx *rx, uint8_t *buf, size_t wire, struct smg_frame *out)
{
	unsigned long long mlen;
	unsigned char tag;
	const struct smg_frame_info *fi;
	uint8_t *c = buf + FRAME_LEN_BYTES;

	if (rx->final)
		return SMG_ERR_AFTER_FINAL;
	if (crypto_secretstream_xchacha20poly1305_pull(
		&rx->st, c + 1, &mlen, &tag, c, wire - FRAME_LEN_BYTES, NULL, 0) != 0)
		return SMG_ERR_DECRYPT; /* tampered, replayed, reordered or mis-keyed */
	if (mlen < 1)
		return SMG_ERR_PROTO;
	out->type = c[1];
	out->payload = c + 2;
	out->len = (size_t)mlen - 1;
	if ((fi = smg_proto_frame_info(out->type)) == NULL)
		return SMG_ERR_UNKNOWN_TYPE;
	/* Handshake frames never travel encrypted; a payload over the type's
	 * cap is a protocol error even if it fits a frame. */
	if (fi->kind == SMG_FK_HANDSHAKE || out->len > fi->max_payload)
		return SMG_ERR_PROTO;
	if (tag == crypto_secretstream_xchacha20poly1305_TAG_FINAL) {
		if (out->type != SMG_FT_CLOSE)
			return SMG_ERR_PROTO;
		rx->final = true;
		return SMG_ERR_EOF;
	}
	if (out->type == SMG_FT_CLOSE)
		return SMG_ERR_PROTO; /* CLOSE must carry FINAL */
	if (tag != crypto_secretstream_xchacha20poly1305_TAG_MESSAGE &&
	    tag != crypto_secretstream_xchacha20poly1305_TAG_REKEY)
		return SMG_ERR_PROTO; /* PUSH is not used by this protocol */
	return SMG_OK;
}

/* Fuzz entry point. The key and header are fixed so that mutated inputs
 * built from a valid stream (fuzz/corpus/frame) reach the post-decrypt
 * checks; raw mutations exercise the length checks and the MAC. */
int smg_frame_decode_stream(const uint8_t *p, size_t len)
{
	static const uint8_t key[SS_KEY] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
	static const uint8_t header[SS_HEADER] = {9, 8, 7, 6, 5, 4, 3, 2, 1};
	static uint8_t buf[FRAME_WIRE_MAX];
	struct frame_rx rx = {0};
	struct smg_frame f;
	size_t off = 0, need;
	int r = SMG_OK;

	if (crypto_secretstream_xchacha20poly1305_init_pull(&rx.st, header, key) != 0)
		return SMG_ERR_CRYPTO;
	while (off < len) {
		if ((r = smg_frame_check_len(p + off, len - off, &need)) != 0)
			break;
		memcpy(buf, p + off, need); /* open works in place */
		off += need;
		r = smg_frame_open(&rx, buf, need, &f);
		if (r == SMG_ERR_EOF)
			continue; /* a later frame must then fail AFTER_FINAL */
		if (r != 0)
			break;
		if (f.type == SMG_FT_PAGES || f.type == SMG_FT_ZERO_PAGES) {
			struct smg_pages_hdr h;

			smg_pages_parse(f.payload, f.len, 4096,
					f.type == SMG_FT_ZERO_PAGES, &h);
		} else if (f.type == SMG_FT_DISK_CHUNK) {
			struct smg_disk_chunk_hdr h;

			smg_disk_chunk_parse(f.payload, f.len, &h);
		} else {
			ProtobufCMessage *m = NULL;

			if (smg_proto_unpack(f.type, f.payload, f.len, &m) == 0)
				smg_proto_free(m);
		}
	}
	sodium_memzero(&rx, sizeof(rx));
	return r;
}

/* Test/fuzz helper: the fixed key and header smg_frame_decode_stream uses. */
void smg_frame_fuzz_key(uint8_t key[SS_KEY], uint8_t header[SS_HEADER])
{
	static const uint8_t k[SS_KEY] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
	static const uint8_t h[SS_HEADER] = {9, 8, 7, 6, 5, 4, 3, 2, 1};

	memcpy(key, k, SS_KEY);
	memcpy(header, h, SS_HEADER);
}
