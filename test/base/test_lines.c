/* The configuration line reader (base/lines.c) that the policy, host
 * definitions, operators and domain config parsers share: lines and their
 * numbers, comments cut, the last line without a newline, a line over the
 * cap and a NUL byte refused at their line; words, trim, key = value; the
 * error prefix with and without a file name. */
#include <string.h>

#include "base/base.h"
#include "check.h"

#define CAP 8 /* bytes a line may hold in these cases */

static const struct {
	const char *text;
	size_t len; /* 0: strlen(text) */
	const char *lines[4];
	int end;	   /* what the reader says after them: 0 or an error */
	unsigned end_line; /* the line it is at then */
} reads[] = {
    {"", 0, {NULL}, 0, 0},
    {"a\nb", 0, {"a", "b"}, 0, 2},
    {"a\nb\n", 0, {"a", "b"}, 0, 2},
    {"\n\n", 0, {"", ""}, 0, 2},
    {"k=v #c\n#all\n", 0, {"k=v ", ""}, 0, 2},
    {"12345678\n", 0, {"12345678"}, 0, 1}, /* exactly the cap */
    {"ok\n123456789\nz", 0, {"ok"}, SMG_ERR_TOO_LONG, 2},
    {"ok\nn\0l\nz", 8, {"ok"}, SMG_ERR_INVAL, 2},
    {"#\0\n", 3, {NULL}, SMG_ERR_INVAL, 1}, /* a NUL even in a comment */
};

static void test_reads(void)
{
	char buf[CAP + 1];

	for (size_t i = 0; i < SMG_ARRAY_LEN(reads); i++) {
		size_t len = reads[i].len ? reads[i].len : strlen(reads[i].text);
		struct smg_lines l;
		size_t k = 0;
		int r;

		smg_lines_init(&l, reads[i].text, len, "f", NULL, 0);
		while ((r = smg_lines_next(&l, buf, CAP)) == 1) {
			CHECK(k < 4 && reads[i].lines[k] != NULL &&
			      strcmp(buf, reads[i].lines[k]) == 0);
			CHECK_EQ(l.line, k + 1);
			k++;
		}
		CHECK(k == 4 || reads[i].lines[k] == NULL);
		CHECK_EQ(r, reads[i].end);
		CHECK_EQ(l.line, reads[i].end_line);
		if (check_failures)
			fprintf(stderr, "  read case %zu\n", i);
	}
}

static void test_words(void)
{
	char s[64], *w[3], *k, *v;

	strcpy(s, "  a\tbb  c ");
	CHECK_EQ(smg_words_split(s, " \t", w, 3), 3);
	CHECK(strcmp(w[0], "a") == 0 && strcmp(w[1], "bb") == 0 &&
	      strcmp(w[2], "c") == 0);
	strcpy(s, "a b c d");
	CHECK_EQ(smg_words_split(s, " \t", w, 3), -1);
	strcpy(s, " \t ");
	CHECK_EQ(smg_words_split(s, " \t", w, 3), 0);
	strcpy(s, " \t x y \t\r");
	CHECK(strcmp(smg_trim(s), "x y") == 0);
	strcpy(s, " key =  a = b \r");
	CHECK_EQ(smg_key_value(s, &k, &v), SMG_OK);
	CHECK(strcmp(k, "key") == 0 && strcmp(v, "a = b") == 0);
	strcpy(s, "no value");
	CHECK_EQ(smg_key_value(s, &k, &v), SMG_ERR_INVAL);
}

static void test_errors(void)
{
	char err[32], buf[CAP + 1];
	struct smg_lines l;

	smg_lines_init(&l, "x\ny\n", 4, "defs", err, sizeof(err));
	CHECK_EQ(smg_lines_next(&l, buf, CAP), 1);
	CHECK_EQ(smg_lines_next(&l, buf, CAP), 1);
	CHECK_EQ(smg_lines_err(&l, "bad %s", "y"), SMG_ERR_CONFIG);
	CHECK(strcmp(err, "defs:2: bad y") == 0);
	smg_lines_init(&l, "x\n", 2, NULL, err, sizeof(err));
	CHECK(err[0] == '\0');
	smg_lines_err(&l, "whole"); /* line 0, no name: the text alone */
	CHECK(strcmp(err, "whole") == 0);
	CHECK_EQ(smg_lines_next(&l, buf, CAP), 1);
	smg_lines_err(&l, "bad");
	CHECK(strcmp(err, "line 1: bad") == 0);
	smg_lines_err(&l, "%s", "a message longer than the error buffer");
	CHECK_EQ(strlen(err), sizeof(err) - 1); /* cut, terminated */
	l.err = NULL;				/* no buffer: the code alone */
	CHECK_EQ(smg_lines_err(&l, "x"), SMG_ERR_CONFIG);
}

int main(void)
{
	test_reads();
	test_words();
	test_errors();
	return check_result("lines");
}
