/* libFuzzer harness: the encrypted frame decoder (length checks,
 * AEAD open in place, flags and type rules, FINAL / after-FINAL, then
 * the payload's bulk or control parser) over a stream of wire frames under
 * a fixed key (smg_frame_decode_stream).
 *
 * Random bytes almost never pass the MAC, so the first input byte picks a
 * mode: odd = the rest is raw wire bytes; even = the rest is a list of
 * plaintext frames [u8 flags][u8 type][u16 len][payload] that the harness
 * seals with the decoder's key first (flags bit 0: FINAL, bit 1: a tiny
 * rekey budget), so the fuzzer steers what the post-decrypt checks see. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "transport/internal.h"

static uint8_t wire[4 * 65536];
static uint8_t frame[FRAME_OVERHEAD + 65536 + 8];

static size_t seal_all(const uint8_t *p, size_t n)
{
	uint8_t key[SS_KEY], hdr[SS_HEADER];
	struct frame_tx tx = {0};
	size_t off = 0, w;

	smg_frame_fuzz_key(key, hdr);
	smg_frame_tx_key(&tx, key, hdr);
	tx.rekey_bytes = SMG_REKEY_BYTES;
	while (n >= 4) {
		uint8_t flags = p[0], type = p[1];
		size_t len = (size_t)p[2] << 8 | p[3];

		p += 4;
		n -= 4;
		if (len > n)
			len = n;
		memcpy(frame + FRAME_PAYLOAD_OFF, p, len);
		p += len;
		n -= len;
		tx.rekey_bytes = flags & 2 ? 1 : SMG_REKEY_BYTES;
		tx.final = false; /* let the fuzzer put frames after FINAL */
		if (smg_frame_seal(&tx, frame, type, len, flags & 1, &w) != 0 ||
		    off + w > sizeof(wire))
			break;
		memcpy(wire + off, frame, w);
		off += w;
	}
	return off;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;

	if (!ready)
		ready = sodium_init() >= 0;
	if (size < 1)
		return 0;
	if (data[0] & 1)
		smg_frame_decode_stream(data + 1, size - 1);
	else
		smg_frame_decode_stream(wire, seal_all(data + 1, size - 1));
	return 0;
}
