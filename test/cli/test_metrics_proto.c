/* The metrics counters (cli/metrics.c) and their way over the control
 * socket (cli/ctl_proto.c): how an ending migration is classified, the
 * METRICS request, the JSON form and what the reader refuses, and the
 * Prometheus text (cumulative buckets, fixed label values). */
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "check.h"
#include "cli/migrate.h"

static void end(int err, uint64_t bytes, uint64_t downtime_ms, unsigned rounds)
{
	struct smg_mig_stats st = {.err = err,
				   .bytes_sent = bytes,
				   .downtime_ms = downtime_ms,
				   .rounds = rounds};

	smg_metrics_finished(SMG_MR_RECV, &st);
}

static void classify(void)
{
	struct smg_metrics m;

	end(SMG_OK, 1000, 30, 3);
	end(SMG_OK, 500, 7000, 40);
	end(SMG_ERR_POLICY, 0, 0, 0);
	end(SMG_ERR_CANCELLED, 200, 0, 0);
	end(SMG_ERR_IN_DOUBT, 300, 0, 0);
	end(SMG_ERR_EOF, 100, 0, 0);
	smg_metrics_refused(SMG_MR_RECV, SMG_ERR_UNKNOWN_PEER);
	smg_metrics_refused(SMG_MR_RECV, SMG_ERR_BAD_SIG);
	smg_metrics_active(SMG_MR_RECV, true);
	smg_metrics_active(SMG_MR_RECV, true);
	smg_metrics_active(SMG_MR_RECV, false);
	smg_metrics_active(SMG_MR_SEND, false); /* never below zero */
	smg_metrics_reload(true);
	smg_metrics_reload(false);
	smg_metrics_get(&m);
	CHECK_EQ(m.migrations[SMG_MR_RECV][SMG_MO_MIGRATED], 2);
	CHECK_EQ(m.migrations[SMG_MR_RECV][SMG_MO_REFUSED], 1);
	CHECK_EQ(m.migrations[SMG_MR_RECV][SMG_MO_CANCELLED], 1);
	CHECK_EQ(m.migrations[SMG_MR_RECV][SMG_MO_IN_DOUBT], 1);
	CHECK_EQ(m.migrations[SMG_MR_RECV][SMG_MO_FAILED], 1);
	CHECK_EQ(m.refused[SMG_MR_RECV][SMG_MX_POLICY], 1);
	CHECK_EQ(m.refused[SMG_MR_RECV][SMG_MX_UNKNOWN_PEER], 1);
	CHECK_EQ(m.refused[SMG_MR_RECV][SMG_MX_AUTH], 1);
	CHECK_EQ(m.bytes[SMG_MR_RECV], 2100);
	CHECK_EQ(m.downtime[SMG_MR_RECV][3], 1);  /* 30 ms: le 0.05 */
	CHECK_EQ(m.downtime[SMG_MR_RECV][10], 1); /* 7 s: le 10 */
	CHECK_EQ(m.downtime_ms_sum[SMG_MR_RECV], 7030);
	CHECK_EQ(m.rounds[SMG_MR_RECV][2], 1); /* 3: le 3 */
	CHECK_EQ(m.rounds[SMG_MR_RECV][8], 1); /* 40: +Inf */
	CHECK_EQ(m.active[SMG_MR_RECV], 1);
	CHECK_EQ(m.active[SMG_MR_SEND], 0);
	CHECK_EQ(m.reloads_ok, 1);
	CHECK_EQ(m.reloads_failed, 1);
}

static void request(void)
{
	struct smg_ctl_req r;
	char line[64];

	CHECK_EQ(smg_ctl_parse_request((const uint8_t *)"METRICS\n", 8, &r), SMG_OK);
	CHECK_EQ(r.verb, SMG_CTL_METRICS);
	CHECK(smg_ctl_format_request(&r, line, sizeof(line)) == 8 &&
	      strcmp(line, "METRICS\n") == 0);
	CHECK(smg_ctl_parse_request((const uint8_t *)"METRICS domain=a", 16, &r) !=
	      SMG_OK);
	CHECK(smg_ctl_parse_request((const uint8_t *)"METRIC", 6, &r) != SMG_OK);
}

