/* The one hex codec: libsodium's (constant-time, no table of our own),
 * with the strictness our text formats want on top: exactly 2n digits,
 * lower-case only, so each value has one spelling (a record, key or root
 * compared as text cannot differ from its twin in case alone). */
#include <sodium.h>
#include <string.h>

#include "base/base.h"

void smg_hex_encode(const uint8_t *p, size_t n, char *out)
{
	sodium_bin2hex(out, 2 * n + 1, p, n);
}

int smg_hex_decode(const char *s, size_t len, uint8_t *out, size_t n)
{
	size_t got;
	const char *end;

	if (len != 2 * n)
		return SMG_ERR_INVAL;
	for (size_t i = 0; i < len; i++)
		if (s[i] >= 'A' && s[i] <= 'F')
			return SMG_ERR_INVAL;
	if (sodium_hex2bin(out, n, s, len, NULL, &got, &end) != 0 || got != n ||
	    end != s + len)
		return SMG_ERR_INVAL;
	return SMG_OK;
}
