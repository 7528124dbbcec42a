/* show: `secmig audit show`, the records as written (--json: the signed
 * JSON of each, one per line) or one human line each. Showing checks
 * nothing: `secmig audit verify` does. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audit/internal.h"

static void iso(uint64_t ms, char *out, size_t cap)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void field(FILE *out, struct json_object *j, const char *k)
{
	const char *v = audit_json_get_str(j, k);

	if (v != NULL)
		fprintf(out, " %s=%s", k, v);
}

static void short_hex(FILE *out, struct json_object *j, const char *k)
{
	const char *v = audit_json_get_str(j, k);

	if (v != NULL)
		fprintf(out, " %s=%.16s", k, v);
}

static void human(FILE *out, const struct smg_audit_record *r)
{
	struct json_object *j = r->json;
	char when[32];
	uint64_t v;

	iso(r->time_ms, when, sizeof(when));
	fprintf(out, "%6llu %s %-9s", (unsigned long long)r->seq, when, r->event);
	field(out, j, "role");
	field(out, j, "id");
	field(out, j, "domain");
	field(out, j, "peer");
	field(out, j, "peer_addr");
	field(out, j, "kind");
	field(out, j, "outcome");
	field(out, j, "error");
	field(out, j, "stage");
	field(out, j, "operator");
	short_hex(out, j, "ticket");
	field(out, j, "mode");
	short_hex(out, j, "manifest");
	if (audit_json_get_str(j, "receipt") != NULL)
		fprintf(out, " receipt=%s",
			audit_json_get_str(j, "receipt_tpm_sig") != NULL ? "signed+AK"
									 : "signed");
	if (audit_json_get_u64(j, "downtime_ms", &v))
		fprintf(out, " downtime_ms=%llu", (unsigned long long)v);
	if (audit_json_get_u64(j, "suppressed", &v))
		fprintf(out, " suppressed=%llu", (unsigned long long)v);
	field(out, j, "previous");
	field(out, j, "reason");
	fputc('\n', out);
}

static int show_file(const char *f, bool json, uint64_t since, const char *id, FILE *out)
{
	char *buf;
	size_t len, off = 0;
	unsigned line = 0;
	int r;

	if ((r = audit_read_file(f, 4u * SMG_AUDIT_ROTATE_BYTES, &buf, &len)) != SMG_OK) {
		fprintf(stderr, "secmig: %s: %s\n", f, smg_strerror(r));
		return r;
	}
	while (off < len) {
		const char *nl = memchr(buf + off, '\n', len - off);
		size_t n = nl != NULL ? (size_t)(nl - (buf + off)) : len - off;
		struct smg_audit_record rec;
		const char *rid;

		line++;
		if (smg_audit_record_parse(buf + off, n, &rec) != SMG_OK) {
			fprintf(stderr,
				"secmig: %s:%u: unreadable record (run secmig audit "
				"verify)\n",
				f, line);
		} else {
			rid = audit_json_get_str(rec.json, "id");
			if (rec.time_ms >= since &&
			    (id == NULL || (rid != NULL && !strcmp(rid, id)))) {
				if (json)
					fprintf(out, "%.*s\n",
						(int)(memrchr(buf + off, '\t', n) -
						      (void *)(buf + off)),
						buf + off);
				else
					human(out, &rec);
			}
			smg_audit_record_free(&rec);
		}
		off += n + 1;
	}
	free(buf);
	return SMG_OK;
}

int smg_audit_show(const char *const *files, size_t n, bool json, uint64_t since_ms,
		   const char *id, FILE *out)
{
	int r = SMG_OK;

	for (size_t i = 0; i < n; i++) {
		int k = show_file(files[i], json, since_ms, id, out);
		if (r == SMG_OK)
			r = k;
	}
	return r;
}
