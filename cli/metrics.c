/* A migration process's counters and their Prometheus text form. The
 * counters live for the process (a SIGHUP reload swaps the configuration
 * snapshot, never these); `secmig metrics` reads them over the control
 * socket (METRICS) and sums the processes of the host. Label values are a
 * fixed set, so no peer or domain name can grow the series count. */
#include <json-c/json.h>
#include <pthread.h>
#include <string.h>

#include "base/base.h"
#include "cli/migrate.h"

static const char *const role_names[SMG_MR_N] = {"send", "recv"};
static const char *const outcome_names[SMG_MO_N] = {"migrated", "failed", "cancelled",
						    "in_doubt", "refused"};
static const char *const reason_names[SMG_MX_N] = {
    "unknown_peer", "auth",   "version", "attestation", "policy",   "capacity",
    "busy",	    "exists", "backend", "timeout",	"protocol", "other"};
/* upper bounds; the last bucket is +Inf */
static const unsigned downtime_le_ms[SMG_METRICS_DOWNTIME_BUCKETS - 1] = {
    5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000};
static const unsigned rounds_le[SMG_METRICS_ROUNDS_BUCKETS - 1] = {1, 2,  3,  5,
								   8, 13, 21, 34};

static struct smg_metrics counters;
static pthread_mutex_t counters_lock = PTHREAD_MUTEX_INITIALIZER;

static enum smg_metrics_reason reason_of(int err)
{
	switch (err) {
	case SMG_ERR_UNKNOWN_PEER:
		return SMG_MX_UNKNOWN_PEER;
	case SMG_ERR_AUTH:
	case SMG_ERR_BAD_SIG:
		return SMG_MX_AUTH;
	case SMG_ERR_VERSION:
	case SMG_ERR_DOWNGRADE:
		return SMG_MX_VERSION;
	case SMG_ERR_ATTEST:
	case SMG_ERR_TPM:
		return SMG_MX_ATTESTATION;
	case SMG_ERR_POLICY:
		return SMG_MX_POLICY;
	case SMG_ERR_CAPACITY:
		return SMG_MX_CAPACITY;
	case SMG_ERR_BUSY:
		return SMG_MX_BUSY;
	case SMG_ERR_DOMAIN_EXISTS:
		return SMG_MX_EXISTS;
	case SMG_ERR_NO_BACKEND:
		return SMG_MX_BACKEND;
	case SMG_ERR_TIMEOUT:
		return SMG_MX_TIMEOUT;
	case SMG_ERR_PROTO:
	case SMG_ERR_STATE:
	case SMG_ERR_UNKNOWN_TYPE:
	case SMG_ERR_DECRYPT:
	case SMG_ERR_TRUNCATED:
	case SMG_ERR_TOO_LONG:
	case SMG_ERR_TRAILING:
	case SMG_ERR_REPLAY:
		return SMG_MX_PROTOCOL;
	default:
		return SMG_MX_OTHER;
	}
}

/* Errors that mean "not admitted" rather than "went wrong on the way". */
static bool is_refusal(int err)
{
	switch (reason_of(err)) {
	case SMG_MX_TIMEOUT:
	case SMG_MX_PROTOCOL:
	case SMG_MX_OTHER:
		return false;
	default:
		return true;
	}
}

static enum smg_metrics_outcome outcome_of(int err)
{
	if (err == SMG_OK)
		return SMG_MO_MIGRATED;
	if (err == SMG_ERR_CANCELLED)
		return SMG_MO_CANCELLED;
	if (err == SMG_ERR_IN_DOUBT)
		return SMG_MO_IN_DOUBT;
	return is_refusal(err) ? SMG_MO_REFUSED : SMG_MO_FAILED;
}

void smg_metrics_active(enum smg_metrics_role role, bool started)
{
	pthread_mutex_lock(&counters_lock);
	if (started)
		counters.active[role]++;
	else if (counters.active[role] > 0)
		counters.active[role]--;
	pthread_mutex_unlock(&counters_lock);
}

void smg_metrics_finished(enum smg_metrics_role role, const struct smg_mig_stats *st)
{
	enum smg_metrics_outcome o = outcome_of(st->err);
	unsigned b = 0;

	pthread_mutex_lock(&counters_lock);
	counters.migrations[role][o]++;
	counters.bytes[role] += st->bytes_sent;
	if (o == SMG_MO_REFUSED)
		counters.refused[role][reason_of(st->err)]++;
	if (o == SMG_MO_MIGRATED) {
		while (b < SMG_METRICS_DOWNTIME_BUCKETS - 1 &&
		       st->downtime_ms > downtime_le_ms[b])
			b++;
		counters.downtime[role][b]++;
		counters.downtime_ms_sum[role] += st->downtime_ms;
		for (b = 0;
		     b < SMG_METRICS_ROUNDS_BUCKETS - 1 && st->rounds > rounds_le[b];)
			b++;
		counters.rounds[role][b]++;
		counters.rounds_sum[role] += st->rounds;
	}
	pthread_mutex_unlock(&counters_lock);
}

