/* util: encodings, the wall clock and JSON field helpers the audit files
 * share. Records come from disk and peers' logs: every getter checks the
 * type and exact length before it copies anything. */
#include <ctype.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "audit/internal.h"

#define B64_VARIANT sodium_base64_VARIANT_ORIGINAL

uint64_t audit_wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void audit_b64(const uint8_t *p, size_t n, char *out, size_t cap)
{
	if (cap < sodium_base64_ENCODED_LEN(n, B64_VARIANT)) {
		if (cap > 0)
			out[0] = '\0';
		return;
	}
	sodium_bin2base64(out, cap, p, n, B64_VARIANT);
}

int audit_unb64(const char *s, size_t slen, uint8_t *out, size_t n)
{
	size_t got;
	const char *end;

	if (sodium_base642bin(out, n, s, slen, NULL, &got, &end, B64_VARIANT) != 0 ||
	    got != n || end != s + slen)
		return SMG_ERR_INVAL;
	return SMG_OK;
}

bool audit_name_ok(const char *s, size_t max)
{
	size_t n = strlen(s);

	if (n == 0 || n > max)
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && strchr("._-", *s) == NULL)
			return false;
	return true;
}

void audit_hash(const void *p, size_t n, uint8_t out[SMG_AUDIT_DIGEST_LEN])
{
	crypto_generichash(out, SMG_AUDIT_DIGEST_LEN, p, n, NULL, 0);
}

void audit_json_str(struct json_object *o, const char *k, const char *v)
{
	char buf[SMG_AUDIT_REASON_MAX + 1];

	if (v == NULL)
		return;
	/* Peer-supplied text is bounded here; json-c escapes it. */
	snprintf(buf, sizeof(buf), "%s", v);
	json_object_object_add(o, k, json_object_new_string(buf));
}

void audit_json_u64(struct json_object *o, const char *k, uint64_t v)
{
	json_object_object_add(o, k, json_object_new_uint64(v));
}

void audit_json_hex(struct json_object *o, const char *k, const uint8_t *p, size_t n)
{
	char buf[2 * 128 + 1];

	if (n > 128)
		return;
	smg_hex_encode(p, n, buf);
	json_object_object_add(o, k, json_object_new_string(buf));
}

void audit_json_b64(struct json_object *o, const char *k, const uint8_t *p, size_t n)
{
	char buf[4 * SMG_RECEIPT_MAX / 3 + 8];

	if (n > SMG_RECEIPT_MAX)
		return;
	audit_b64(p, n, buf, sizeof(buf));
	json_object_object_add(o, k, json_object_new_string(buf));
}

const char *audit_json_get_str(struct json_object *o, const char *k)
{
	struct json_object *v;

	if (o == NULL || !json_object_object_get_ex(o, k, &v) ||
	    !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

bool audit_json_get_u64(struct json_object *o, const char *k, uint64_t *out)
{
	struct json_object *v;

	if (o == NULL || !json_object_object_get_ex(o, k, &v) ||
	    !json_object_is_type(v, json_type_int))
		return false;
	*out = json_object_get_uint64(v);
	return true;
}

bool audit_json_get_hex(struct json_object *o, const char *k, uint8_t *out, size_t n)
{
	const char *s = audit_json_get_str(o, k);

	return s != NULL && smg_hex_decode(s, strlen(s), out, n) == SMG_OK;
}

bool audit_json_get_b64(struct json_object *o, const char *k, uint8_t *out, size_t n)
{
	const char *s = audit_json_get_str(o, k);

	return s != NULL && audit_unb64(s, strlen(s), out, n) == SMG_OK;
}

bool audit_json_get_b64v(struct json_object *o, const char *k, uint8_t *out, size_t cap,
			 size_t *len)
{
	const char *s = audit_json_get_str(o, k), *end;

	*len = 0;
	return s != NULL &&
	       sodium_base642bin(out, cap, s, strlen(s), NULL, len, &end, B64_VARIANT) ==
		   0 &&
	       *end == '\0';
}

int smg_audit_key_parse(const char *text, uint8_t key[SMG_AUDIT_KEY_LEN])
{
	return audit_unb64(text, strlen(text), key, SMG_AUDIT_KEY_LEN);
}
