/* WAIO's rounds and the stop rule (docs/storage.md, "Convergence"): a
 * chunk the destination has goes again only as the sectors the guest wrote
 * since (the destination rehashes it after the frame, not in the pause);
 * chunks the guest keeps rewriting are held back for the pause in at most
 * half the pause's budget, so the chunks written in the last round still
 * fit beside them; a chunk written only once is never held; the
 * destination ends up equal to the guest's view, digests agreeing. */
#include "check.h"
#include "util.h"

#define SIZE  (8ull << 20)
#define CHUNK (64u << 10)
/* On the wire, a chunk whose delta is two 4 KiB writes: two records. */
#define DELTA2 (2 * (4096 + SMG_STG_REC_HDR))
/* What such a chunk costs the pause: the whole chunk (both sides rehash
 * it; src.c pause_cost_of), not its delta. */
#define PAUSE_COST CHUNK

static uint8_t *model;
static char *dir;

static void guest_write(struct smg_vdisk *d, uint64_t off, size_t n, uint8_t seed)
{
	uint8_t *buf = malloc(n);

	util_pattern(buf, n, off, seed);
	CHECK_EQ(smg_vdisk_write(d, buf, n, off), 0);
	memcpy(model + off, buf, n);
	free(buf);
}

/* Chunks [c0, c1) written twice each, 4 KiB apiece, at two places. */
static void rewrite(struct smg_vdisk *d, uint64_t c0, uint64_t c1, uint8_t seed)
{
	for (uint64_t c = c0; c < c1; c++) {
		guest_write(d, c * CHUNK + 8192, 4096, seed);
		guest_write(d, c * CHUNK + 40960, 4096, (uint8_t)(seed + 1));
	}
}

static int file_matches_model(const char *path)
{
	uint8_t *buf = malloc(SIZE);
	FILE *f = fopen(path, "rb");
	int ok = f && fread(buf, 1, SIZE, f) == SIZE && memcmp(buf, model, SIZE) == 0;

	if (f)
		fclose(f);
	free(buf);
	return ok;
}

static void run_holdback(void)
{
	static const uint64_t ranges[] = {0, 3 << 20, 5 << 20, 8 << 20};
	struct smg_stg_src_opts so = {.mode = SMG_STG_MODE_WAIO, .disk_id = 0};
	struct smg_vdisk_opts o = {.chunk_size = CHUNK};
	char src_path[256], dst_path[256];
	struct smg_stg_src *src = NULL;
	struct smg_stg_dst *dst = NULL;
	struct smg_stg_stats st0, st1, dst_st;
	struct smg_stg_pending p;
	struct smg_vdisk *d = NULL;
	FILE *f;

	snprintf(src_path, sizeof(src_path), "%s/hold.img", dir);
	snprintf(dst_path, sizeof(dst_path), "%s/hold-dst.img", dir);
	CHECK_EQ(util_make_image(src_path, SIZE, ranges, 2), 0);
	f = fopen(src_path, "rb");
	CHECK(f != NULL && fread(model, 1, SIZE, f) == SIZE);
	if (f)
		fclose(f);
	o.path = src_path;
	o.surrogate_dir = dir;
	o.hot_threshold = 1000000; /* no hot copies: chunks stay partly covered */
	CHECK_EQ(smg_vdisk_open(&o, &d), 0);
	if (d == NULL)
		return;
	CHECK_EQ(smg_stg_src_begin(d, &so, &src), 0);
	CHECK_EQ(smg_stg_dst_open(dst_path, SIZE, CHUNK, 0, &dst), 0);
	/* The pause may carry 8 such chunks. */
	smg_stg_src_set_budget(src, 8ull * PAUSE_COST);
	CHECK_EQ(util_pump(src, dst, SMG_STG_PHASE_BULK, 0), 0);

	/* Round 1 carries 32 rewritten chunks (nothing held: no round before),
	 * each as its two 4 KiB writes, not 64 KiB. */
	rewrite(d, 0, 32, 1);
	smg_stg_src_get_pending(src, &p);
	CHECK_EQ(p.chunks, 32);
	CHECK_EQ(p.bytes, 32ull * PAUSE_COST);
	smg_stg_src_get_stats(src, &st0);
	CHECK_EQ(util_pump(src, dst, SMG_STG_PHASE_ITER, 0), 0);
	smg_stg_src_get_stats(src, &st1);
	CHECK(st1.wire_bytes - st0.wire_bytes <= 32ull * DELTA2 + 64);
	CHECK_EQ(st1.data_bytes - st0.data_bytes, 32ull * 8192);
	smg_stg_dst_get_stats(dst, &dst_st);
	CHECK_EQ(dst_st.rehashed, 32ull * CHUNK); /* after the frame, not in the pause */
	smg_stg_src_get_pending(src, &p);
	CHECK_EQ(p.held, 0);
	/* Rewritten again, twice each: candidates for the pause, but only 4
	 * (half the budget) are held; one chunk written once is never held. */
	rewrite(d, 0, 32, 3);
	guest_write(d, 100 * CHUNK + 512, 1024, 5);
	CHECK_EQ(util_pump(src, dst, SMG_STG_PHASE_ITER, 0), 0);
	smg_stg_src_get_pending(src, &p);
	CHECK_EQ(p.held, 4);
	CHECK_EQ(p.chunks, 4);
	/* The guest calms down to three chunks: the held four plus them fit
	 * the budget of 8 (with the old rule, 8 held + 3 did not). */
	rewrite(d, 40, 43, 7);
	smg_stg_src_get_pending(src, &p);
	CHECK_EQ(p.chunks, 7);
	CHECK(p.bytes <= 8ull * PAUSE_COST);

	CHECK_EQ(util_finish(d, src, dst), 0);
	CHECK(file_matches_model(dst_path));
	smg_vdisk_close(d);
}

int main(void)
{
	smg_log_set_level(SMG_LOG_ERROR);
	dir = util_tmpdir();
	model = malloc(SIZE);
	if (dir == NULL || model == NULL)
		return 1;
	run_holdback();
	util_rmdir(dir);
	free(dir);
	free(model);
	return check_result("storage_converge");
}
