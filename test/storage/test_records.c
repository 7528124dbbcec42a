/* Chunk-record frames: the decoder on well-formed and hostile inputs
 * (table-driven), the destination refusing frames for another disk or past
 * its end without applying any record, the digest telling a tampered
 * image from the source's, and an image's root against a known answer. */
#include "check.h"
#include "storage/internal.h"
#include "util.h"

struct rec_spec {
	uint8_t kind;
	uint64_t off;
	uint32_t len;  /* header field */
	uint32_t have; /* data bytes actually present */
};

static size_t build(uint8_t *buf, uint8_t ver, uint8_t phase, uint16_t count,
		    uint32_t disk, const struct rec_spec *r, size_t n, size_t extra)
{
	size_t off = 8;

	buf[0] = ver;
	buf[1] = phase;
	smg_store_be16(buf + 2, count);
	smg_store_be32(buf + 4, disk);
	for (size_t i = 0; i < n; i++) {
		buf[off] = r[i].kind;
		smg_store_be64(buf + off + 1, r[i].off);
		smg_store_be32(buf + off + 9, r[i].len);
		off += 13;
		memset(buf + off, 0x5c, r[i].have);
		off += r[i].have;
	}
	memset(buf + off, 0, extra);
	return off + extra;
}

struct dec_case {
	const char *name;
	uint8_t ver, phase;
	uint16_t count;
	struct rec_spec recs[2];
	size_t nrecs, extra;
	int want;
};

#define DISK (1ull << 20)

static const struct dec_case cases[] = {
    {"data+hole", 1, 1, 2, {{1, 0, 4096, 4096}, {2, 4096, 8192, 0}}, 2, 0, 0},
    {"final phase", 1, 3, 1, {{2, 0, DISK, 0}}, 1, 0, 0},
    {"bad version", 2, 1, 1, {{2, 0, 4096, 0}}, 1, 0, SMG_ERR_VERSION},
    {"bad phase", 1, 4, 1, {{2, 0, 4096, 0}}, 1, 0, SMG_ERR_PROTO},
    {"phase zero", 1, 0, 1, {{2, 0, 4096, 0}}, 1, 0, SMG_ERR_PROTO},
    {"no records", 1, 1, 0, {{0}}, 0, 0, SMG_ERR_PROTO},
    {"count lies", 1, 1, 2, {{2, 0, 4096, 0}}, 1, 0, SMG_ERR_TRUNCATED},
    {"count over cap", 1, 1, SMG_STG_RECS_MAX + 1, {{2, 0, 1, 0}}, 1, 0, SMG_ERR_PROTO},
    {"unknown kind", 1, 1, 1, {{3, 0, 4096, 0}}, 1, 0, SMG_ERR_UNKNOWN_TYPE},
    {"zero length", 1, 1, 1, {{2, 0, 0, 0}}, 1, 0, SMG_ERR_PROTO},
    {"past the end", 1, 1, 1, {{2, DISK - 4096, 8192, 0}}, 1, 0, SMG_ERR_PROTO},
    {"wraps", 1, 1, 1, {{2, UINT64_MAX - 10, 4096, 0}}, 1, 0, SMG_ERR_PROTO},
    {"data truncated", 1, 1, 1, {{1, 0, 4096, 100}}, 1, 0, SMG_ERR_TRUNCATED},
    {"trailing bytes", 1, 1, 1, {{2, 0, 4096, 0}}, 1, 3, SMG_ERR_TRAILING},
};

static void test_decode(void)
{
	static uint8_t buf[65536];
	static struct smg_stg_frame f;

	for (size_t i = 0; i < SMG_ARRAY_LEN(cases); i++) {
		const struct dec_case *c = &cases[i];
		size_t n = build(buf, c->ver, c->phase, c->count, 0, c->recs, c->nrecs,
				 c->extra);
		int r = smg_stg_frame_decode(buf, n, DISK, &f);

		if (r != c->want)
			fprintf(stderr, "case '%s': %d, want %d\n", c->name, r, c->want);
		CHECK_EQ(r, c->want);
		if (r == 0)
			CHECK_EQ(f.count, c->count);
	}
	/* Every truncation of a good frame fails cleanly. */
	size_t n = build(buf, 1, 1, 2, 0, cases[0].recs, 2, 0);
	for (size_t k = 0; k < n; k++)
		CHECK(smg_stg_frame_decode(buf, k, DISK, &f) != 0);
	CHECK(smg_stg_frame_decode(NULL, 0, DISK, &f) != 0);
}

