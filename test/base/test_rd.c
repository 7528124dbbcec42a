/* Bounded reader/writer: truncated, oversized and exact-boundary inputs. */
#include <string.h>

#include "base/base.h"
#include "check.h"

struct int_case {
	const char *name;
	const uint8_t *buf;
	size_t len;
	int width; /* 1, 2, 4, 8 */
	int want_err;
	uint64_t want;
};

static const uint8_t b8[] = {0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08};

static const struct int_case int_cases[] = {
    {"u8 exact", b8, 1, 1, 0, 0x01},
    {"u8 empty", b8, 0, 1, SMG_ERR_TRUNCATED, 0},
    {"u16 exact", b8, 2, 2, 0, 0x0102},
    {"u16 short", b8, 1, 2, SMG_ERR_TRUNCATED, 0},
    {"u32 exact", b8, 4, 4, 0, 0x01020304},
    {"u32 short", b8, 3, 4, SMG_ERR_TRUNCATED, 0},
    {"u64 exact", b8, 8, 8, 0, 0x0102030405060708ull},
    {"u64 short", b8, 7, 8, SMG_ERR_TRUNCATED, 0},
    {"u64 null", NULL, 8, 8, SMG_ERR_TRUNCATED, 0},
};

static void test_ints(void)
{
	for (size_t i = 0; i < SMG_ARRAY_LEN(int_cases); i++) {
		const struct int_case *c = &int_cases[i];
		struct smg_rd rd;
		uint64_t got = 0;
		uint32_t v32 = 0;
		uint16_t v16 = 0;
		uint8_t v8 = 0;
		int r;

		smg_rd_init(&rd, c->buf, c->len);
		switch (c->width) {
		case 1:
			r = smg_rd_u8(&rd, &v8);
			got = v8;
			break;
		case 2:
			r = smg_rd_u16(&rd, &v16);
			got = v16;
			break;
		case 4:
			r = smg_rd_u32(&rd, &v32);
			got = v32;
			break;
		default:
			r = smg_rd_u64(&rd, &got);
			break;
		}
		CHECK_EQ(r, c->want_err);
		if (r == 0) {
			CHECK(got == c->want);
			CHECK_EQ(smg_rd_end(&rd), 0);
		} else {
			/* a failed read consumes nothing */
			CHECK_EQ(smg_rd_left(&rd), c->buf ? c->len : 0);
		}
		if (check_failures)
			fprintf(stderr, "  case: %s\n", c->name);
	}
}

struct str_case {
	const char *name;
	uint8_t buf[12];
	size_t len;
	int prefix; /* 2 or 4 */
	size_t max;
	int want_err;
	size_t want_len;
};

static const struct str_case str_cases[] = {
    {"s16 empty string", {0, 0}, 2, 2, 8, 0, 0},
    {"s16 exact at cap", {0, 3, 'a', 'b', 'c'}, 5, 2, 3, 0, 3},
    {"s16 one over cap", {0, 4, 'a', 'b', 'c', 'd'}, 6, 2, 3, SMG_ERR_TOO_LONG, 0},
    {"s16 body truncated", {0, 3, 'a', 'b'}, 4, 2, 8, SMG_ERR_TRUNCATED, 0},
    {"s16 prefix truncated", {0}, 1, 2, 8, SMG_ERR_TRUNCATED, 0},
    {"s32 huge prefix", {0xff, 0xff, 0xff, 0xff}, 4, 4, 1024, SMG_ERR_TOO_LONG, 0},
    {"s32 huge prefix, cap huge",
     {0xff, 0xff, 0xff, 0xff},
     4,
     4,
     SIZE_MAX,
     SMG_ERR_TRUNCATED,
     0},
    {"s32 exact", {0, 0, 0, 2, 'h', 'i'}, 6, 4, 2, 0, 2},
    {"s32 lying by one", {0, 0, 0, 3, 'h', 'i'}, 6, 4, 8, SMG_ERR_TRUNCATED, 0},
};

