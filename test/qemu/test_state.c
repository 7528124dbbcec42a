/* The device-state blob (qemu_state.c) arrives from the network: it must
 * round-trip, and every malformed blob is refused before a byte of it is
 * decompressed into an allocation it names. */
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "base/base.h"
#include "check.h"
#include "engine/backend/qemu_internal.h"

int main(void)
{
	size_t n = 600000, blen, rlen;
	uint8_t *raw = calloc(1, n), *blob, *back, *evil;

	for (size_t i = 0; i < n; i += 97)
		raw[i] = (uint8_t)i;
	CHECK_EQ(smg_qemu_state_encode(raw, n, &blob, &blen), SMG_OK);
	CHECK(blen < n / 2);
	CHECK_EQ(smg_qemu_state_decode(blob, blen, &back, &rlen), SMG_OK);
	CHECK(rlen == n && memcmp(back, raw, n) == 0);
	free(back);

	/* header fields: magic, version, codec, reserved */
	for (size_t off = 0; off < 8; off++) {
		blob[off] ^= 0x40;
		CHECK(smg_qemu_state_decode(blob, blen, &back, &rlen) != SMG_OK);
		CHECK(back == NULL);
		blob[off] ^= 0x40;
	}
	/* a size that disagrees with the frame, one over the cap, zero */
	uint32_t sizes[] = {(uint32_t)n - 1, (uint32_t)n + 1, SMG_QEMU_STATE_RAW_MAX + 1,
			    0};
	for (size_t i = 0; i < SMG_ARRAY_LEN(sizes); i++) {
		smg_store_be32(blob + 8, sizes[i]);
		CHECK(smg_qemu_state_decode(blob, blen, &back, &rlen) != SMG_OK);
	}
	smg_store_be32(blob + 8, (uint32_t)n);
	/* truncated, and with bytes after the frame */
	CHECK(smg_qemu_state_decode(blob, blen - 1, &back, &rlen) != SMG_OK);
	CHECK(smg_qemu_state_decode(blob, 5, &back, &rlen) != SMG_OK);
	evil = malloc(blen + 1);
	memcpy(evil, blob, blen);
	evil[blen] = 0;
	CHECK(smg_qemu_state_decode(evil, blen + 1, &back, &rlen) != SMG_OK);
	free(evil);
	/* a zstd bomb: 8 bytes claiming the cap, then garbage */
	uint8_t bomb[64];
	memcpy(bomb, blob, SMG_QEMU_STATE_HDR_LEN);
	smg_store_be32(bomb + 8, SMG_QEMU_STATE_RAW_MAX);
	memset(bomb + SMG_QEMU_STATE_HDR_LEN, 0xff,
	       sizeof(bomb) - SMG_QEMU_STATE_HDR_LEN);
	CHECK(smg_qemu_state_decode(bomb, sizeof(bomb), &back, &rlen) != SMG_OK);
	free(blob);
	free(raw);
	return check_result("test_qemu_state");
}
