/* `secmig cancel ID|--domain NAME` and `secmig tune ID|--domain NAME
 * [--bandwidth RATE] [--max-downtime MS]`: act on a running migration
 * through its process's control socket (like virsh domjobabort,
 * migrate-setspeed, migrate-setmaxdowntime). */
#include <getopt.h>
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

#include "base/base.h"
#include "cli/cli.h"
#include "cli/migrate.h"

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

static int run(const struct smg_cmd *cmd, int argc, char **argv, enum smg_ctl_verb verb)
{
	static const struct option opts[] = {
	    {"domain", required_argument, NULL, 'd'},
	    {"bandwidth", required_argument, NULL, 'b'},
	    {"max-downtime", required_argument, NULL, 'D'},
	    {"json", no_argument, NULL, 'j'},
	    {"state-dir", required_argument, NULL, 's'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct smg_ctl_req rq = {.verb = verb};
	struct act_acc acc = {0};
	const char *dir = NULL, *domain = NULL;
	bool json = false;
	uint64_t v;
	int c, r, code;

	optind = 1;
	while ((c = getopt_long(argc, argv, "d:b:D:js:h", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			domain = optarg;
			break;
		case 'b':
			if (verb != SMG_CTL_TUNE)
				return smg_cli_usage_error(cmd,
							   "--bandwidth is for tune");
			if (strcmp(optarg, "none") == 0)
				rq.bandwidth = UINT64_MAX;
			else if (smg_parse_size(optarg, &v) != 0 || v == 0 ||
				 v == UINT64_MAX)
				return smg_cli_usage_error(
				    cmd,
				    "--bandwidth: bytes/s like 100M, or none, not '%s'",
				    optarg);
			else
				rq.bandwidth = v;
			break;
		case 'D':
			if (verb != SMG_CTL_TUNE)
				return smg_cli_usage_error(cmd,
							   "--max-downtime is for tune");
			if (smg_parse_size(optarg, &v) != 0 || v == 0 || v > 3600000)
				return smg_cli_usage_error(
				    cmd,
				    "--max-downtime: milliseconds, 1..3600000, not '%s'",
				    optarg);
			rq.max_downtime_ms = (unsigned)v;
			break;
		case 'j':
			json = true;
			break;
		case 's':
			dir = optarg;
			break;
		case 'h':
			printf("%s", cmd->usage);
			return SMG_EXIT_OK;
		default:
			return smg_cli_usage_error(cmd, "bad option");
		}
	}
	if (domain != NULL) {
		if (optind != argc || !smg_domain_name_valid(domain))
			return smg_cli_usage_error(
			    cmd, "give a migration ID or --domain NAME");
		snprintf(rq.domain, sizeof(rq.domain), "%s", domain);
	} else if (optind == argc - 1 && smg_migration_id_valid(argv[optind])) {
		snprintf(rq.id, sizeof(rq.id), "%s", argv[optind]);
	} else {
		return smg_cli_usage_error(cmd, "give a migration ID (32 hex digits, see "
						"secmig status) or --domain NAME");
	}
	if (verb == SMG_CTL_TUNE && rq.bandwidth == 0 && rq.max_downtime_ms == 0)
		return smg_cli_usage_error(
		    cmd, "tune needs --bandwidth and/or --max-downtime");
	r = smg_ctl_query_all(smg_cli_state_dir(dir), &rq, collect, &acc);
	if (r < 0) {
		fprintf(stderr, "secmig: %s: %s\n", cmd->name, smg_strerror(r));
		return SMG_EXIT_CONFIG;
	}
	code = acc.found == 0 ? SMG_EXIT_BACKEND : acc.ok ? SMG_EXIT_OK : SMG_EXIT_FAIL;
	const char *target = rq.id[0] != '\0' ? rq.id : rq.domain;
	if (json) {
		json_object *j = json_object_new_object();
		json_object_object_add(j, "event", json_object_new_string("result"));
		json_object_object_add(j, "role", json_object_new_string(cmd->name));
		json_object_object_add(j, "outcome",
				       json_object_new_string(acc.found == 0 ? "not_found"
							      : acc.ok	     ? "ok"
								       : acc.error));
		json_object_object_add(j, "target", json_object_new_string(target));
		json_object_object_add(j, "exit_code", json_object_new_int(code));
		json_object_object_add(j, "detail", json_object_new_string(acc.detail));
		printf("%s\n",
		       json_object_to_json_string_ext(
			   j, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
		json_object_put(j);
	} else if (acc.found == 0) {
		fprintf(
		    stderr,
		    "secmig: no running migration %s on this host (see secmig status)\n",
		    target);
	} else if (!acc.ok) {
		fprintf(stderr, "secmig: %s %s: %s\n", cmd->name, target, acc.detail);
	} else {
		printf("%s %s (process %ld): %s\n", cmd->name, target, acc.pid,
		       acc.detail);
	}
	return code;
}

int smg_cmd_cancel(int argc, char **argv)
{
	return run(smg_cmd_find("cancel"), argc, argv, SMG_CTL_CANCEL);
}

int smg_cmd_tune(int argc, char **argv)
{
	return run(smg_cmd_find("tune"), argc, argv, SMG_CTL_TUNE);
}