static void test_strings(void)
{
	for (size_t i = 0; i < SMG_ARRAY_LEN(str_cases); i++) {
		const struct str_case *c = &str_cases[i];
		const uint8_t *p = NULL;
		struct smg_rd rd;
		size_t n = 99;
		int r;
		int before = check_failures;

		smg_rd_init(&rd, c->buf, c->len);
		r = c->prefix == 2 ? smg_rd_string16(&rd, c->max, &p, &n)
				   : smg_rd_string32(&rd, c->max, &p, &n);
		CHECK_EQ(r, c->want_err);
		if (r == 0) {
			CHECK_EQ(n, c->want_len);
			CHECK(p == c->buf + c->prefix);
			CHECK_EQ(smg_rd_end(&rd), 0);
		} else {
			CHECK_EQ(n, 99); /* outputs untouched on failure */
			CHECK_EQ(smg_rd_left(&rd), c->len);
		}
		if (check_failures != before)
			fprintf(stderr, "  case: %s\n", c->name);
	}
}

static void test_bytes_and_trailing(void)
{
	uint8_t out[4];
	struct smg_rd rd;

	smg_rd_init(&rd, b8, 6);
	CHECK_EQ(smg_rd_bytes(&rd, out, 4), 0);
	CHECK(memcmp(out, b8, 4) == 0);
	CHECK_EQ(smg_rd_end(&rd), SMG_ERR_TRAILING);
	CHECK_EQ(smg_rd_bytes(&rd, out, 3), SMG_ERR_TRUNCATED);
	CHECK_EQ(smg_rd_skip(&rd, 2), 0);
	CHECK_EQ(smg_rd_end(&rd), 0);
	CHECK_EQ(smg_rd_skip(&rd, 1), SMG_ERR_TRUNCATED);
	/* a length that would wrap the offset must not */
	CHECK_EQ(smg_rd_skip(&rd, SIZE_MAX), SMG_ERR_TRUNCATED);
}

static void test_writer(void)
{
	uint8_t buf[16];
	struct smg_wr wr;
	struct smg_rd rd;
	const uint8_t *p;
	size_t n;
	uint64_t v64;
	uint32_t v32;
	uint16_t v16;
	uint8_t v8;

	smg_wr_init(&wr, buf, sizeof(buf));
	CHECK_EQ(smg_wr_u8(&wr, 0xab), 0);
	CHECK_EQ(smg_wr_u16(&wr, 0x1234), 0);
	CHECK_EQ(smg_wr_u32(&wr, 0xdeadbeef), 0);
	CHECK_EQ(smg_wr_string16(&wr, "xyz", 3, 3), 0);
	CHECK_EQ(wr.off, 12);
	CHECK_EQ(smg_wr_string16(&wr, "abcd", 4, 3), SMG_ERR_TOO_LONG);
	CHECK_EQ(smg_wr_u64(&wr, 1), SMG_ERR_NOSPACE); /* 12 + 8 > 16 */
	CHECK_EQ(wr.off, 12);
	CHECK_EQ(smg_wr_string16(&wr, "ab", 2, 8), 0); /* exactly fills */
	CHECK_EQ(wr.off, 16);
	CHECK_EQ(smg_wr_u8(&wr, 0), SMG_ERR_NOSPACE);

	smg_rd_init(&rd, buf, wr.off);
	CHECK_EQ(smg_rd_u8(&rd, &v8), 0);
	CHECK_EQ(v8, 0xab);
	CHECK_EQ(smg_rd_u16(&rd, &v16), 0);
	CHECK_EQ(v16, 0x1234);
	CHECK_EQ(smg_rd_u32(&rd, &v32), 0);
	CHECK(v32 == 0xdeadbeefu);
	CHECK_EQ(smg_rd_string16(&rd, 3, &p, &n), 0);
	CHECK(n == 3 && memcmp(p, "xyz", 3) == 0);
	CHECK_EQ(smg_rd_string16(&rd, 2, &p, &n), 0);
	CHECK_EQ(smg_rd_end(&rd), 0);

	smg_wr_init(&wr, buf, sizeof(buf));
	CHECK_EQ(smg_wr_u64(&wr, 0x0102030405060708ull), 0);
	smg_rd_init(&rd, buf, 8);
	CHECK_EQ(smg_rd_u64(&rd, &v64), 0);
	CHECK(v64 == 0x0102030405060708ull);
	CHECK(memcmp(buf, b8, 8) == 0);
}

int main(void)
{
	test_ints();
	test_strings();
	test_bytes_and_trailing();
	test_writer();
	return check_result("rd");
}
