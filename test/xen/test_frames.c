/* The xen backend's frame sets, off dom0: populated frames as bitmaps and
 * ranges (what the plan and the state blob carry), the sweep update that
 * turns ballooning into dirty frames, and the state blob's final set. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

#if SMG_HAVE_XEN
#include "base/base.h"
#include "engine/backend/xen_internal.h"

/* A 128 MiB PVH guest as Xen 4.17 lays it out: RAM from 0 (less a few
 * frames libxl leaves out), the special pages below 4 GiB at the top. */
#define P2M 0xff000u
static const uint64_t pvh[][2] = {{0, 0x9f}, {0x100, 0x8000}, {0xfeff0, 0xff000}};

static uint64_t *bm_new(uint64_t nbits)
{
	uint64_t *b = calloc((nbits + 63) / 64, sizeof(uint64_t));

	if (b == NULL)
		abort();
	return b;
}

static bool get(const uint64_t *b, uint64_t i)
{
	return (b[i / 64] >> (i % 64)) & 1;
}

static void set(uint64_t *b, uint64_t i, bool on)
{
	if (on)
		b[i / 64] |= UINT64_C(1) << (i % 64);
	else
		b[i / 64] &= ~(UINT64_C(1) << (i % 64));
}

static void test_pvh_layout(void)
{
	uint64_t *b = bm_new(P2M), r[8][2];
	size_t n;

	smg_xf_bitmap_set_ranges(b, pvh, 3);
	CHECK_EQ(smg_xs_bitmap_count(b, P2M), 0x9f + 0x7f00 + 0x10);
	CHECK_EQ(smg_xf_ranges_frames(pvh, 3), 0x9f + 0x7f00 + 0x10);
	n = smg_xf_ranges_of(b, P2M, r, 8);
	CHECK_EQ(n, 3);
	CHECK(memcmp(r, pvh, sizeof(pvh)) == 0);
	/* only the count when there is no room, the first ones when some */
	CHECK_EQ(smg_xf_ranges_of(b, P2M, NULL, 0), 3);
	memset(r, 0, sizeof(r));
	CHECK_EQ(smg_xf_ranges_of(b, P2M, r, 1), 3);
	CHECK(r[0][0] == 0 && r[0][1] == 0x9f && r[1][1] == 0);
	free(b);
}

/* Random sets against a bit-by-bit reference, lengths not a multiple of 64. */
static void test_roundtrip(void)
{
	uint64_t seed = 0x9e3779b97f4a7c15u;

	for (int t = 0; t < 200; t++) {
		uint64_t nbits = 1 + (uint64_t)(t * 37 % 700), (*r)[2];
		uint64_t *b = bm_new(nbits), *c = bm_new(nbits), want = 0;
		size_t n, runs = 0;
		bool prev = false;

		for (uint64_t i = 0; i < nbits; i++) {
			seed = seed * 6364136223846793005u + 1442695040888963407u;
			/* long runs: flip with probability 1/8, or 1/2 */
			bool on = (seed >> 60) < (t % 2 ? 8u : 2u) ? !prev : prev;

			if (t % 7 == 0)
				on = true; /* all ones, ending at nbits */
			set(b, i, on);
			runs += on && !prev;
			want += on;
			prev = on;
		}
		n = smg_xf_ranges_of(b, nbits, NULL, 0);
		CHECK_EQ(n, runs);
		if ((r = calloc(n + 1, sizeof(*r))) == NULL)
			abort();
		CHECK_EQ(smg_xf_ranges_of(b, nbits, r, n), n);
		for (size_t i = 0; i < n; i++) {
			CHECK(r[i][0] < r[i][1] && r[i][1] <= nbits);
			CHECK(i == 0 || r[i][0] > r[i - 1][1]); /* disjoint, apart */
		}
		CHECK_EQ(smg_xf_ranges_frames((const uint64_t(*)[2])r, n), want);
		smg_xf_bitmap_set_ranges(c, (const uint64_t(*)[2])r, n);
		CHECK(memcmp(b, c, (nbits + 63) / 64 * 8) == 0);
		free(r);
		free(b);
		free(c);
	}
}