static void test_dst(const char *dir)
{
	char path[256];
	struct smg_stg_dst *d = NULL;
	uint8_t buf[16384], before[SMG_STG_DIGEST_LEN], after[SMG_STG_DIGEST_LEN];
	struct rec_spec good = {1, 8192, 4096, 4096}, far = {1, DISK - 100, 4096, 4096};
	struct rec_spec two[2] = {{1, 0, 4096, 4096}, {2, DISK, 1, 0}};
	struct smg_image *img = NULL;
	size_t n;

	snprintf(path, sizeof(path), "%s/dst.img", dir);
	CHECK_EQ(smg_stg_dst_open(path, DISK, 65536, 5, &d), 0);
	CHECK_EQ(smg_stg_dst_open(path, DISK, 1000, 5, &(struct smg_stg_dst *){NULL}),
		 SMG_ERR_INVAL);
	if (d == NULL)
		return;
	CHECK_EQ(smg_stg_dst_digest(d, before), 0);
	n = build(buf, 1, 1, 1, 4, &good, 1, 0); /* another disk's frame */
	CHECK_EQ(smg_stg_dst_apply(d, buf, n), SMG_ERR_PROTO);
	n = build(buf, 1, 1, 1, 5, &far, 1, 0);
	CHECK_EQ(smg_stg_dst_apply(d, buf, n), SMG_ERR_PROTO);
	n = build(buf, 1, 1, 2, 5, two, 2, 0); /* first record fine, second not */
	CHECK_EQ(smg_stg_dst_apply(d, buf, n), SMG_ERR_PROTO);
	CHECK_EQ(smg_stg_dst_digest(d, after), 0);
	CHECK(memcmp(before, after, sizeof(before)) == 0); /* nothing applied */
	n = build(buf, 1, 2, 1, 5, &good, 1, 0);
	CHECK_EQ(smg_stg_dst_apply(d, buf, n), 0);
	CHECK_EQ(smg_stg_dst_digest(d, after), 0);
	CHECK(memcmp(before, after, sizeof(before)) != 0); /* a changed image shows */
	/* The digest is the image's: recomputing from the file agrees. */
	CHECK_EQ(smg_image_open(path, SMG_IMAGE_RDONLY, &img), 0);
	if (img != NULL) {
		CHECK_EQ(smg_stg_image_digest(img, 65536, before), 0);
		CHECK(memcmp(before, after, sizeof(before)) == 0);
		CHECK_EQ(smg_stg_image_digest(img, 65536 + 4096, before), 0);
		CHECK(memcmp(before, after, sizeof(before)) !=
		      0); /* chunk size is bound */
		smg_image_close(img);
	}
	smg_stg_dst_close(d);
}

/* The disk root is the Merkle construction of base/merkle.c: a known
 * answer computed independently by test/base/merkle_ref.py ("image: ..."). */
static void test_image_kat(const char *dir)
{
	static const char want[] =
	    "b6bc37dd2072510e76d27c7d9a4c9e78b8d7ec5043aa3a55b530fedc7342b043";
	const uint64_t size = 3 * 65536 + 4096;
	const uint64_t ranges[][2] = {{0, 65536}, {131072, 135168}, {196608, 200704}};
	uint8_t buf[65536], root[SMG_STG_DIGEST_LEN];
	char path[256], hex[2 * SMG_STG_DIGEST_LEN + 1];
	struct smg_image *img = NULL;
	int fd;

	snprintf(path, sizeof(path), "%s/kat.img", dir);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	CHECK(fd >= 0 && ftruncate(fd, (off_t)size) == 0);
	for (size_t r = 0; fd >= 0 && r < SMG_ARRAY_LEN(ranges); r++) {
		size_t n = ranges[r][1] - ranges[r][0];

		for (size_t i = 0; i < n; i++) /* merkle_ref.py's pat(n, 5, base) */
			buf[i] = (uint8_t)(((ranges[r][0] + i) * 31u + 5) % 251u);
		CHECK(pwrite(fd, buf, n, (off_t)ranges[r][0]) == (ssize_t)n);
	}
	if (fd >= 0)
		close(fd);
	CHECK_EQ(smg_image_open(path, SMG_IMAGE_RDONLY, &img), 0);
	if (img == NULL)
		return;
	CHECK_EQ(smg_stg_image_digest(img, 65536, root), 0);
	sodium_bin2hex(hex, sizeof(hex), root, sizeof(root));
	CHECK(strcmp(hex, want) == 0);
	if (strcmp(hex, want) != 0)
		fprintf(stderr, "  image root %s\n  want       %s\n", hex, want);
	smg_image_close(img);
}

int main(void)
{
	char *dir = util_tmpdir();

	smg_log_set_level(SMG_LOG_ERROR);
	if (dir == NULL)
		return 1;
	test_decode();
	test_dst(dir);
	test_image_kat(dir);
	util_rmdir(dir);
	free(dir);
	return check_result("storage_records");
}
