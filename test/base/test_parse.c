/* The one size parser, unsigned-number parser, name validator and hex
 * codec: suffixes, junk, overflow, one spelling. */
#include <string.h>

#include "base/base.h"
#include "check.h"

static const struct {
	const char *in;
	int err;
	uint64_t want;
} cases[] = {
    {"0", 0, 0},
    {"4096", 0, 4096},
    {"16K", 0, 16ull << 10},
    {"16M", 0, 16ull << 20},
    {"1G", 0, 1ull << 30},
    {"2T", 0, 2ull << 40},
    {"64MiB", 0, 64ull << 20},
    {"512B", 0, 512},
    {"18446744073709551615", 0, UINT64_MAX},
    {"18446744073709551616", SMG_ERR_INVAL, 0}, /* strtoull saturates: ERANGE */
    {"16777216T", SMG_ERR_INVAL, 0},		/* 2^24 << 40 wraps */
    {"16777215T", 0, 16777215ull << 40},
    {"", SMG_ERR_INVAL, 0},
    {"-1", SMG_ERR_INVAL, 0},
    {" 1", SMG_ERR_INVAL, 0},
    {"1X", SMG_ERR_INVAL, 0},
    {"1MBx", SMG_ERR_INVAL, 0},
    {"M", SMG_ERR_INVAL, 0},
};

static const struct {
	const char *in;
	uint64_t max;
	int err;
	uint64_t want;
} uints[] = {
    {"0", 10, 0, 0},
    {"10", 10, 0, 10},
    {"11", 10, SMG_ERR_INVAL, 0},
    {"18446744073709551615", UINT64_MAX, 0, UINT64_MAX},
    {"18446744073709551616", UINT64_MAX, SMG_ERR_INVAL, 0},
    {"-1", UINT64_MAX, SMG_ERR_INVAL, 0}, /* strtoull: ULLONG_MAX */
    {"+1", UINT64_MAX, SMG_ERR_INVAL, 0},
    {" 1", UINT64_MAX, SMG_ERR_INVAL, 0},
    {"0x10", UINT64_MAX, SMG_ERR_INVAL, 0},
    {"1K", UINT64_MAX, SMG_ERR_INVAL, 0},
    {"", UINT64_MAX, SMG_ERR_INVAL, 0},
};

static const struct {
	const char *in;
	bool ok;
} names[] = {
    {"vm-1", true},
    {"a.b_c", true},
    {"A9", true},
    {"", false},
    {".", false},
    {"..", false},
    {".hidden", false},
    {"-rf", false},
    {"a/b", false},
    {"a b", false},
    {"a\nb", false},
    {"a,b", false},
    {"x123456789012345", true}, /* 16 = the cap below: too long */
};

static void more(void)
{
	uint8_t b[4];
	char h[9];

	for (size_t i = 0; i < SMG_ARRAY_LEN(uints); i++) {
		uint64_t v = 7;
		int r = smg_parse_uint(uints[i].in, uints[i].max, &v);

		CHECK_EQ(r, uints[i].err);
		CHECK(v == (r == 0 ? uints[i].want : 7));
		if (check_failures)
			fprintf(stderr, "  uint case '%s'\n", uints[i].in);
	}
	for (size_t i = 0; i < SMG_ARRAY_LEN(names); i++) {
		bool fits = strlen(names[i].in) < 16;

		CHECK_EQ(smg_name_ok(names[i].in, 16), names[i].ok && fits);
		if (check_failures)
			fprintf(stderr, "  name case '%s'\n", names[i].in);
	}
	CHECK(smg_name_valid("disk0", 5, 5));
	CHECK(!smg_name_valid("disk0", 5, 4));
	smg_hex_encode((const uint8_t *)"\x00\xab\xff\x10", 4, h);
	CHECK(strcmp(h, "00abff10") == 0);
	CHECK_EQ(smg_hex_decode("00abff10", 8, b, 4), 0);
	CHECK(memcmp(b, "\x00\xab\xff\x10", 4) == 0);
	CHECK_EQ(smg_hex_decode("00ABff10", 8, b, 4), SMG_ERR_INVAL); /* one spelling */
	CHECK_EQ(smg_hex_decode("00abff1", 7, b, 4), SMG_ERR_INVAL);
	CHECK_EQ(smg_hex_decode("00abff10", 8, b, 3), SMG_ERR_INVAL);
	CHECK_EQ(smg_hex_decode("00abfg10", 8, b, 4), SMG_ERR_INVAL);
	CHECK_EQ(smg_hex_decode("00ab f10", 8, b, 4), SMG_ERR_INVAL);
}

int main(void)
{
	more();
	for (size_t i = 0; i < SMG_ARRAY_LEN(cases); i++) {
		uint64_t v = 7;
		int r = smg_parse_size(cases[i].in, &v);

		CHECK_EQ(r, cases[i].err);
		if (r == 0)
			CHECK(v == cases[i].want);
		else
			CHECK_EQ(v, 7); /* untouched on failure */
		if (check_failures)
			fprintf(stderr, "  case '%s'\n", cases[i].in);
	}
	return check_result("parse");
}
