/* Helpers shared by the storage tests: scratch images, byte comparison,
 * one in-process migration pass source -> destination. */
#ifndef SMG_TEST_STORAGE_UTIL_H
#define SMG_TEST_STORAGE_UTIL_H

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/base.h"
#include "storage/storage.h"
#include "transport/transport.h"

static inline char *util_tmpdir(void)
{
	char tmpl[] = "/tmp/smg-stg-XXXXXX";
	char *d = mkdtemp(tmpl);

	return d ? strdup(d) : NULL;
}

static inline void util_rmdir(const char *dir)
{
	char cmd[512];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
}

/* Deterministic bytes for (seed, offset): every byte of a region is checkable. */
static inline void util_pattern(uint8_t *p, size_t n, uint64_t off, uint8_t seed)
{
	for (size_t i = 0; i < n; i++) {
		uint64_t x = (off + i) * 0x9e3779b97f4a7c15ull + seed;

		p[i] = (uint8_t)(x >> 56) | 1; /* never zero: data stays data */
	}
}

/* An image of size bytes with data in [a, b) ranges given as pairs. */
static inline int util_make_image(const char *path, uint64_t size, const uint64_t *ranges,
				  size_t nranges)
{
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	uint8_t buf[65536];

	if (fd < 0 || ftruncate(fd, (off_t)size) != 0)
		return -1;
	for (size_t i = 0; i + 1 < nranges * 2; i += 2)
		for (uint64_t o = ranges[i]; o < ranges[i + 1];) {
			size_t n = ranges[i + 1] - o < sizeof(buf) ? ranges[i + 1] - o
								   : sizeof(buf);

			util_pattern(buf, n, o, 7);
			if (pwrite(fd, buf, n, (off_t)o) != (ssize_t)n)
				return -1;
			o += n;
		}
	close(fd);
	return 0;
}

/* 0 when both files have the same size and bytes. */
static inline int util_cmp_files(const char *a, const char *b)
{
	FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
	static uint8_t ba[1 << 16], bb[1 << 16];
	int r = 0;

	if (fa == NULL || fb == NULL) {
		r = -1;
		goto out;
	}
	for (;;) {
		size_t na = fread(ba, 1, sizeof(ba), fa),
		       nb = fread(bb, 1, sizeof(bb), fb);

		if (na != nb || memcmp(ba, bb, na) != 0) {
			r = 1;
			break;
		}
		if (na == 0)
			break;
	}
out:
	if (fa)
		fclose(fa);
	if (fb)
		fclose(fb);
	return r;
}

/* Move every frame of one phase (ITER: one round) from src to dst. */
static inline int util_pump(struct smg_stg_src *src, struct smg_stg_dst *dst,
			    enum smg_stg_phase ph, size_t max_frames)
{
	static uint8_t frame[SMG_FRAME_PAYLOAD_MAX];
	size_t used, n = 0;
	int r;

	for (;;) {
		if ((r = smg_stg_src_next(src, ph, frame, sizeof(frame), &used)) != 0)
			return r;
		if (used == 0)
			return 0;
		if ((r = smg_stg_dst_apply(dst, frame, used)) != 0)
			return r;
		if (max_frames && ++n == max_frames)
			return 0;
	}
}

/* The pause: FINAL from src to dst, both roots equal, then the source
 * resumes and lets go (committed) and the destination closes. 0, the first
 * error, or SMG_ERR_INTEGRITY when the roots differ. */
static inline int util_finish(struct smg_vdisk *d, struct smg_stg_src *src,
			      struct smg_stg_dst *dst)
{
	uint8_t ds[SMG_STG_DIGEST_LEN], dd[SMG_STG_DIGEST_LEN];
	int r, e;

	smg_vdisk_pause(d);
	r = util_pump(src, dst, SMG_STG_PHASE_FINAL, 0);
	if (r == 0)
		r = smg_stg_src_digest(src, ds);
	if (r == 0)
		r = smg_stg_dst_digest(dst, dd);
	if (r == 0 && memcmp(ds, dd, sizeof(ds)) != 0)
		r = SMG_ERR_INTEGRITY;
	smg_vdisk_resume(d);
	e = smg_stg_src_end(src, false);
	smg_stg_dst_close(dst);
	return r != 0 ? r : e;
}

#endif
