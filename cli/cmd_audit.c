/* `secmig audit show|verify|rotate|counters`: this host's audit log
 * (docs/audit.md). verify exits 0 when the chain, every signature and the
 * evidence hold (and, with --peer-log, both halves of every migration
 * agree), 7 when anything was found, with one line per problem naming the
 * file, line and record number. */
#include <getopt.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "audit/audit.h"
#include "base/base.h"
#include "cli/cli.h"
#include "cli/migrate.h"
#include "cli/opts.h"
#include "transport/transport.h"

#define PEER_LOGS_MAX 64

static int usage(const char *fmt, const char *arg)
{
	return smg_cli_usage_error(smg_cmd_find("audit"), fmt, arg);
}

struct aargs {
	struct smg_cli_common co; /* state dir, json, key, name */
	const char *since, *id, *peer_key, *head;
	const char *peer_logs[PEER_LOGS_MAX];
	size_t npeer;
	char **files;
	size_t nfiles;
	bool own_files; /* files came from the state dir */
};

static int peer_log(void *target, const char *arg)
{
	struct aargs *a = target;

	if (a->npeer == PEER_LOGS_MAX)
		return -1;
	a->peer_logs[a->npeer++] = arg;
	return 0;
}

#define AA_OFF(f) offsetof(struct aargs, f)
static const struct smg_opt own[] = {
    {.name = "since", .short_name = 'S', .kind = SMG_OPT_STR, .off = AA_OFF(since)},
    {.name = "id", .short_name = 'i', .kind = SMG_OPT_STR, .off = AA_OFF(id)},
    {.name = "peer-key", .short_name = 'K', .kind = SMG_OPT_STR, .off = AA_OFF(peer_key)},
    {.name = "peer-log",
     .short_name = 'p',
     .kind = SMG_OPT_FN,
     .fn = peer_log,
     .bad = "at most 64 --peer-log files"},
    {.name = "head", .short_name = 'H', .kind = SMG_OPT_STR, .off = AA_OFF(head)},
};

static const struct smg_opt_spec spec = {
    .cmd = "audit",
    .common = SMG_CO(STATE_DIR) | SMG_CO(JSON) | SMG_CO(KEY) | SMG_CO(NAME),
    .own = own,
    .n_own = SMG_ARRAY_LEN(own),
    .operands = true,
};

/* FILE arguments, or every log file of DIR/audit, oldest first. */
static int log_files(struct aargs *a, int argc, char **argv)
{
	char dir[600];

	if (optind < argc) {
		a->files = argv + optind;
		a->nfiles = (size_t)(argc - optind);
		return SMG_EXIT_OK;
	}
	snprintf(dir, sizeof(dir), "%s/audit", smg_cli_state_dir(a->co.dir));
	if (smg_audit_log_files(dir, &a->files, &a->nfiles) != SMG_OK) {
		fprintf(stderr, "secmig: no audit log in %s\n", dir);
		return SMG_EXIT_CONFIG;
	}
	a->own_files = true;
	return SMG_EXIT_OK;
}

static void free_files(struct aargs *a)
{
	if (a->own_files)
		smg_audit_log_files_free(a->files, a->nfiles);
}

static int show(struct aargs *a)
{
	uint64_t since = 0;

	if (a->since != NULL) {
		if (smg_cli_parse_time(a->since, (uint64_t)time(NULL), &since) != SMG_OK)
			return usage(
			    "--since: -1h, -30m, @UNIXTIME or YYYY-MM-DDTHH:MM:SSZ, "
			    "not '%s'",
			    a->since);
		since *= 1000;
	}
	return smg_audit_show((const char *const *)a->files, a->nfiles, a->co.json, since,
			      a->id, stdout) == SMG_OK
		   ? SMG_EXIT_OK
		   : SMG_EXIT_CONFIG;
}

static void report(void *arg, const char *file, unsigned line, uint64_t seq,
		   const char *what)
{
	(void)arg;
	if (line == 0)
		printf("%s: %s\n", file, what);
	else
		printf("%s:%u: record %llu: %s\n", file, line, (unsigned long long)seq,
		       what);
}

/* A key from a .pub file or base64 text. */
static int load_key(const char *arg, uint8_t key[SMG_PUBKEY_LEN])
{
	char text[128];
	FILE *f = fopen(arg, "r");

	if (f != NULL) {
		if (fgets(text, sizeof(text), f) == NULL)
			text[0] = '\0';
		fclose(f);
	} else {
		snprintf(text, sizeof(text), "%s", arg);
	}
	text[strcspn(text, "\r\n \t")] = '\0';
	return smg_audit_key_parse(text, key) == SMG_OK ? SMG_OK : SMG_ERR_CONFIG;
}

