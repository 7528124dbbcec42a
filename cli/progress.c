/* Progress and outcome output of the migration subcommands: JSON lines
 * built with json-c (docs/events.md is their schema), or a live progress
 * line on a terminal, and the final result line, always flushed. */
#include <json-c/json.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/base.h"
#include "cli/cli.h"
#include "cli/migrate.h"

void smg_cli_out_init(struct smg_cli_out *o, FILE *f, bool json, const char *role)
{
	memset(o, 0, sizeof(*o));
	o->f = f;
	o->json = json;
	o->tty = !json && isatty(fileno(stderr));
	o->role = role;
	o->handshake_ms = -1;
	o->auth = "software";
}

/* A write that fails means nobody reads us any more. */
static void check_stream(struct smg_cli_out *o, FILE *f)
{
	if (o->broken || (fflush(f) == 0 && !ferror(f)))
		return;
	o->broken = true;
	if (o->lost != NULL)
		o->lost(o->lost_arg);
}

void smg_cli_emit_json(struct smg_cli_out *o, void *obj)
{
	const char *text;

	if (!o->broken) {
		text = json_object_to_json_string_ext(
		    obj, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
		fprintf(o->f, "%s\n", text);
		check_stream(o, o->f);
	}
	json_object_put(obj);
}

static double mb(double bytes)
{
	return bytes / 1e6;
}

/* A double with a fixed number of decimals (json-c prints its own). */
static json_object *jnum(double v, int decimals)
{
	char text[48];

	if (!isfinite(v))
		return NULL;
	snprintf(text, sizeof(text), "%.*f", decimals, v);
	return json_object_new_double_s(strtod(text, NULL), text);
}

static void put(json_object *o, const char *k, json_object *v)
{
	json_object_object_add(o, k, v);
}

static void put_s(json_object *o, const char *k, const char *v)
{
	put(o, k, json_object_new_string(v));
}

static void put_u(json_object *o, const char *k, uint64_t v)
{
	put(o, k, json_object_new_uint64(v));
}

static json_object *event_new(const struct smg_cli_out *o, const char *event,
			      const struct smg_event *ev)
{
	json_object *j = json_object_new_object();

	put_s(j, "event", event);
	put_s(j, "role", o->role);
	put_s(j, "phase", smg_phase_name(ev->phase));
	put_s(j, "migration_id", ev->st->migration_id);
	return j;
}

static double pct(uint64_t part, uint64_t whole)
{
	return whole == 0      ? 100.0
	       : part >= whole ? 100.0
			       : 100.0 * (double)part / (double)whole;
}

static void json_progress(json_object *j, const struct smg_live_status *ls)
{
	put_u(j, "round", ls->round);
	put(j, "round_pct", jnum(pct(ls->round_done, ls->round_pages), 1));
	put(j, "memory_pct", jnum(pct(ls->copied_pages, ls->ram_pages), 1));
	put(j, "disk_pct",
	    ls->disk_bytes > 0 ? jnum(pct(ls->disk_sent, ls->disk_bytes), 1) : NULL);
	put_u(j, "bytes_sent", ls->bytes);
	put(j, "rate_MBps", jnum(mb(ls->rate), 1));
	put(j, "dirty_rate_MBps", jnum(mb(ls->dirty_rate), 1));
	put(j, "eta_s", ls->eta_s >= 0 ? jnum(ls->eta_s, 1) : NULL);
	put(j, "est_downtime_ms", jnum(ls->est_downtime_ms, 1));
	put_u(j, "downtime_budget_ms", ls->budget_ms);
	put_u(j, "throttle", ls->throttle);
}

static void json_event(struct smg_cli_out *o, const struct smg_event *ev)
{
	const struct smg_mig_stats *st = ev->st;
	json_object *j;

	switch (ev->kind) {
	case SMG_EV_PHASE:
		j = event_new(o, "phase", ev);
		put_s(j, "domain", st->domain);
		put_s(j, "peer", st->peer);
		if (ev->info != NULL)
			put_s(j, "detail", ev->info);
		break;
	case SMG_EV_ROUND:
		j = event_new(o, "round", ev);
		put_u(j, "round", ev->round);
		put_u(j, "pages", ev->round_pages);
		put_u(j, "dirty_pages", ev->dirty_pages);
		put(j, "bandwidth_MBps", jnum(mb(st->bandwidth), 1));
		put(j, "dirty_rate_MBps", jnum(mb(st->dirty_rate), 1));
		put(j, "est_downtime_ms", jnum(ev->est_downtime_ms, 2));
		put_u(j, "throttle", st->throttle);
		put_u(j, "bytes_sent", st->bytes_sent);
		break;
	case SMG_EV_INFO:
		j = event_new(o, "info", ev);
		put_s(j, "detail", ev->info != NULL ? ev->info : "");
		put_u(j, "throttle", st->throttle);
		break;
	case SMG_EV_PROGRESS:
		if (ev->live == NULL)
			return;
		j = event_new(o, "progress", ev);
		json_progress(j, ev->live);
		break;
	default:
		return;
	}
	put_u(j, "t_ms", st->total_ms);
	smg_cli_emit_json(o, j);
}

static void progress_line(struct smg_cli_out *o, const struct smg_event *ev)
{
	const struct smg_live_status *ls = ev->live;
	char line[256], eta[16], disk[24];
	int n;

	if (ls == NULL) {
		n = snprintf(line, sizeof(line),
			     "%-8s round %-3u  %.1f MB/s  dirty %.1f MB/s",
			     smg_phase_name(ev->phase), ev->round, mb(ev->st->bandwidth),
			     mb(ev->st->dirty_rate));
	} else {
		if (ls->eta_s >= 0)
			snprintf(eta, sizeof(eta), "%.1fs", ls->eta_s);
		else
			snprintf(eta, sizeof(eta), "--");
		disk[0] = '\0';
		if (ls->disk_bytes > 0)
			snprintf(disk, sizeof(disk), "  disk %3.0f%%",
				 pct(ls->disk_sent, ls->disk_bytes));
		n = snprintf(
		    line, sizeof(line),
		    "%-8s round %-3u %5.1f%% of round  mem %3.0f%%%s  %7.1f MB/s  "
		    "dirty %6.1f MB/s  ETA %s  budget %u ms",
		    smg_phase_name(ev->phase), ls->round,
		    pct(ls->round_done, ls->round_pages),
		    pct(ls->copied_pages, ls->ram_pages), disk, mb(ls->rate),
		    mb(ls->dirty_rate), eta, ls->budget_ms);
	}
	if (n < 0)
		return;
	fprintf(stderr, "\r%s%*s", line,
		o->line_len > (unsigned)n ? (int)(o->line_len - (unsigned)n) : 0, "");
	o->line_len = (unsigned)n;
	check_stream(o, stderr);
}

void smg_cli_event(void *arg, const struct smg_event *ev)
{
	struct smg_cli_out *o = arg;

	if (o->broken)
		return;
	if (o->json) {
		json_event(o, ev);
	} else if (o->tty) {
		progress_line(o, ev);
		if (ev->phase == SMG_PHASE_DONE || ev->phase == SMG_PHASE_ABORTED ||
		    ev->phase == SMG_PHASE_IN_DOUBT) {
			fprintf(stderr, "\n");
			o->line_len = 0;
		}
	}
}

/* Who failed, from this side's point of view. */
static const char *failed_host(const struct smg_cli_out *o,
			       const struct smg_mig_stats *st)
{
	bool we_send = strcmp(o->role, "send") == 0;

	return st->peer_failed == we_send ? "destination" : "source";
}

static void json_result(struct smg_cli_out *o, const struct smg_mig_stats *st, int code)
{
	char root[2 * SMG_DIGEST_LEN + 1];
	json_object *j = json_object_new_object();

	smg_hex_encode(st->memory_root, SMG_DIGEST_LEN, root);
	put_s(j, "event", "result");
	put_s(j, "role", o->role);
	put_s(j, "outcome", code == SMG_EXIT_OK ? "migrated" : smg_exit_name(code));
	put(j, "exit_code", json_object_new_int(code));
	put_s(j, "migration_id", st->migration_id);
	put_s(j, "domain", st->domain);
	put_s(j, "peer", st->peer);
	put_u(j, "downtime_ms", st->downtime_ms);
	put_u(j, "downtime_budget_ms", st->downtime_budget_ms);
	put(j, "downtime_exceeded", json_object_new_boolean(st->downtime_exceeded));
	put(j, "est_downtime_ms", jnum(st->est_downtime_ms, 1));
	put_u(j, "total_ms", st->total_ms);
	put_u(j, "bytes_sent", st->bytes_sent);
	put_u(j, "ram_bytes", st->ram_bytes);
	put_u(j, "disk_bytes", st->disk_bytes);
	put_u(j, "rounds", st->rounds);
	put(j, "verified", json_object_new_boolean(st->verified));
	put_u(j, "pages_sent", st->pages_sent);
	put_u(j, "zero_pages", st->zero_pages);
	put_u(j, "throttle", st->throttle);
	put(j, "bandwidth_MBps", jnum(mb(st->bandwidth), 1));
	put_s(j, "memory_root", root);
	put_s(j, "auth", o->auth);
	if (o->handshake_ms >= 0)
		put(j, "handshake_ms", jnum(o->handshake_ms, 1));
	if (code != SMG_EXIT_OK) {
		put_s(j, "failed_host", failed_host(o, st));
		put_s(j, "reason", smg_reason_name(st->reason));
		if (st->err != 0)
			put_s(j, "error", smg_strerror(st->err));
		put_s(j, "detail",
		      st->detail[0] != '\0' ? st->detail : smg_strerror(st->err));
	}
	smg_cli_emit_json(o, j);
}

/* What became of the VM, for the human line. */
static const char *vm_where(const struct smg_cli_out *o, int code)
{
	bool send = strcmp(o->role, "send") == 0;

	if (code == SMG_EXIT_IN_DOUBT)
		return "the VM is paused here; run 'secmig resolve'";
	if (code == SMG_EXIT_INTEGRITY && !send)
		return "the incoming copy is in quarantine";
	return send ? "the VM keeps running on this host" : "nothing of it runs here";
}

void smg_cli_result(struct smg_cli_out *o, const struct smg_mig_stats *st, int code)
{
	if (o->tty && o->line_len > 0)
		fprintf(stderr, "\n");
	o->line_len = 0;
	if (o->json) {
		json_result(o, st, code);
		return;
	}
	if (o->broken)
		return;
	if (code == SMG_EXIT_OK)
		fprintf(o->f,
			"%s: migrated %s %s '%s' in %llu ms (downtime %llu ms, budget %u "
			"ms%s), %u rounds, %.1f MB sent for %.1f MB of RAM\n",
			o->role, st->domain, strcmp(o->role, "send") == 0 ? "to" : "from",
			st->peer, (unsigned long long)st->total_ms,
			(unsigned long long)st->downtime_ms, st->downtime_budget_ms,
			st->downtime_exceeded ? ", EXCEEDED" : "", st->rounds,
			mb((double)st->bytes_sent), mb((double)st->ram_bytes));
	else
		fprintf(o->f, "%s: %s: %s; %s (exit %d)\n", o->role, smg_exit_name(code),
			st->detail[0] != '\0' ? st->detail : smg_strerror(st->err),
			vm_where(o, code), code);
	check_stream(o, o->f);
}
