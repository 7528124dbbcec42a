/* The local control protocol of migration processes (secmig status,
 * cancel, tune): a one-line text request, a JSON reply. Both directions are
 * parsed as untrusted bytes with fixed bounds (the socket is root-only, but
 * a parser gets no trust from where its bytes come from); both parsers are
 * fuzzed (fuzz/fuzz_ctl_request.c, fuzz/fuzz_ctl_reply.c). */
#include <json-c/json.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "cli/migrate.h"

#define REQ_TOKENS_MAX	4
#define REPLY_DEPTH_MAX 6
#define NUM_DIGITS_MAX	19 /* fits a uint64_t */

static bool parse_num(const char *s, size_t n, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;

	if (n == 0 || n > NUM_DIGITS_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	if (v > max)
		return false;
	*out = v;
	return true;
}

static bool set_text(char *dst, size_t cap, const char *s, size_t n)
{
	if (n == 0 || n >= cap)
		return false;
	memcpy(dst, s, n);
	dst[n] = '\0';
	return true;
}

/* One key=value token of a CANCEL/TUNE request. */
static int req_token(struct smg_ctl_req *r, const char *t, size_t n)
{
	const char *eq = memchr(t, '=', n);
	size_t kn, vn;
	uint64_t v;

	if (eq == NULL)
		return SMG_ERR_PROTO;
	kn = (size_t)(eq - t);
	vn = n - kn - 1;
	if (kn == 2 && memcmp(t, "id", 2) == 0) {
		if (r->id[0] != '\0' || !set_text(r->id, sizeof(r->id), eq + 1, vn) ||
		    !smg_migration_id_valid(r->id))
			return SMG_ERR_PROTO;
	} else if (kn == 6 && memcmp(t, "domain", 6) == 0) {
		if (r->domain[0] != '\0' ||
		    !set_text(r->domain, sizeof(r->domain), eq + 1, vn) ||
		    !smg_domain_name_valid(r->domain))
			return SMG_ERR_PROTO;
	} else if (kn == 9 && memcmp(t, "bandwidth", 9) == 0 && r->verb == SMG_CTL_TUNE) {
		if (r->bandwidth != 0)
			return SMG_ERR_PROTO;
		if (vn == 4 && memcmp(eq + 1, "none", 4) == 0)
			r->bandwidth = UINT64_MAX;
		else if (!parse_num(eq + 1, vn, UINT64_MAX - 1, &v) || v == 0)
			return SMG_ERR_PROTO;
		else
			r->bandwidth = v;
	} else if (kn == 12 && memcmp(t, "max_downtime", 12) == 0 &&
		   r->verb == SMG_CTL_TUNE) {
		if (r->max_downtime_ms != 0 || !parse_num(eq + 1, vn, 3600000, &v) ||
		    v == 0)
			return SMG_ERR_PROTO;
		r->max_downtime_ms = (unsigned)v;
	} else {
		return SMG_ERR_PROTO;
	}
	return SMG_OK;
}

int smg_ctl_parse_request(const uint8_t *buf, size_t len, struct smg_ctl_req *out)
{
	const char *p = (const char *)buf, *t[REQ_TOKENS_MAX + 1];
	size_t tn[REQ_TOKENS_MAX + 1], ntok = 0, i = 0;
	int r;

	memset(out, 0, sizeof(*out));
	if (len == 0 || len > SMG_CTL_REQ_MAX)
		return SMG_ERR_TOO_LONG;
	if (p[len - 1] == '\n')
		len--;
	/* single spaces between printable tokens, nothing else */
	while (i < len) {
		size_t s = i;
		while (i < len && p[i] > 0x20 && p[i] < 0x7f)
			i++;
		if (i == s || ntok > REQ_TOKENS_MAX)
			return SMG_ERR_PROTO;
		t[ntok] = p + s;
		tn[ntok++] = i - s;
		if (i < len && (p[i] != ' ' || i + 1 == len))
			return SMG_ERR_PROTO;
		if (i < len)
			i++;
	}
	if (ntok == 0)
		return SMG_ERR_PROTO;
	if (tn[0] == 6 && memcmp(t[0], "STATUS", 6) == 0)
		out->verb = SMG_CTL_STATUS;
	else if (tn[0] == 6 && memcmp(t[0], "CANCEL", 6) == 0)
		out->verb = SMG_CTL_CANCEL;
	else if (tn[0] == 4 && memcmp(t[0], "TUNE", 4) == 0)
		out->verb = SMG_CTL_TUNE;
	else if (tn[0] == 7 && memcmp(t[0], "METRICS", 7) == 0)
		out->verb = SMG_CTL_METRICS;
	else
		return SMG_ERR_PROTO;
	for (size_t k = 1; k < ntok; k++)
		if ((r = req_token(out, t[k], tn[k])) != SMG_OK)
			goto bad;
	/* STATUS and METRICS take nothing; the others one target; TUNE
	 * something to do */
	bool bare = out->verb == SMG_CTL_STATUS || out->verb == SMG_CTL_METRICS;
	if ((bare && ntok != 1) ||
	    (!bare && (out->id[0] != '\0') == (out->domain[0] != '\0')) ||
	    (out->verb == SMG_CTL_TUNE && out->bandwidth == 0 &&
	     out->max_downtime_ms == 0))
		goto bad;
	return SMG_OK;
bad:
	memset(out, 0, sizeof(*out));
	return SMG_ERR_PROTO;
}

int smg_ctl_format_request(const struct smg_ctl_req *r, char *out, size_t n)
{
	static const char *const verbs[] = {"", "STATUS", "CANCEL", "TUNE", "METRICS"};
	size_t w;

	if ((unsigned)r->verb >= SMG_ARRAY_LEN(verbs) || r->verb == 0)
		return SMG_ERR_INVAL;
	w = (size_t)snprintf(out, n, "%s", verbs[r->verb]);
	if (r->id[0] != '\0')
		w += (size_t)snprintf(out + w, w < n ? n - w : 0, " id=%s", r->id);
	else if (r->domain[0] != '\0')
		w +=
		    (size_t)snprintf(out + w, w < n ? n - w : 0, " domain=%s", r->domain);
	if (r->bandwidth == UINT64_MAX)
		w += (size_t)snprintf(out + w, w < n ? n - w : 0, " bandwidth=none");
	else if (r->bandwidth != 0)
		w += (size_t)snprintf(out + w, w < n ? n - w : 0, " bandwidth=%llu",
				      (unsigned long long)r->bandwidth);
	if (r->max_downtime_ms != 0)
		w += (size_t)snprintf(out + w, w < n ? n - w : 0, " max_downtime=%u",
				      r->max_downtime_ms);
	if (w + 1 >= n)
		return SMG_ERR_TOO_LONG;
	out[w++] = '\n';
	out[w] = '\0';
	return (int)w;
}

/* ---- replies ------------------------------------------------------------- */
static json_object *jnum(double v, int decimals)
{
	char text[48];

	if (!isfinite(v))
		return NULL;
	snprintf(text, sizeof(text), "%.*f", decimals, v);
	return json_object_new_double_s(strtod(text, NULL), text);
}

static double pct(uint64_t part, uint64_t whole)
{
	return whole == 0      ? 100.0
	       : part >= whole ? 100.0
			       : 100.0 * (double)part / (double)whole;
}

void *smg_ctl_status_json(const struct smg_live_status *s)
{
	json_object *j = json_object_new_object();

	json_object_object_add(j, "migration_id",
			       json_object_new_string(s->migration_id));
	json_object_object_add(j, "role", json_object_new_string(s->role));
	json_object_object_add(j, "domain", json_object_new_string(s->domain));
	json_object_object_add(j, "peer", json_object_new_string(s->peer));
	json_object_object_add(j, "phase",
			       json_object_new_string(smg_phase_name(s->phase)));
	json_object_object_add(j, "round", json_object_new_uint64(s->round));
	json_object_object_add(j, "round_pages", json_object_new_uint64(s->round_pages));
	json_object_object_add(j, "round_done", json_object_new_uint64(s->round_done));
	json_object_object_add(j, "ram_pages", json_object_new_uint64(s->ram_pages));
	json_object_object_add(j, "copied_pages",
			       json_object_new_uint64(s->copied_pages));
	json_object_object_add(j, "memory_pct",
			       jnum(pct(s->copied_pages, s->ram_pages), 1));
	json_object_object_add(j, "disk_bytes", json_object_new_uint64(s->disk_bytes));
	json_object_object_add(j, "disk_sent", json_object_new_uint64(s->disk_sent));
	json_object_object_add(
	    j, "disk_pct",
	    s->disk_bytes > 0 ? jnum(pct(s->disk_sent, s->disk_bytes), 1) : NULL);
	json_object_object_add(j, "bytes", json_object_new_uint64(s->bytes));
	json_object_object_add(j, "rate_Bps", jnum(s->rate, 0));
	json_object_object_add(j, "dirty_rate_Bps", jnum(s->dirty_rate, 0));
	json_object_object_add(j, "eta_s", s->eta_s >= 0 ? jnum(s->eta_s, 1) : NULL);
	json_object_object_add(j, "est_downtime_ms", jnum(s->est_downtime_ms, 1));
	json_object_object_add(j, "downtime_budget_ms",
			       json_object_new_uint64(s->budget_ms));
	json_object_object_add(j, "throttle", json_object_new_uint64(s->throttle));
	json_object_object_add(j, "bandwidth_limit_Bps",
			       json_object_new_uint64(s->bandwidth));
	json_object_object_add(j, "started_unix_ms",
			       json_object_new_uint64(s->started_unix_ms));
	json_object_object_add(j, "cancelling", json_object_new_boolean(s->cancelling));
	json_object_object_add(j, "committed", json_object_new_boolean(s->committed));
	return j;
}

static bool get_str(json_object *o, const char *k, char *dst, size_t cap)
{
	json_object *v;
	const char *s;

	if (!json_object_object_get_ex(o, k, &v) ||
	    !json_object_is_type(v, json_type_string))
		return false;
	s = json_object_get_string(v);
	if ((size_t)json_object_get_string_len(v) >= cap ||
	    strlen(s) != (size_t)json_object_get_string_len(v))
		return false;
	smg_peer_text(s, dst, cap);
	return true;
}

static bool get_u64(json_object *o, const char *k, uint64_t *out)
{
	json_object *v;

	if (!json_object_object_get_ex(o, k, &v) ||
	    !json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 0)
		return false;
	*out = json_object_get_uint64(v);
	return true;
}

/* A number, or null for "unknown" (-1). */
static bool get_num(json_object *o, const char *k, double *out)
{
	json_object *v;

	if (!json_object_object_get_ex(o, k, &v))
		return false;
	if (v == NULL) {
		*out = -1;
		return true;
	}
	if (!json_object_is_type(v, json_type_double) &&
	    !json_object_is_type(v, json_type_int))
		return false;
	*out = json_object_get_double(v);
	return isfinite(*out) && *out >= 0;
}

static bool get_bool(json_object *o, const char *k, bool *out)
{
	json_object *v;

	if (!json_object_object_get_ex(o, k, &v) ||
	    !json_object_is_type(v, json_type_boolean))
		return false;
	*out = json_object_get_boolean(v);
	return true;
}

static int parse_status(json_object *o, struct smg_live_status *s)
{
	char phase[16];
	uint64_t round, budget, throttle;

	memset(s, 0, sizeof(*s));
	if (!json_object_is_type(o, json_type_object) ||
	    !get_str(o, "migration_id", s->migration_id, sizeof(s->migration_id)) ||
	    !get_str(o, "role", s->role, sizeof(s->role)) ||
	    !get_str(o, "domain", s->domain, sizeof(s->domain)) ||
	    !get_str(o, "peer", s->peer, sizeof(s->peer)) ||
	    !get_str(o, "phase", phase, sizeof(phase)) || !get_u64(o, "round", &round) ||
	    !get_u64(o, "round_pages", &s->round_pages) ||
	    !get_u64(o, "round_done", &s->round_done) ||
	    !get_u64(o, "ram_pages", &s->ram_pages) ||
	    !get_u64(o, "copied_pages", &s->copied_pages) ||
	    !get_u64(o, "disk_bytes", &s->disk_bytes) ||
	    !get_u64(o, "disk_sent", &s->disk_sent) || !get_u64(o, "bytes", &s->bytes) ||
	    !get_num(o, "rate_Bps", &s->rate) ||
	    !get_num(o, "dirty_rate_Bps", &s->dirty_rate) ||
	    !get_num(o, "eta_s", &s->eta_s) ||
	    !get_num(o, "est_downtime_ms", &s->est_downtime_ms) ||
	    !get_u64(o, "downtime_budget_ms", &budget) ||
	    !get_u64(o, "throttle", &throttle) ||
	    !get_u64(o, "bandwidth_limit_Bps", &s->bandwidth) ||
	    !get_u64(o, "started_unix_ms", &s->started_unix_ms) ||
	    !get_bool(o, "cancelling", &s->cancelling) ||
	    !get_bool(o, "committed", &s->committed) || round > UINT32_MAX ||
	    budget > UINT32_MAX || throttle > 100 || s->rate < 0 || s->dirty_rate < 0)
		return SMG_ERR_PROTO;
	if (!smg_migration_id_valid(s->migration_id) ||
	    (strcmp(s->role, "send") != 0 && strcmp(s->role, "recv") != 0) ||
	    (s->domain[0] != '\0' && !smg_domain_name_valid(s->domain)))
		return SMG_ERR_PROTO;
	s->round = (unsigned)round;
	s->budget_ms = (unsigned)budget;
	s->throttle = (unsigned)throttle;
	s->phase = SMG_PHASE_IN_DOUBT + 1;
	for (int p = SMG_PHASE_SETUP; p <= SMG_PHASE_IN_DOUBT; p++)
		if (strcmp(phase, smg_phase_name((enum smg_phase)p)) == 0)
			s->phase = (enum smg_phase)p;
	return s->phase <= SMG_PHASE_IN_DOUBT ? SMG_OK : SMG_ERR_PROTO;
}

int smg_ctl_parse_reply(const char *buf, size_t len, struct smg_ctl_reply *out)
{
	json_tokener *tok;
	json_object *o = NULL, *v;
	int r = SMG_ERR_PROTO;
	uint64_t pid;

	memset(out, 0, sizeof(*out));
	if (len == 0 || len > SMG_CTL_REPLY_MAX)
		return SMG_ERR_TOO_LONG;
	if ((tok = json_tokener_new_ex(REPLY_DEPTH_MAX)) == NULL)
		return SMG_ERR_NOMEM;
	o = json_tokener_parse_ex(tok, buf, (int)len);
	if (o == NULL || json_tokener_get_error(tok) != json_tokener_success ||
	    json_tokener_get_parse_end(tok) != len ||
	    !json_object_is_type(o, json_type_object) || !get_bool(o, "ok", &out->ok) ||
	    !get_u64(o, "pid", &pid) || pid > INT32_MAX)
		goto out;
	out->pid = (long)pid;
	if (json_object_object_get_ex(o, "error", &v) &&
	    !get_str(o, "error", out->error, sizeof(out->error)))
		goto out;
	if (json_object_object_get_ex(o, "detail", &v) &&
	    !get_str(o, "detail", out->detail, sizeof(out->detail)))
		goto out;
	if (json_object_object_get_ex(o, "migrations", &v)) {
		size_t n;
		if (!json_object_is_type(v, json_type_array) ||
		    (n = json_object_array_length(v)) > SMG_CTL_MIGRATIONS_MAX)
			goto out;
		for (size_t i = 0; i < n; i++)
			if (parse_status(json_object_array_get_idx(v, i), &out->m[i]) !=
			    SMG_OK)
				goto out;
		out->n = (unsigned)n;
	}
	if (json_object_object_get_ex(o, "metrics", &v)) {
		if (smg_metrics_from_json(v, &out->metrics) != SMG_OK)
			goto out;
		out->has_metrics = true;
	}
	r = SMG_OK;
out:
	if (r != SMG_OK)
		memset(out, 0, sizeof(*out));
	json_object_put(o);
	json_tokener_free(tok);
	return r;
}
