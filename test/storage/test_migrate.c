/* In-process disk migration in both modes with guest I/O at every phase:
 * the destination equals the guest's view at pause, digests agree, holes
 * stay holes, WAIO's popular chunks are served from the surrogate, and an
 * aborted WAIO migration leaves every guest write in the original. */
#include <sys/stat.h>
#include <time.h>

#include "check.h"
#include "util.h"

#define SIZE  (24ull << 20)
#define CHUNK (1u << 20)

static uint8_t *model; /* what the guest should see */
static char *dir;

static const uint64_t data_ranges[] = {0,	3 << 20,  (5 << 20) + 4096,
				       9 << 20, 16 << 20, (17 << 20) + 100};

static void guest_write(struct smg_vdisk *d, uint64_t off, size_t n, uint8_t seed)
{
	uint8_t *buf = malloc(n);

	util_pattern(buf, n, off, seed);
	CHECK_EQ(smg_vdisk_write(d, buf, n, off), 0);
	memcpy(model + off, buf, n);
	free(buf);
}

static void guest_trim(struct smg_vdisk *d, uint64_t off, uint64_t n)
{
	CHECK_EQ(smg_vdisk_trim(d, off, n), 0);
	memset(model + off, 0, n);
}

static void guest_check(struct smg_vdisk *d, uint64_t off, size_t n)
{
	uint8_t *buf = malloc(n);

	CHECK_EQ(smg_vdisk_read(d, buf, n, off), 0);
	CHECK(memcmp(buf, model + off, n) == 0);
	free(buf);
}

