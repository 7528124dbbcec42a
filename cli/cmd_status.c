/* `secmig status [--json]`: every migration running on this host, both
 * directions, from each migration process's control socket. */
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

#include "base/base.h"
#include "cli/cli.h"
#include "cli/migrate.h"
#include "cli/opts.h"

struct status_acc {
	bool json;
	unsigned n;
	json_object *all;
};

static double pct(uint64_t part, uint64_t whole)
{
	return whole == 0      ? 100.0
	       : part >= whole ? 100.0
			       : 100.0 * (double)part / (double)whole;
}

static void print_row(const struct smg_live_status *s, long pid)
{
	char eta[16], disk[8], rnd[24];

	if (s->eta_s >= 0)
		snprintf(eta, sizeof(eta), "%.1fs", s->eta_s);
	else
		snprintf(eta, sizeof(eta), "-");
	if (s->disk_bytes > 0)
		snprintf(disk, sizeof(disk), "%.0f%%", pct(s->disk_sent, s->disk_bytes));
	else
		snprintf(disk, sizeof(disk), "-");
	snprintf(rnd, sizeof(rnd), "%u (%.0f%%)", s->round,
		 pct(s->round_done, s->round_pages));
	printf(
	    "%-32s %-4s %-16s %-12s %-9s %-10s %4.0f%% %5s %8.1f %8.1f %7s %6u%s %7ld\n",
	    s->migration_id, s->role, s->domain[0] ? s->domain : "-",
	    s->peer[0] ? s->peer : "-", smg_phase_name(s->phase), rnd,
	    pct(s->copied_pages, s->ram_pages), disk, s->rate / 1e6, s->dirty_rate / 1e6,
	    eta, s->budget_ms, s->cancelling ? "*" : " ", pid);
}

static void collect(void *arg, const struct smg_ctl_reply *r)
{
	struct status_acc *a = arg;

	for (unsigned i = 0; i < r->n; i++) {
		a->n++;
		if (a->json) {
			json_object *j = smg_ctl_status_json(&r->m[i]);
			json_object_object_add(j, "pid", json_object_new_int64(r->pid));
			json_object_array_add(a->all, j);
		} else {
			if (a->n == 1)
				printf(
				    "%-32s %-4s %-16s %-12s %-9s %-10s %5s %5s %8s %8s "
				    "%7s %7s %7s\n",
				    "ID", "ROLE", "DOMAIN", "PEER", "PHASE", "ROUND",
				    "MEM", "DISK", "MB/s", "DIRTY", "ETA", "BUDGET",
				    "PID");
			print_row(&r->m[i], r->pid);
		}
	}
}

static const struct smg_opt_spec spec = {
    .cmd = "status",
    .common = SMG_CO(JSON) | SMG_CO(STATE_DIR) | SMG_CO(HELP),
};

int smg_cmd_status(int argc, char **argv)
{
	struct smg_ctl_req rq = {.verb = SMG_CTL_STATUS};
	struct status_acc acc = {0};
	struct smg_cli_common co = {0};
	int r;

	if ((r = smg_opts_parse(&spec, argc, argv, &co, NULL)) >= 0)
		return r;
	acc.json = co.json;
	acc.all = json_object_new_array();
	r = smg_ctl_query_all(smg_cli_state_dir(co.dir), &rq, collect, &acc);
	if (r < 0) {
		fprintf(stderr, "secmig: status: %s\n", smg_strerror(r));
		json_object_put(acc.all);
		return smg_exit_from_err(r) == SMG_EXIT_FAIL ? SMG_EXIT_CONFIG
							     : smg_exit_from_err(r);
	}
	if (acc.json) {
		json_object *j = json_object_new_object();
		json_object_object_add(j, "event", json_object_new_string("status"));
		json_object_object_add(j, "migrations", acc.all);
		printf("%s\n",
		       json_object_to_json_string_ext(
			   j, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
		json_object_put(j);
	} else {
		json_object_put(acc.all);
		if (acc.n == 0)
			printf("no migration running on this host\n");
	}
	return SMG_EXIT_OK;
}
