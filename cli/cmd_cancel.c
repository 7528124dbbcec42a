/* `secmig cancel ID|--domain NAME` and `secmig tune ID|--domain NAME
 * [--bandwidth RATE] [--max-downtime MS]`: act on a running migration
 * through its process's control socket (like virsh domjobabort,
 * migrate-setspeed, migrate-setmaxdowntime). */
#include <getopt.h>
#include <json-c/json.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "base/base.h"
#include "cli/cli.h"
#include "cli/migrate.h"
#include "cli/opts.h"

struct act_acc {
	unsigned found;
	bool ok;
	char error[32], detail[SMG_ENGINE_DETAIL_MAX];
	long pid;
};

static void collect(void *arg, const struct smg_ctl_reply *r)
{
	struct act_acc *a = arg;

	if (!r->ok && strcmp(r->error, "not_found") == 0)
		return;
	a->found++;
	a->ok = r->ok;
	a->pid = r->pid;
	snprintf(a->error, sizeof(a->error), "%s", r->error);
	snprintf(a->detail, sizeof(a->detail), "%s", r->detail);
}

static int tune_bandwidth(void *target, const char *arg)
{
	struct smg_ctl_req *rq = target;
	uint64_t v;

	if (strcmp(arg, "none") == 0) {
		rq->bandwidth = UINT64_MAX;
		return 0;
	}
	if (smg_parse_size(arg, &v) != 0 || v == 0 || v == UINT64_MAX)
		return -1;
	rq->bandwidth = v;
	return 0;
}

/* cancel names tune's options only to say whose they are. */
static int tune_only(void *target, const char *arg)
{
	(void)target;
	(void)arg;
	return -1;
}

static const struct smg_opt tune_own[] = {
    {.name = "bandwidth",
     .short_name = 'b',
     .kind = SMG_OPT_FN,
     .fn = tune_bandwidth,
     .bad = "--bandwidth: bytes/s like 100M, or none, not '%s'"},
    {.name = "max-downtime",
     .short_name = 'D',
     .kind = SMG_OPT_UINT,
     .off = offsetof(struct smg_ctl_req, max_downtime_ms),
     .min = 1,
     .max = SMG_OPTS_MAX_DOWNTIME_MS,
     .bad = "--max-downtime: milliseconds, 1..3600000, not '%s'"},
};

static const struct smg_opt cancel_own[] = {
    {.name = "bandwidth",
     .short_name = 'b',
     .kind = SMG_OPT_FN,
     .fn = tune_only,
     .bad = "--bandwidth is for tune"},
    {.name = "max-downtime",
     .short_name = 'D',
     .kind = SMG_OPT_FN,
     .fn = tune_only,
     .bad = "--max-downtime is for tune"},
};

#define ACT_COMMON (SMG_CO(DOMAIN) | SMG_CO(JSON) | SMG_CO(STATE_DIR) | SMG_CO(HELP))

static const struct smg_opt_spec tune_spec = {
    .cmd = "tune",
    .common = ACT_COMMON,
    .own = tune_own,
    .n_own = SMG_ARRAY_LEN(tune_own),
    .operands = true,
};

static const struct smg_opt_spec cancel_spec = {
    .cmd = "cancel",
    .common = ACT_COMMON,
    .own = cancel_own,
    .n_own = SMG_ARRAY_LEN(cancel_own),
    .operands = true,
};

/* The migration to act on, by ID or --domain, and the request. */
static int parse_args(const struct smg_opt_spec *sp, int argc, char **argv,
		      struct smg_cli_common *co, struct smg_ctl_req *rq)
{
	int r;

	if ((r = smg_opts_parse(sp, argc, argv, co, rq)) >= 0)
		return r;
	if (co->domain != NULL) {
		if (optind != argc || !smg_domain_name_valid(co->domain))
			return smg_opts_usage(
			    sp, "give a migration ID or --domain NAME%s", "");
		snprintf(rq->domain, sizeof(rq->domain), "%s", co->domain);
	} else if (optind == argc - 1 && smg_migration_id_valid(argv[optind])) {
		snprintf(rq->id, sizeof(rq->id), "%s", argv[optind]);
	} else {
		return smg_opts_usage(sp,
				      "give a migration ID (32 hex digits, see "
				      "secmig status) or --domain NAME%s",
				      "");
	}
	if (rq->verb == SMG_CTL_TUNE && rq->bandwidth == 0 && rq->max_downtime_ms == 0)
		return smg_opts_usage(
		    sp, "tune needs --bandwidth and/or --max-downtime%s", "");
	return -1;
}

static void report(const struct smg_cmd *cmd, const struct smg_ctl_req *rq,
		   const struct act_acc *acc, bool json, int code)
{
	const char *target = rq->id[0] != '\0' ? rq->id : rq->domain;

	if (json) {
		json_object *j = json_object_new_object();
		json_object_object_add(j, "event", json_object_new_string("result"));
		json_object_object_add(j, "role", json_object_new_string(cmd->name));
		json_object_object_add(j, "outcome",
				       json_object_new_string(acc->found == 0
								  ? "not_found"
							      : acc->ok ? "ok"
									: acc->error));
		json_object_object_add(j, "target", json_object_new_string(target));
		json_object_object_add(j, "exit_code", json_object_new_int(code));
		json_object_object_add(j, "detail", json_object_new_string(acc->detail));
		printf("%s\n",
		       json_object_to_json_string_ext(
			   j, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
		json_object_put(j);
	} else if (acc->found == 0) {
		fprintf(
		    stderr,
		    "secmig: no running migration %s on this host (see secmig status)\n",
		    target);
	} else if (!acc->ok) {
		fprintf(stderr, "secmig: %s %s: %s\n", cmd->name, target, acc->detail);
	} else {
		printf("%s %s (process %ld): %s\n", cmd->name, target, acc->pid,
		       acc->detail);
	}
}

static int run(const struct smg_opt_spec *sp, int argc, char **argv,
	       enum smg_ctl_verb verb)
{
	const struct smg_cmd *cmd = smg_cmd_find(sp->cmd);
	struct smg_ctl_req rq = {.verb = verb};
	struct smg_cli_common co = {0};
	struct act_acc acc = {0};
	int r, code;

	if ((code = parse_args(sp, argc, argv, &co, &rq)) >= 0)
		return code;
	r = smg_ctl_query_all(smg_cli_state_dir(co.dir), &rq, collect, &acc);
	if (r < 0) {
		fprintf(stderr, "secmig: %s: %s\n", cmd->name, smg_strerror(r));
		return SMG_EXIT_CONFIG;
	}
	code = acc.found == 0 ? SMG_EXIT_BACKEND : acc.ok ? SMG_EXIT_OK : SMG_EXIT_FAIL;
	report(cmd, &rq, &acc, co.json, code);
	return code;
}

int smg_cmd_cancel(int argc, char **argv)
{
	return run(&cancel_spec, argc, argv, SMG_CTL_CANCEL);
}

int smg_cmd_tune(int argc, char **argv)
{
	return run(&tune_spec, argc, argv, SMG_CTL_TUNE);
}