static void model_load(const char *path)
{
	FILE *f = fopen(path, "rb");

	CHECK(f != NULL && fread(model, 1, SIZE, f) == SIZE);
	if (f)
		fclose(f);
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

static bool is_hole(const char *path, uint64_t off, uint64_t len)
{
	int fd = open(path, O_RDONLY);
	off_t d = lseek(fd, (off_t)off, SEEK_DATA);

	close(fd);
	return d < 0 || (uint64_t)d >= off + len;
}

static void run_mode(enum smg_stg_mode mode)
{
	char src_path[256], dst_path[256];
	struct smg_vdisk_opts o = {0};
	struct smg_vdisk *d = NULL;
	struct smg_stg_src *src = NULL;
	struct smg_stg_dst *dst = NULL;
	struct smg_stg_src_opts so = {.mode = mode, .disk_id = 3};
	uint8_t ds[SMG_STG_DIGEST_LEN], dd[SMG_STG_DIGEST_LEN], di[SMG_STG_DIGEST_LEN];
	struct smg_stg_stats sst;
	struct smg_image *img;
	struct stat st;
	uint8_t frame[8192];
	size_t used;

	snprintf(src_path, sizeof(src_path), "%s/src-%d.img", dir, mode);
	snprintf(dst_path, sizeof(dst_path), "%s/dst-%d.img", dir, mode);
	CHECK_EQ(util_make_image(src_path, SIZE, data_ranges, 3), 0);
	model_load(src_path);
	o.path = src_path;
	o.surrogate_dir = dir;
	o.chunk_size = CHUNK;
	o.hot_threshold = 3;
	CHECK_EQ(smg_vdisk_open(&o, &d), 0);
	if (d == NULL)
		return;
	CHECK_EQ(smg_stg_src_begin(d, &so, &src), 0);
	CHECK_EQ(smg_stg_src_begin(d, &so, &(struct smg_stg_src *){NULL}), SMG_ERR_BUSY);
	CHECK_EQ(smg_stg_dst_open(dst_path, SIZE, CHUNK, 3, &dst), 0);
	/* Phases out of order. */
	CHECK_EQ(smg_stg_src_next(src, SMG_STG_PHASE_ITER, frame, sizeof(frame), &used),
		 SMG_ERR_STATE);

	guest_write(d, 20 << 20, 8192, 1); /* ahead of the scan, into a hole */
	CHECK_EQ(util_pump(src, dst, SMG_STG_PHASE_BULK, 4), 0);
	guest_write(d, 100, 1000, 2);		 /* behind the scan, unaligned */
	guest_write(d, (2 << 20) - 300, 600, 3); /* across a chunk boundary */
	guest_check(d, 0, 3 << 20);
	/* Popular chunk: read it until the copier outsources it. */
	for (int i = 0; i < 200; i++) {
		struct smg_vdisk_stats dst_st;

		guest_check(d, (6 << 20) + 512 * i, 4096);
		smg_vdisk_get_stats(d, &dst_st);
		if (mode == SMG_STG_MODE_DBT || dst_st.hot_copies > 0)
			break;
		nanosleep(&(struct timespec){0, 1000000}, NULL);
	}
	guest_write(d, (6 << 20) + 10, 20, 4); /* partial write into a hot chunk */
	guest_check(d, 6 << 20, 1 << 20);
	CHECK_EQ(util_pump(src, dst, SMG_STG_PHASE_BULK, 0), 0);
	CHECK(smg_stg_src_pending(src) > 0);
	guest_write(d, 8 << 20, 65536, 5);
	CHECK_EQ(util_pump(src, dst, SMG_STG_PHASE_ITER, 0), 0);
	guest_trim(d, (1 << 20) + 4096, 8192);
	guest_write(d, SIZE - 512, 512, 6); /* last sector */
	guest_check(d, 0, SIZE);
	/* FINAL needs the guest paused. */
	CHECK_EQ(smg_stg_src_next(src, SMG_STG_PHASE_FINAL, frame, sizeof(frame), &used),
		 SMG_ERR_STATE);
	CHECK_EQ(smg_stg_src_digest(src, ds), SMG_ERR_STATE);
	smg_vdisk_pause(d);
	CHECK_EQ(util_pump(src, dst, SMG_STG_PHASE_FINAL, 0), 0);
	CHECK_EQ(smg_stg_src_digest(src, ds), 0);
	CHECK_EQ(smg_stg_dst_digest(dst, dd), 0);
	CHECK(memcmp(ds, dd, sizeof(ds)) == 0);
	smg_stg_src_get_stats(src, &sst);
	/* Holes went as records, not bytes: far less data than the disk. */
	CHECK(sst.hole_bytes >= 12ull << 20);
	CHECK(sst.data_bytes <= (9ull << 20) + sst.chunks_resent * CHUNK);
	CHECK(sst.wire_bytes < sst.data_bytes + sst.hole_bytes);
	CHECK(file_matches_model(dst_path));
	CHECK_EQ(smg_stg_src_end(src, true), 0);
	smg_vdisk_resume(d);
	CHECK(file_matches_model(src_path));
	/* The digest of the file itself agrees too. */
	CHECK_EQ(smg_image_open(dst_path, SMG_IMAGE_RDONLY, &img), 0);
	if (img != NULL) {
		CHECK_EQ(smg_stg_image_digest(img, CHUNK, di), 0);
		CHECK(memcmp(di, dd, sizeof(di)) == 0);
		smg_image_close(img);
	}
	/* Sparse: the source's holes are holes on the destination. */
	CHECK(is_hole(dst_path, 10 << 20, 6 << 20));
	CHECK(is_hole(dst_path, 3 << 20, 2 << 20));
	CHECK(stat(dst_path, &st) == 0 && (uint64_t)st.st_blocks * 512 < 9ull << 20);
	smg_stg_dst_close(dst);
	smg_vdisk_close(d);
}

static void run_abort(void)
{
	char src_path[256];
	struct smg_vdisk_opts o = {0};
	struct smg_vdisk *d = NULL;
	struct smg_stg_src *src = NULL;
	struct smg_stg_dst *dst = NULL;
	struct smg_stg_src_opts so = {.mode = SMG_STG_MODE_WAIO, .disk_id = 1};
	struct smg_vdisk_stats st;
	char dst_path[256];

	snprintf(src_path, sizeof(src_path), "%s/abort.img", dir);
	snprintf(dst_path, sizeof(dst_path), "%s/abort-dst.img", dir);
	CHECK_EQ(util_make_image(src_path, SIZE, data_ranges, 3), 0);
	model_load(src_path);
	o.path = src_path;
	o.surrogate_dir = dir;
	CHECK_EQ(smg_vdisk_open(&o, &d), 0);
	if (d == NULL)
		return;
	CHECK_EQ(smg_stg_src_begin(d, &so, &src), 0);
	CHECK_EQ(smg_stg_dst_open(dst_path, SIZE, SMG_STG_CHUNK_DEFAULT, 1, &dst), 0);
	guest_write(d, 4096, 4096, 9);
	CHECK_EQ(util_pump(src, dst, SMG_STG_PHASE_BULK, 2), 0);
	guest_write(d, 12 << 20, 3000, 10); /* into a hole */
	guest_write(d, 777, 33, 11);
	guest_trim(d, 2 << 20, 4096);
	/* Not merged yet: the original is untouched while WAIO runs. */
	CHECK(!file_matches_model(src_path));
	CHECK_EQ(smg_stg_src_end(src, true), 0); /* abort */
	smg_vdisk_get_stats(d, &st);
	CHECK(st.merged_back >= 4096 + 3000);
	CHECK(file_matches_model(src_path));
	guest_check(d, 0, SIZE);
	smg_stg_dst_close(dst);
	smg_vdisk_close(d);
}

/* 64 KiB chunks and the bulk scan's 1 MiB window (both modes): a chunk the
 * scan read into its window and the guest rewrote afterwards must go out
 * again with its new bytes, never from the window. */
static void run_window(enum smg_stg_mode mode)
{
	struct smg_stg_src_opts so = {.mode = mode, .disk_id = 2};
	struct smg_vdisk_opts o = {.chunk_size = 64 << 10};
	char src_path[256], dst_path[256];
	struct smg_stg_src *src = NULL;
	struct smg_stg_dst *dst = NULL;
	struct smg_vdisk *d = NULL;

	snprintf(src_path, sizeof(src_path), "%s/win-%d.img", dir, mode);
	snprintf(dst_path, sizeof(dst_path), "%s/win-dst-%d.img", dir, mode);
	CHECK_EQ(util_make_image(src_path, SIZE, data_ranges, 3), 0);
	model_load(src_path);
	o.path = src_path;
	o.surrogate_dir = dir;
	CHECK_EQ(smg_vdisk_open(&o, &d), 0);
	if (d == NULL)
		return;
	CHECK_EQ(smg_stg_src_begin(d, &so, &src), 0);
	CHECK_EQ(smg_stg_dst_open(dst_path, SIZE, 64 << 10, 2, &dst), 0);
	/* Part of the bulk: the scan stops inside a window (frames of 1 MiB
	 * hold 15 chunks), then the guest rewrites chunks of that window. */
	CHECK_EQ(util_pump(src, dst, SMG_STG_PHASE_BULK, 1), 0);
	guest_write(d, 17 << 16, 4096, 21); /* read into the window, not sent */
	guest_write(d, 3 << 16, 8192, 22);  /* read into the window, sent */
	CHECK_EQ(util_pump(src, dst, SMG_STG_PHASE_BULK, 0), 0);
	guest_write(d, SIZE - 4096, 4096, 23); /* the last window, after the scan */
	CHECK_EQ(util_pump(src, dst, SMG_STG_PHASE_ITER, 0), 0);
	guest_write(d, SIZE - 8192, 100, 24);
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
	run_mode(SMG_STG_MODE_WAIO);
	run_mode(SMG_STG_MODE_DBT);
	run_abort();
	run_window(SMG_STG_MODE_DBT);
	run_window(SMG_STG_MODE_WAIO);
	util_rmdir(dir);
	free(dir);
	free(model);
	return check_result("storage_migrate");
}
