/* The input format of fuzz_dest and fuzz_resolve, shared with their seed
 * generator (fuzz/tools/gen_dest_corpus.c): a header byte, then records
 *   [channel][frame type][flags][length, be16][payload]
 * each one frame a peer sends, in order (a short last record takes what
 * is left). Flag FZ_FIX asks the harness to make the message's bindings
 * right before sealing it (the migration id, the config hash, the memory
 * root of the pages sent so far, the transcript, the signature), so the
 * fuzzer reaches the states behind those checks; without it the bytes go
 * out as they are. */
#ifndef SMG_FUZZ_DEST_INPUT_H
#define SMG_FUZZ_DEST_INPUT_H

#include <stddef.h>
#include <stdint.h>

#define FZ_FIX	   0x01u
#define FZ_REC_HDR 5u
#define FZ_REC_MAX 64u
/* The migration id every fixed-up message carries. */
#define FZ_ID "f022f022f022f022f022f022f022f022"

struct fz_rec {
	unsigned chan;
	uint8_t type, flags;
	const uint8_t *p;
	size_t len;
};

/* Split data[1..size) into at most FZ_REC_MAX records; returns how many. */
static inline size_t fz_records(const uint8_t *data, size_t size, struct fz_rec *r)
{
	size_t n = 0, at = 1;

	while (at + FZ_REC_HDR <= size && n < FZ_REC_MAX) {
		size_t len = (size_t)data[at + 3] << 8 | data[at + 4];

		r[n].chan = data[at];
		r[n].type = data[at + 1];
		r[n].flags = data[at + 2];
		at += FZ_REC_HDR;
		if (len > size - at)
			len = size - at;
		r[n].p = data + at;
		r[n].len = len;
		at += len;
		n++;
	}
	return n;
}

#endif
