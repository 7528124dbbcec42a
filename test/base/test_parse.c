/* smg_parse_size: suffixes, junk and overflow. */
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

int main(void)
{
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
