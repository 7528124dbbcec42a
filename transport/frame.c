/* Encrypted framing: [u32 BE n][AEAD message of n bytes], the message's
 * plaintext being [flags][type][payload] and its last 16 bytes the MAC
 * (aead.c: XChaCha20-Poly1305 with a per-direction frame counter in the
 * nonce). Sealing and opening are in place: the payload is encrypted where
 * the caller put it, at buf + FRAME_PAYLOAD_OFF. No payload copy.
 *
 * The flags byte carries what secretstream's tag did (MESSAGE, REKEY,
 * FINAL). It is encrypted with the type, so an observer sees lengths only,
 * as before; being plaintext under the MAC it is authenticated as well as
 * associated data would be. Replay, reordering or a dropped frame change
 * the counter the receiver expects, so the MAC fails; a stream cut short
 * lacks the authenticated FINAL. */
#include <string.h>

#include "transport/internal.h"

void smg_frame_tx_key(struct frame_tx *tx, const uint8_t key[SS_KEY],
		      const uint8_t salt[SS_HEADER])
{
	smg_aead_init(&tx->k, key, salt);
	tx->since_rekey = 0;
	tx->final = false;
}

void smg_frame_rx_key(struct frame_rx *rx, const uint8_t key[SS_KEY],
		      const uint8_t salt[SS_HEADER])
{
	smg_aead_init(&rx->k, key, salt);
	rx->final = false;
}

int smg_frame_seal(struct frame_tx *tx, uint8_t *buf, uint8_t type, size_t len,
		   bool final, size_t *wire)
{
	uint8_t flags = FRAME_FLAG_MESSAGE;
	uint8_t *m = buf + FRAME_LEN_BYTES;
	size_t mlen = FRAME_HDR_BYTES + len;
	int r;

	if (len > SMG_FRAME_PAYLOAD_MAX)
		return SMG_ERR_TOO_LONG;
	if (tx->final)
		return SMG_ERR_AFTER_FINAL;
	if (final)
		flags = FRAME_FLAG_FINAL;
	else if (tx->since_rekey + len + 1 >= tx->rekey_bytes ||
		 (tx->rekey_at_ms != 0 && smg_now_ms() >= tx->rekey_at_ms))
		flags = FRAME_FLAG_REKEY;
	m[0] = flags;
	m[1] = type;
	if ((r = smg_aead_seal(&tx->k, m, mlen, NULL, 0, m + mlen)) != SMG_OK)
		return r;
	smg_store_be32(buf, (uint32_t)(mlen + AEAD_MAC_LEN));
	if (flags == FRAME_FLAG_REKEY) {
		smg_aead_rekey(&tx->k);
		tx->since_rekey = 0;
		if (tx->rekey_at_ms != 0)
			tx->rekey_at_ms = smg_now_ms() + SMG_REKEY_INTERVAL_MS;
	} else {
		tx->since_rekey += len + 1;
	}
	tx->final = final;
	*wire = FRAME_LEN_BYTES + mlen + AEAD_MAC_LEN;
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
	const struct smg_frame_info *fi;
	uint8_t *m = buf + FRAME_LEN_BYTES, flags;
	size_t mlen = wire - FRAME_LEN_BYTES - AEAD_MAC_LEN;

	if (rx->final)
		return SMG_ERR_AFTER_FINAL;
	if (wire < FRAME_LEN_BYTES + FRAME_MSG_MIN)
		return SMG_ERR_PROTO;
	if (smg_aead_open(&rx->k, m, mlen, NULL, 0, m + mlen) != SMG_OK)
		return SMG_ERR_DECRYPT; /* tampered, replayed, reordered or mis-keyed */
	flags = m[0];
	out->type = m[1];
	out->payload = m + FRAME_HDR_BYTES;
	out->len = mlen - FRAME_HDR_BYTES;
	if ((fi = smg_proto_frame_info(out->type)) == NULL)
		return SMG_ERR_UNKNOWN_TYPE;
	/* Handshake frames never travel encrypted; a payload over the type's
	 * cap is a protocol error even if it fits a frame. */
	if (fi->kind == SMG_FK_HANDSHAKE || out->len > fi->max_payload)
		return SMG_ERR_PROTO;
	if (flags == FRAME_FLAG_FINAL) {
		if (out->type != SMG_FT_CLOSE)
			return SMG_ERR_PROTO;
		rx->final = true;
		return SMG_ERR_EOF;
	}
	if (out->type == SMG_FT_CLOSE)
		return SMG_ERR_PROTO; /* CLOSE must carry FINAL */
	if (flags == FRAME_FLAG_REKEY)
		smg_aead_rekey(&rx->k);
	else if (flags != FRAME_FLAG_MESSAGE)
		return SMG_ERR_PROTO; /* no other flag values exist */
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

	smg_frame_rx_key(&rx, key, header);
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
		} else if (f.type != SMG_FT_DISK_CHUNK) {
			/* DISK_CHUNK's record frame is storage's to parse
			 * (fuzz_stg_records); control frames are ours. */
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