void smg_metrics_refused(enum smg_metrics_role role, int err)
{
	pthread_mutex_lock(&counters_lock);
	counters.refused[role][reason_of(err)]++;
	pthread_mutex_unlock(&counters_lock);
}

void smg_metrics_reload(bool ok)
{
	pthread_mutex_lock(&counters_lock);
	if (ok)
		counters.reloads_ok++;
	else
		counters.reloads_failed++;
	pthread_mutex_unlock(&counters_lock);
}

void smg_metrics_get(struct smg_metrics *out)
{
	pthread_mutex_lock(&counters_lock);
	*out = counters;
	pthread_mutex_unlock(&counters_lock);
}

/* ---- over the control socket --------------------------------------------- */
static json_object *arr(const uint64_t *v, size_t n)
{
	json_object *a = json_object_new_array();

	for (size_t i = 0; i < n; i++)
		json_object_array_add(a, json_object_new_uint64(v[i]));
	return a;
}

static json_object *per_role(const uint64_t *v, size_t n)
{
	json_object *a = json_object_new_array();

	for (size_t r = 0; r < SMG_MR_N; r++)
		json_object_array_add(a, arr(v + r * n, n));
	return a;
}

void *smg_metrics_json(const struct smg_metrics *m)
{
	json_object *j = json_object_new_object();
	uint64_t reloads[2] = {m->reloads_ok, m->reloads_failed};

	json_object_object_add(j, "migrations", per_role(&m->migrations[0][0], SMG_MO_N));
	json_object_object_add(j, "refused", per_role(&m->refused[0][0], SMG_MX_N));
	json_object_object_add(j, "bytes", arr(m->bytes, SMG_MR_N));
	json_object_object_add(
	    j, "downtime", per_role(&m->downtime[0][0], SMG_METRICS_DOWNTIME_BUCKETS));
	json_object_object_add(j, "downtime_ms_sum", arr(m->downtime_ms_sum, SMG_MR_N));
	json_object_object_add(j, "rounds",
			       per_role(&m->rounds[0][0], SMG_METRICS_ROUNDS_BUCKETS));
	json_object_object_add(j, "rounds_sum", arr(m->rounds_sum, SMG_MR_N));
	json_object_object_add(j, "active", arr(m->active, SMG_MR_N));
	json_object_object_add(j, "reloads", arr(reloads, 2));
	return j;
}

static bool get_arr(json_object *a, uint64_t *v, size_t n)
{
	if (!json_object_is_type(a, json_type_array) || json_object_array_length(a) != n)
		return false;
	for (size_t i = 0; i < n; i++) {
		json_object *e = json_object_array_get_idx(a, i);
		if (!json_object_is_type(e, json_type_int) ||
		    json_object_get_int64(e) < 0)
			return false;
		v[i] = json_object_get_uint64(e);
	}
	return true;
}

static bool get_key(json_object *o, const char *k, uint64_t *v, size_t n)
{
	json_object *a;

	return json_object_object_get_ex(o, k, &a) && get_arr(a, v, n);
}

static bool get_per_role(json_object *o, const char *k, uint64_t *v, size_t n)
{
	json_object *a;

	if (!json_object_object_get_ex(o, k, &a) ||
	    !json_object_is_type(a, json_type_array) ||
	    json_object_array_length(a) != SMG_MR_N)
		return false;
	for (size_t r = 0; r < SMG_MR_N; r++)
		if (!get_arr(json_object_array_get_idx(a, r), v + r * n, n))
			return false;
	return true;
}

int smg_metrics_from_json(void *obj, struct smg_metrics *out)
{
	json_object *o = obj;
	uint64_t reloads[2];

	memset(out, 0, sizeof(*out));
	if (!json_object_is_type(o, json_type_object) ||
	    !get_per_role(o, "migrations", &out->migrations[0][0], SMG_MO_N) ||
	    !get_per_role(o, "refused", &out->refused[0][0], SMG_MX_N) ||
	    !get_key(o, "bytes", out->bytes, SMG_MR_N) ||
	    !get_per_role(o, "downtime", &out->downtime[0][0],
			  SMG_METRICS_DOWNTIME_BUCKETS) ||
	    !get_key(o, "downtime_ms_sum", out->downtime_ms_sum, SMG_MR_N) ||
	    !get_per_role(o, "rounds", &out->rounds[0][0], SMG_METRICS_ROUNDS_BUCKETS) ||
	    !get_key(o, "rounds_sum", out->rounds_sum, SMG_MR_N) ||
	    !get_key(o, "active", out->active, SMG_MR_N) ||
	    !get_key(o, "reloads", reloads, 2)) {
		memset(out, 0, sizeof(*out));
		return SMG_ERR_PROTO;
	}
	out->reloads_ok = reloads[0];
	out->reloads_failed = reloads[1];
	return SMG_OK;
}

