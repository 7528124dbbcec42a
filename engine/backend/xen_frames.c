/* Frame sets of the xen backend: which guest frames are populated, kept as
 * bitmaps (64 frames a word, bit i%64 of word i/64) and carried in the plan
 * and the state blob as sorted, disjoint [start,end) ranges. Nothing here
 * calls Xen: unit-tested off dom0 (test/xen/test_frames.c). */
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "engine/backend/xen_stream.h"

/* Start or end a range at frame p as the bit there is on or off. */
static void step(bool on, uint64_t p, bool *in, uint64_t *start, uint64_t (*r)[2],
		 size_t max, size_t *n)
{
	if (on && !*in) {
		*start = p;
		*in = true;
	} else if (!on && *in) {
		if (*n < max) {
			r[*n][0] = *start;
			r[*n][1] = p;
		}
		(*n)++;
		*in = false;
	}
}

size_t smg_xf_ranges_of(const uint64_t *bm, uint64_t nbits, uint64_t (*r)[2], size_t max)
{
	size_t n = 0;
	bool in = false;
	uint64_t start = 0;

	for (uint64_t p = 0; p < nbits;) {
		uint64_t w = bm[p / 64];

		/* whole words of zeros or ones at once */
		if (p % 64 == 0 && p + 64 <= nbits && (w == 0 || w == UINT64_MAX)) {
			step(w != 0, p, &in, &start, r, max, &n);
			p += 64;
			continue;
		}
		step((w >> (p % 64)) & 1, p, &in, &start, r, max, &n);
		p++;
	}
	step(false, nbits, &in, &start, r, max, &n);
	return n;
}

void smg_xf_bitmap_set_ranges(uint64_t *bm, const uint64_t (*r)[2], size_t n)
{
	for (size_t i = 0; i < n; i++)
		for (uint64_t p = r[i][0]; p < r[i][1];) {
			if (p % 64 == 0 && p + 64 <= r[i][1]) {
				bm[p / 64] = UINT64_MAX;
				p += 64;
			} else {
				bm[p / 64] |= UINT64_C(1) << (p % 64);
				p++;
			}
		}
}

uint64_t smg_xf_ranges_frames(const uint64_t (*r)[2], size_t n)
{
	uint64_t t = 0;

	for (size_t i = 0; i < n; i++)
		t += r[i][1] - r[i][0];
	return t;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Close the smallest gaps until at most max ranges are left: a superset
 * of the frames, for a plan record of bounded size. */
int smg_xf_ranges_cover(uint64_t (*r)[2], size_t *n, size_t max)
{
	size_t k, lt = 0, out = 0;
	uint64_t *gaps, t;

	if (max == 0)
		return SMG_ERR_INVAL;
	if (*n <= max)
		return 0;
	k = *n - max; /* gaps to close */
	if ((gaps = malloc((*n - 1) * sizeof(*gaps))) == NULL)
		return SMG_ERR_NOMEM;
	for (size_t i = 0; i + 1 < *n; i++)
		gaps[i] = r[i + 1][0] - r[i][1];
	qsort(gaps, *n - 1, sizeof(*gaps), cmp_u64);
	t = gaps[k - 1];
	for (size_t i = 0; i < k; i++)
		lt += gaps[i] < t;
	free(gaps);
	k -= lt; /* gaps of exactly t that may still close */
	for (size_t i = 1; i < *n; i++) {
		uint64_t g = r[i][0] - r[out][1];

		if (g < t || (g == t && k > 0)) {
			if (g == t)
				k--;
			r[out][1] = r[i][1];
		} else {
			out++;
			r[out][0] = r[i][0];
			r[out][1] = r[i][1];
		}
	}
	*n = out + 1;
	return 0;
}

void smg_xf_update(uint64_t *pop, const uint64_t *now, uint64_t *appeared,
		   uint64_t *dirty, uint64_t nbits, struct smg_xf_delta *d)
{
	uint64_t words = (nbits + 63) / 64;

	memset(d, 0, sizeof(*d));
	for (uint64_t w = 0; w < words; w++) {
		uint64_t mask = w == words - 1 && nbits % 64
				    ? (UINT64_C(1) << (nbits % 64)) - 1
				    : UINT64_MAX;
		uint64_t nw = now[w] & mask, ch = (pop[w] ^ nw) & mask;

		if (ch == 0)
			continue;
		d->appeared += (uint64_t)__builtin_popcountll(ch & nw);
		d->gone += (uint64_t)__builtin_popcountll(ch & ~nw);
		d->newly_dirty += (uint64_t)__builtin_popcountll(ch & ~dirty[w]);
		appeared[w] |= ch & nw;
		dirty[w] |= ch;
		pop[w] = nw;
	}
}

uint64_t smg_xf_or_new(uint64_t *dst, const uint64_t *src, uint64_t nbits)
{
	uint64_t words = (nbits + 63) / 64, n = 0;

	for (uint64_t w = 0; w < words; w++) {
		uint64_t mask = w == words - 1 && nbits % 64
				    ? (UINT64_C(1) << (nbits % 64)) - 1
				    : UINT64_MAX;
		uint64_t add = src[w] & mask & ~dst[w];

		n += (uint64_t)__builtin_popcountll(add);
		dst[w] |= add;
	}
	return n;
}