static void test_cover(void)
{
	/* gaps 10, 1, 5, 1 */
	uint64_t r[5][2] = {{0, 10}, {20, 30}, {31, 40}, {45, 50}, {51, 60}};
	uint64_t one[5][2], tie[4][2] = {{0, 1}, {3, 4}, {6, 7}, {9, 10}};
	size_t n = 5;

	memcpy(one, r, sizeof(r));
	CHECK_EQ(smg_xf_ranges_cover(r, &n, 5), 0);
	CHECK_EQ(n, 5); /* already few enough: untouched */
	CHECK_EQ(smg_xf_ranges_cover(r, &n, 3), 0);
	CHECK_EQ(n, 3); /* the two gaps of 1 close */
	CHECK(r[0][0] == 0 && r[0][1] == 10 && r[1][0] == 20 && r[1][1] == 40 &&
	      r[2][0] == 45 && r[2][1] == 60);
	n = 5;
	CHECK_EQ(smg_xf_ranges_cover(one, &n, 1), 0);
	CHECK(n == 1 && one[0][0] == 0 && one[0][1] == 60);
	/* equal gaps: exactly as many close as needed */
	n = 4;
	CHECK_EQ(smg_xf_ranges_cover(tie, &n, 2), 0);
	CHECK_EQ(n, 2);
	CHECK(tie[0][0] == 0 && tie[1][1] == 10);
	CHECK_EQ(smg_xf_ranges_cover(tie, &n, 0), SMG_ERR_INVAL);
}

/* Round 0 sends the populated set; the guest balloons between rounds; the
 * sweeps turn that into dirty frames, and the stopped sweep resends every
 * frame that appeared. The final set is what the destination ends with. */
static void test_balloon(void)
{
	const uint64_t nb = 1000;
	uint64_t *pop = bm_new(nb), *now = bm_new(nb), *app = bm_new(nb);
	uint64_t *dirty = bm_new(nb), *sent = bm_new(nb);
	struct smg_xf_delta d;

	for (uint64_t i = 0; i < 600; i++)
		set(pop, i, true);
	memcpy(sent, pop, (nb + 63) / 64 * 8); /* round 0 */
	memcpy(now, pop, (nb + 63) / 64 * 8);
	/* balloon out 100..149, populate 700..719; 10 and 700 also written */
	for (uint64_t i = 100; i < 150; i++)
		set(now, i, false);
	for (uint64_t i = 700; i < 720; i++)
		set(now, i, true);
	set(dirty, 10, true);
	set(dirty, 700, true); /* already dirty: not counted twice */
	smg_xf_update(pop, now, app, dirty, nb, &d);
	CHECK_EQ(d.appeared, 20);
	CHECK_EQ(d.gone, 50);
	CHECK_EQ(d.newly_dirty, 69);
	CHECK_EQ(smg_xs_bitmap_count(dirty, nb), 71);
	CHECK(get(dirty, 100) && get(dirty, 149) && get(dirty, 719) && !get(dirty, 150));
	CHECK(memcmp(pop, now, (nb + 63) / 64 * 8) == 0);
	CHECK_EQ(smg_xs_bitmap_count(app, nb), 20);
	/* round 1 sends the dirty frames (the gone ones read as zeros) */
	for (uint64_t i = 0; i < nb; i++)
		if (get(dirty, i) && get(pop, i))
			set(sent, i, true);
	memset(dirty, 0, (nb + 63) / 64 * 8);
	/* nothing changes; the stopped harvest: the appeared frames again */
	smg_xf_update(pop, now, app, dirty, nb, &d);
	CHECK(d.appeared == 0 && d.gone == 0 && d.newly_dirty == 0);
	CHECK_EQ(smg_xf_or_new(dirty, app, nb), 20);
	CHECK_EQ(smg_xf_or_new(dirty, app, nb), 0);
	/* the destination: allocate final-but-unsent, give back sent-but-gone */
	uint64_t alloc = 0, back = 0;
	for (uint64_t i = 0; i < nb; i++) {
		alloc += get(pop, i) && !get(sent, i);
		back += get(sent, i) && !get(pop, i);
	}
	CHECK_EQ(alloc, 0);
	CHECK_EQ(back, 50);
	CHECK_EQ(smg_xs_bitmap_count(pop, nb), 570);
	/* bits at or past nbits never count */
	uint64_t w[2] = {0, 0}, s2[2] = {~UINT64_C(0), ~UINT64_C(0)};
	CHECK_EQ(smg_xf_or_new(w, s2, 70), 70);
	CHECK_EQ(w[1], 0x3f);
	free(pop);
	free(now);
	free(app);
	free(dirty);
	free(sent);
}

