/* record: one audit record is one line,
 *     JSON object  TAB  base64(Ed25519(host key, "secmig audit record v1\0" || JSON))
 * The signature covers the exact JSON bytes as written, so no canonical
 * JSON is needed; the chain hash covers the whole line (JSON, TAB and
 * signature). Lines come from disk and from peers' logs: they are capped
 * before json-c sees them, json-c parses with a depth limit, and every base
 * field is checked for type and length. */
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "audit/internal.h"
#include "transport/transport.h"

#define RECORD_DEPTH_MAX 4 /* object, array of disk roots: nothing deeper */
#define SIG_B64_LEN	 88

static const char *const events[] = {"open", "rotate", "migration", "alert", "head"};

void smg_audit_record_free(struct smg_audit_record *r)
{
	if (r == NULL)
		return;
	if (r->json != NULL)
		json_object_put(r->json);
	r->json = NULL;
}

static void line_hash(const char *line, size_t len, uint8_t out[SMG_AUDIT_DIGEST_LEN])
{
	crypto_generichash_state st;

	crypto_generichash_init(&st, NULL, 0, SMG_AUDIT_DIGEST_LEN);
	crypto_generichash_update(&st, (const uint8_t *)SMG_AUDIT_CHAIN_CTX,
				  sizeof(SMG_AUDIT_CHAIN_CTX));
	crypto_generichash_update(&st, (const uint8_t *)line, len);
	crypto_generichash_final(&st, out, SMG_AUDIT_DIGEST_LEN);
}

static bool sig_ok(const char *json, size_t jlen, const uint8_t sig[SMG_AUDIT_SIG_LEN],
		   const uint8_t key[SMG_AUDIT_KEY_LEN])
{
	uint8_t *msg;
	bool ok;

	if ((msg = malloc(sizeof(SMG_AUDIT_RECORD_CTX) + jlen)) == NULL)
		return false;
	memcpy(msg, SMG_AUDIT_RECORD_CTX, sizeof(SMG_AUDIT_RECORD_CTX));
	memcpy(msg + sizeof(SMG_AUDIT_RECORD_CTX), json, jlen);
	ok = crypto_sign_verify_detached(sig, msg, sizeof(SMG_AUDIT_RECORD_CTX) + jlen,
					 key) == 0;
	free(msg);
	return ok;
}

static int parse_json(const char *text, size_t len, struct json_object **out)
{
	struct json_tokener *tok = json_tokener_new_ex(RECORD_DEPTH_MAX);
	struct json_object *o;

	*out = NULL;
	if (tok == NULL)
		return SMG_ERR_NOMEM;
	o = json_tokener_parse_ex(tok, text, (int)len);
	/* The object must end exactly where the JSON part does. */
	if (o == NULL || json_tokener_get_error(tok) != json_tokener_success ||
	    json_tokener_get_parse_end(tok) != len ||
	    !json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		json_tokener_free(tok);
		return SMG_ERR_PROTO;
	}
	json_tokener_free(tok);
	*out = o;
	return SMG_OK;
}

static int base_fields(struct smg_audit_record *r)
{
	const char *ev, *host;
	uint64_t v;
	bool known = false;

	if (!audit_json_get_u64(r->json, "v", &v) || v != 1 ||
	    !audit_json_get_u64(r->json, "seq", &r->seq) || r->seq == 0 ||
	    !audit_json_get_u64(r->json, "time", &r->time_ms) ||
	    !audit_json_get_hex(r->json, "prev", r->prev, SMG_AUDIT_DIGEST_LEN) ||
	    !audit_json_get_b64(r->json, "signer", r->signer, SMG_AUDIT_KEY_LEN) ||
	    (ev = audit_json_get_str(r->json, "event")) == NULL ||
	    (host = audit_json_get_str(r->json, "host")) == NULL ||
	    !audit_name_ok(host, SMG_AUDIT_NAME_MAX))
		return SMG_ERR_PROTO;
	for (size_t i = 0; i < SMG_ARRAY_LEN(events); i++)
		known |= strcmp(ev, events[i]) == 0;
	if (!known)
		return SMG_ERR_PROTO;
	snprintf(r->event, sizeof(r->event), "%s", ev);
	snprintf(r->host, sizeof(r->host), "%s", host);
	return SMG_OK;
}

int smg_audit_record_parse(const char *line, size_t len, struct smg_audit_record *out)
{
	const char *tab;
	size_t jlen;
	int r;

	memset(out, 0, sizeof(*out));
	if (len > SMG_AUDIT_RECORD_MAX)
		return SMG_ERR_TOO_LONG;
	if (memchr(line, '\0', len) != NULL || memchr(line, '\n', len) != NULL)
		return SMG_ERR_PROTO;
	/* JSON strings never hold a raw TAB (json-c escapes it): the last one
	 * separates the object from its signature. */
	if ((tab = memrchr(line, '\t', len)) == NULL)
		return SMG_ERR_PROTO;
	jlen = (size_t)(tab - line);
	if (len - jlen - 1 != SIG_B64_LEN ||
	    audit_unb64(tab + 1, SIG_B64_LEN, out->sig, SMG_AUDIT_SIG_LEN) != SMG_OK)
		return SMG_ERR_PROTO;
	if ((r = parse_json(line, jlen, &out->json)) != SMG_OK)
		return r;
	if ((r = base_fields(out)) != SMG_OK) {
		smg_audit_record_free(out);
		return r;
	}
	out->sig_ok = sig_ok(line, jlen, out->sig, out->signer);
	line_hash(line, len, out->hash);
	return SMG_OK;
}

int audit_record_format(struct json_object *obj, const struct smg_identity *id, char *out,
			size_t cap, size_t *len, uint8_t hash[SMG_AUDIT_DIGEST_LEN])
{
	const char *js = json_object_to_json_string_ext(
	    obj, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
	size_t jlen = strlen(js);
	uint8_t sig[SMG_AUDIT_SIG_LEN], *msg;
	char b64[SIG_B64_LEN + 1];
	int r;

	*len = 0;
	if (jlen + 1 + SIG_B64_LEN > SMG_AUDIT_RECORD_MAX || jlen + 2 + SIG_B64_LEN > cap)
		return SMG_ERR_TOO_LONG;
	if ((msg = malloc(sizeof(SMG_AUDIT_RECORD_CTX) + jlen)) == NULL)
		return SMG_ERR_NOMEM;
	memcpy(msg, SMG_AUDIT_RECORD_CTX, sizeof(SMG_AUDIT_RECORD_CTX));
	memcpy(msg + sizeof(SMG_AUDIT_RECORD_CTX), js, jlen);
	r = smg_identity_sign(id, msg, sizeof(SMG_AUDIT_RECORD_CTX) + jlen, sig);
	free(msg);
	if (r != SMG_OK)
		return r;
	audit_b64(sig, sizeof(sig), b64, sizeof(b64));
	memcpy(out, js, jlen);
	out[jlen] = '\t';
	memcpy(out + jlen + 1, b64, SIG_B64_LEN);
	line_hash(out, jlen + 1 + SIG_B64_LEN, hash);
	out[jlen + 1 + SIG_B64_LEN] = '\n';
	*len = jlen + 2 + SIG_B64_LEN;
	return SMG_OK;
}
