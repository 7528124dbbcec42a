/* The destination's handling of data-channel frames (PAGES, ZERO_PAGES,
 * ROUND_END) from a peer: byte 0 picks the frame type, byte 1 the channel
 * and its round, the rest is the payload, applied to a 64-page in-memory
 * domain. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/internal.h"
#include "proto/proto.h"

#define PAGES 64
#define PS    4096

static uint8_t mem[PAGES * PS];

static int write_pages(struct smg_backend *self, const uint64_t *pfns, size_t n,
		       const uint8_t *data, bool zero_only)
{
	for (size_t i = 0; i < n; i++) {
		if (pfns[i] >= PAGES)
			abort(); /* the engine must have refused it */
		if (zero_only)
			memset(mem + pfns[i] * PS, 0, PS);
		else
			memcpy(mem + pfns[i] * PS, data + i * PS, PS);
	}
	return 0;
}

static const struct smg_backend_ops ops = {.name = "fuzz", .write_pages = write_pages};
static struct smg_backend be = {.ops = &ops};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct smg_xfer_dest d;
	struct smg_xfer_recv x = {.d = &d};
	static const uint8_t types[] = {SMG_FT_PAGES, SMG_FT_ZERO_PAGES, SMG_FT_ROUND_END,
					SMG_FT_PLAN};

	if (d.mk == NULL) {
		if (smg_merkle_new(PAGES, PS, &d.mk) != 0)
			return 0;
		d.be = &be;
		d.npages = PAGES;
		d.page_size = PS;
		d.nchan = 2;
		d.final_round = 3;
		d.known_round = 4;
		d.stop = true; /* a ROUND_END never waits */
		pthread_mutex_init(&d.lock, NULL);
		pthread_cond_init(&d.cond, NULL);
	}
	if (size < 2)
		return 0;
	/* byte 1: bit 0 the channel, bits 1-2 the channel's current round */
	x.chan = data[1] % 2;
	x.round = (data[1] >> 1) % 4;
	smg_xfer_recv_frame(&x, types[data[0] % 4], data + 2, size - 2);
	return 0;
}