/* A state blob: TSC_INFO, then a RAM record of n ranges (raw, as given). */
static void state(struct smg_xs_mem *m, const uint64_t (*r)[2], size_t n, int rams)
{
	struct smg_xs_sink s = {smg_xs_mem_write, m, 0};
	uint8_t tsc[24] = {0};

	m->len = 0;
	CHECK_EQ(smg_xs_write_record(&s, SMG_XS_REC_TSC_INFO, tsc, sizeof(tsc)), 0);
	for (int i = 0; i < rams; i++)
		CHECK_EQ(smg_xen_write_ranges(&s, r, n), 0);
}

static void test_state(void)
{
	struct smg_xs_mem m = {0};
	struct smg_xen_state st;
	const uint64_t unsorted[][2] = {{0x100, 0x200}, {0, 0x10}};
	const uint64_t overlap[][2] = {{0, 0x20}, {0x10, 0x30}};
	const uint64_t empty[][2] = {{5, 5}};
	const uint64_t past[][2] = {{0, P2M + 1}};

	state(&m, pvh, 3, 1);
	CHECK_EQ(smg_xen_state_parse(m.p, m.len, P2M, &st), 0);
	CHECK_EQ(st.n_ranges, 3);
	CHECK(st.ranges != NULL && memcmp(st.ranges, pvh, sizeof(pvh)) == 0);
	smg_xen_state_free(&st);
	CHECK(st.ranges == NULL && st.n_ranges == 0);
	/* the frame set is not optional, and comes once */
	state(&m, pvh, 3, 0);
	CHECK_EQ(smg_xen_state_parse(m.p, m.len, P2M, &st), SMG_ERR_PROTO);
	CHECK(st.ranges == NULL);
	state(&m, pvh, 3, 2);
	CHECK_EQ(smg_xen_state_parse(m.p, m.len, P2M, &st), SMG_ERR_PROTO);
	state(&m, pvh, 0, 1);
	CHECK_EQ(smg_xen_state_parse(m.p, m.len, P2M, &st), SMG_ERR_PROTO);
	state(&m, unsorted, 2, 1);
	CHECK_EQ(smg_xen_state_parse(m.p, m.len, P2M, &st), SMG_ERR_PROTO);
	state(&m, overlap, 2, 1);
	CHECK_EQ(smg_xen_state_parse(m.p, m.len, P2M, &st), SMG_ERR_PROTO);
	state(&m, empty, 1, 1);
	CHECK_EQ(smg_xen_state_parse(m.p, m.len, P2M, &st), SMG_ERR_PROTO);
	/* beyond the destination's physmap */
	state(&m, past, 1, 1);
	CHECK_EQ(smg_xen_state_parse(m.p, m.len, P2M, &st), SMG_ERR_PROTO);
	CHECK_EQ(smg_xen_state_parse(m.p, m.len, P2M + 1, &st), 0);
	smg_xen_state_free(&st);
	/* one range past the cap */
	{
		size_t n = SMG_XS_STATE_RANGES_MAX + 1;
		uint64_t(*many)[2] = calloc(n, sizeof(*many));

		if (many == NULL)
			abort();
		for (size_t i = 0; i < n; i++) {
			many[i][0] = 2 * i;
			many[i][1] = 2 * i + 1;
		}
		state(&m, (const uint64_t(*)[2])many, n, 1);
		CHECK_EQ(smg_xen_state_parse(m.p, m.len, 4 * n, &st), SMG_ERR_PROTO);
		state(&m, (const uint64_t(*)[2])many, n - 1, 1);
		CHECK_EQ(smg_xen_state_parse(m.p, m.len, 4 * n, &st), 0);
		CHECK_EQ(st.n_ranges, n - 1);
		smg_xen_state_free(&st);
		free(many);
	}
	free(m.p);
}

int main(void)
{
	test_pvh_layout();
	test_roundtrip();
	test_cover();
	test_balloon();
	test_state();
	return check_result("test_xen_frames");
}
#else
int main(void)
{
	puts("test_xen_frames: built without libxen-dev");
	return T_SKIP;
}
#endif