/* Counters of several processes add up (wrapping, as a counter may). */
void smg_metrics_add(struct smg_metrics *sum, const struct smg_metrics *m)
{
	uint64_t *d = (uint64_t *)sum;
	const uint64_t *s = (const uint64_t *)m;

	_Static_assert(sizeof(struct smg_metrics) % sizeof(uint64_t) == 0,
		       "struct smg_metrics holds only uint64_t");
	for (size_t i = 0; i < sizeof(*sum) / sizeof(uint64_t); i++)
		d[i] += s[i];
}

/* ---- the Prometheus text exposition format --------------------------------- */
static void family(FILE *f, const char *name, const char *type, const char *help)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void histogram(FILE *f, const char *name, const char *role, const uint64_t *b,
		      size_t n, const unsigned *le, double scale, double sum,
		      int decimals)
{
	uint64_t cum = 0;

	for (size_t i = 0; i < n; i++) {
		cum += b[i];
		if (i + 1 < n)
			fprintf(f, "%s_bucket{role=\"%s\",le=\"%g\"} %llu\n", name, role,
				le[i] * scale, (unsigned long long)cum);
		else
			fprintf(f, "%s_bucket{role=\"%s\",le=\"+Inf\"} %llu\n", name,
				role, (unsigned long long)cum);
	}
	fprintf(f, "%s_sum{role=\"%s\"} %.*f\n", name, role, decimals, sum);
	fprintf(f, "%s_count{role=\"%s\"} %llu\n", name, role, (unsigned long long)cum);
}

void smg_metrics_write_prom(FILE *f, const struct smg_metrics *m, unsigned processes)
{
	family(f, "secmig_processes", "gauge",
	       "secmig processes that answered this scrape on their control socket.");
	fprintf(f, "secmig_processes %u\n", processes);
	family(f, "secmig_migrations_total", "counter",
	       "Migrations that ended, by role and outcome.");
	for (int r = 0; r < SMG_MR_N; r++)
		for (int o = 0; o < SMG_MO_N; o++)
			fprintf(
			    f,
			    "secmig_migrations_total{role=\"%s\",outcome=\"%s\"} %llu\n",
			    role_names[r], outcome_names[o],
			    (unsigned long long)m->migrations[r][o]);
	family(f, "secmig_refused_total", "counter",
	       "Attempts refused (handshake, enrolment, policy, capacity), by role "
	       "and reason.");
	for (int r = 0; r < SMG_MR_N; r++)
		for (int x = 0; x < SMG_MX_N; x++)
			fprintf(f,
				"secmig_refused_total{role=\"%s\",reason=\"%s\"} %llu\n",
				role_names[r], reason_names[x],
				(unsigned long long)m->refused[r][x]);
	family(f, "secmig_transferred_bytes_total", "counter",
	       "Payload bytes of migrations that ended (pages, state, control).");
	for (int r = 0; r < SMG_MR_N; r++)
		fprintf(f, "secmig_transferred_bytes_total{role=\"%s\"} %llu\n",
			role_names[r], (unsigned long long)m->bytes[r]);
	family(f, "secmig_downtime_seconds", "histogram",
	       "Downtime of completed migrations (recv: final round to resume).");
	for (int r = 0; r < SMG_MR_N; r++)
		histogram(f, "secmig_downtime_seconds", role_names[r], m->downtime[r],
			  SMG_METRICS_DOWNTIME_BUCKETS, downtime_le_ms, 0.001,
			  (double)m->downtime_ms_sum[r] / 1000.0, 3);
	family(f, "secmig_rounds", "histogram",
	       "Pre-copy rounds of completed migrations, the final one included.");
	for (int r = 0; r < SMG_MR_N; r++)
		histogram(f, "secmig_rounds", role_names[r], m->rounds[r],
			  SMG_METRICS_ROUNDS_BUCKETS, rounds_le, 1,
			  (double)m->rounds_sum[r], 0);
	family(f, "secmig_active_migrations", "gauge", "Migrations running now.");
	for (int r = 0; r < SMG_MR_N; r++)
		fprintf(f, "secmig_active_migrations{role=\"%s\"} %llu\n", role_names[r],
			(unsigned long long)m->active[r]);
	family(f, "secmig_reloads_total", "counter",
	       "SIGHUP reloads of peers, policy and host definitions, by result.");
	fprintf(f, "secmig_reloads_total{result=\"ok\"} %llu\n",
		(unsigned long long)m->reloads_ok);
	fprintf(f, "secmig_reloads_total{result=\"failed\"} %llu\n",
		(unsigned long long)m->reloads_failed);
}