static int parse_text(const char *text, struct smg_ctl_reply *rep)
{
	return smg_ctl_parse_reply(text, strlen(text), rep);
}

static void reply(void)
{
	static struct smg_ctl_reply rep;
	struct smg_metrics m;
	json_object *j = json_object_new_object(), *mj;
	char *text, *bad;

	smg_metrics_get(&m);
	json_object_object_add(j, "ok", json_object_new_boolean(true));
	json_object_object_add(j, "pid", json_object_new_int(42));
	json_object_object_add(j, "metrics", smg_metrics_json(&m));
	text = strdup(json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN));
	CHECK_EQ(parse_text(text, &rep), SMG_OK);
	CHECK(rep.has_metrics && memcmp(&rep.metrics, &m, sizeof(m)) == 0);

	/* a row one short, a negative count, a string, a missing key */
	json_object_object_get_ex(j, "metrics", &mj);
	json_object_array_del_idx(
	    json_object_array_get_idx(json_object_object_get(mj, "migrations"), 0), 0, 1);
	bad = strdup(json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN));
	CHECK(parse_text(bad, &rep) != SMG_OK && !rep.has_metrics);
	free(bad);
	json_object_object_add(j, "metrics", smg_metrics_json(&m));
	json_object_object_get_ex(j, "metrics", &mj);
	json_object_array_put_idx(json_object_object_get(mj, "bytes"), 1,
				  json_object_new_int(-1));
	bad = strdup(json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN));
	CHECK(parse_text(bad, &rep) != SMG_OK);
	free(bad);
	json_object_array_put_idx(json_object_object_get(mj, "bytes"), 1,
				  json_object_new_string("1"));
	bad = strdup(json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN));
	CHECK(parse_text(bad, &rep) != SMG_OK);
	free(bad);
	json_object_object_del(mj, "bytes");
	bad = strdup(json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN));
	CHECK(parse_text(bad, &rep) != SMG_OK);
	free(bad);
	free(text);
	json_object_put(j);
}

static void prom(void)
{
	struct smg_metrics m, two;
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	smg_metrics_get(&m);
	two = m;
	smg_metrics_add(&two, &m); /* two processes */
	smg_metrics_write_prom(f, &two, 2);
	fclose(f);
	CHECK(strstr(buf, "secmig_processes 2\n") != NULL);
	CHECK(strstr(buf, "# TYPE secmig_migrations_total counter\n") != NULL);
	CHECK(strstr(buf, "secmig_migrations_total{role=\"recv\",outcome=\"migrated\"} "
			  "4\n") != NULL);
	CHECK(strstr(buf, "secmig_refused_total{role=\"recv\",reason=\"policy\"} 2\n") !=
	      NULL);
	/* cumulative: 30 ms is under 0.05 s, and 7 s under 10 s */
	CHECK(strstr(buf, "secmig_downtime_seconds_bucket{role=\"recv\",le=\"0.025\"} "
			  "0\n") != NULL);
	CHECK(strstr(buf, "secmig_downtime_seconds_bucket{role=\"recv\",le=\"0.05\"} "
			  "2\n") != NULL);
	CHECK(strstr(buf, "secmig_downtime_seconds_bucket{role=\"recv\",le=\"5\"} 2\n") !=
	      NULL);
	CHECK(strstr(buf, "secmig_downtime_seconds_bucket{role=\"recv\",le=\"+Inf\"} "
			  "4\n") != NULL);
	CHECK(strstr(buf, "secmig_downtime_seconds_sum{role=\"recv\"} 14.060\n") != NULL);
	CHECK(strstr(buf, "secmig_rounds_sum{role=\"recv\"} 86\n") != NULL);
	CHECK(strstr(buf, "secmig_active_migrations{role=\"recv\"} 2\n") != NULL);
	free(buf);
}

int main(void)
{
	classify();
	request();
	reply();
	prom();
	return check_result("metrics");
}