static int verify(struct aargs *a)
{
	struct smg_audit_verify_opts o = {.report = report};
	struct smg_audit_chain *ours = NULL, *peer = NULL;
	uint8_t pin[SMG_PUBKEY_LEN], ppin[SMG_PUBKEY_LEN];
	char head[600], pubp[600];
	size_t pairs = 0;
	int n, np = 0, code;

	snprintf(pubp, sizeof(pubp), "%s/host.key.pub", smg_cli_state_dir(a->co.dir));
	if (a->co.key != NULL || (a->own_files && access(pubp, R_OK) == 0)) {
		if (load_key(a->co.key != NULL ? a->co.key : pubp, pin) != SMG_OK)
			return usage("--key: a .pub file or base64 Ed25519 key, not '%s'",
				     a->co.key != NULL ? a->co.key : pubp);
		o.pin = pin;
	}
	if (a->head != NULL) {
		o.head = a->head;
	} else if (a->own_files) {
		snprintf(head, sizeof(head), "%s/audit/%s", smg_cli_state_dir(a->co.dir),
			 SMG_AUDIT_HEAD_NAME);
		o.head = head;
	}
	if ((n = smg_audit_chain_load((const char *const *)a->files, a->nfiles, &o,
				      &ours)) < 0) {
		fprintf(stderr, "secmig: audit verify: %s\n", smg_strerror(n));
		return SMG_EXIT_FAIL;
	}
	if (a->npeer > 0) {
		struct smg_audit_verify_opts po = {.report = report};
		if (a->peer_key != NULL) {
			if (load_key(a->peer_key, ppin) != SMG_OK)
				return usage("--peer-key: bad key '%s'", a->peer_key);
			po.pin = ppin;
		}
		if ((np = smg_audit_chain_load(a->peer_logs, a->npeer, &po, &peer)) < 0) {
			smg_audit_chain_free(ours);
			return SMG_EXIT_FAIL;
		}
		np += smg_audit_cross_check(ours, peer, &o, &pairs);
	}
	printf("audit: %zu records in %zu file%s: %s\n", smg_audit_chain_records(ours),
	       a->nfiles, a->nfiles == 1 ? "" : "s",
	       n == 0 ? "chain intact, every signature and the evidence valid"
		      : "PROBLEMS FOUND");
	if (peer != NULL)
		printf(
		    "audit: peer log %zu records: %s; %zu migration%s verified on both "
		    "hosts\n",
		    smg_audit_chain_records(peer),
		    np == 0 ? "consistent" : "PROBLEMS FOUND", pairs,
		    pairs == 1 ? "" : "s");
	code = n + np == 0 ? SMG_EXIT_OK : SMG_EXIT_INTEGRITY;
	smg_audit_chain_free(ours);
	smg_audit_chain_free(peer);
	return code;
}

static int rotate(struct aargs *a)
{
	struct smg_cli_ident ci;
	struct smg_audit *au = NULL;
	char rotated[700];
	const char *dir = smg_cli_state_dir(a->co.dir);
	int r;

	if (smg_cli_ident_load(&ci, dir, NULL, NULL, a->co.name) != SMG_OK)
		return SMG_EXIT_CONFIG;
	if ((r = smg_cli_audit_open(&au, dir, NULL, &ci, NULL, NULL)) == SMG_OK)
		r = smg_audit_rotate(au, rotated, sizeof(rotated));
	smg_audit_close(au);
	smg_cli_ident_free(&ci);
	if (r != SMG_OK) {
		fprintf(stderr, "secmig: audit rotate: %s\n",
			r == SMG_ERR_NOT_FOUND ? "the log is empty" : smg_strerror(r));
		return r == SMG_ERR_INTEGRITY ? SMG_EXIT_INTEGRITY : SMG_EXIT_CONFIG;
	}
	printf("audit: rotated to %s; the new log links to its last record\n", rotated);
	return SMG_EXIT_OK;
}

static int counters(struct aargs *a)
{
	uint64_t v[SMG_CNT_MAX_];
	char dir[600];

	snprintf(dir, sizeof(dir), "%s/audit", smg_cli_state_dir(a->co.dir));
	if (smg_audit_counters_read(dir, v) != SMG_OK) {
		fprintf(stderr, "secmig: %s/counters is unreadable\n", dir);
		return SMG_EXIT_CONFIG;
	}
	for (unsigned i = 0; i < SMG_CNT_MAX_; i++) {
		if (a->co.json)
			printf("%s\"%s\":%llu", i ? "," : "{", smg_audit_counter_name(i),
			       (unsigned long long)v[i]);
		else
			printf("%-20s %llu\n", smg_audit_counter_name(i),
			       (unsigned long long)v[i]);
	}
	if (a->co.json)
		printf("}\n");
	return SMG_EXIT_OK;
}

int smg_cmd_audit(int argc, char **argv)
{
	struct aargs a;
	const char *sub = argc > 1 ? argv[1] : "";
	int r;

	memset(&a, 0, sizeof(a));
	if (!strcmp(sub, "--help") || !strcmp(sub, "-h")) {
		printf("%s", smg_cmd_find("audit")->usage);
		return SMG_EXIT_OK;
	}
	if (argc < 2)
		return usage("audit needs show, verify, rotate or counters%s", "");
	if ((r = smg_opts_parse(&spec, argc - 1, argv + 1, &a.co, &a)) >= 0)
		return r;
	if (!strcmp(sub, "rotate"))
		return rotate(&a);
	if (!strcmp(sub, "counters"))
		return counters(&a);
	if (strcmp(sub, "show") != 0 && strcmp(sub, "verify") != 0)
		return usage("unknown subcommand '%s'", sub);
	if ((r = log_files(&a, argc - 1, argv + 1)) != SMG_EXIT_OK)
		return r;
	r = !strcmp(sub, "show") ? show(&a) : verify(&a);
	free_files(&a);
	return r;
}
