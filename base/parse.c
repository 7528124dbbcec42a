/* Numbers and names as operators, files and peers write them: the one
 * size parser, the one unsigned-number parser, the one name validator. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"

int smg_parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;
	unsigned shift = 0;

	if (*s < '0' || *s > '9')
		return SMG_ERR_INVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0)
		return SMG_ERR_INVAL;
	switch (*end) {
	case 'k':
	case 'K':
		shift = 10;
		end++;
		break;
	case 'm':
	case 'M':
		shift = 20;
		end++;
		break;
	case 'g':
	case 'G':
		shift = 30;
		end++;
		break;
	case 't':
	case 'T':
		shift = 40;
		end++;
		break;
	default:
		break;
	}
	if (*end == 'i' || *end == 'B')
		end += (*end == 'i' && end[1] == 'B') ? 2 : 1;
	if (*end != '\0' || (shift > 0 && v > (UINT64_MAX >> shift)))
		return SMG_ERR_INVAL;
	*out = (uint64_t)v << shift;
	return SMG_OK;
}

int smg_parse_uint(const char *s, uint64_t max, uint64_t *out)
{
	char *end;
	unsigned long long v;

	/* strtoull alone takes blanks, a sign ("-1" is ULLONG_MAX) and, in
	 * base 0, octal and hex: refuse all of them before it looks. */
	if (s == NULL || *s < '0' || *s > '9')
		return SMG_ERR_INVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0' || v > max)
		return SMG_ERR_INVAL;
	*out = v;
	return SMG_OK;
}

/* Names become file names (outcome records, disk images, QEMU sockets),
 * netns names (/run/netns/NAME) and interface names: nothing a path could
 * climb with ('/', a leading '.': ".", ".."), nothing a command line or
 * ip(8) reads as an option (a leading '-'), nothing a log or a shell-free
 * argv could trip over. */
bool smg_name_valid(const char *s, size_t len, size_t max_len)
{
	if (len == 0 || len > max_len || s[0] == '.' || s[0] == '-')
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
			return false;
	}
	return true;
}

bool smg_name_ok(const char *s, size_t max)
{
	return max > 0 && smg_name_valid(s, strnlen(s, max), max - 1);
}
