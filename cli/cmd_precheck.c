/* `secmig precheck`: would `secmig send` with the same options succeed?
 * Runs what send runs up to the plan (this host's backend and domain, the
 * authenticated handshake with attestation, this host's policy and ticket)
 * and has the destination check the plan without acting on it
 * (engine/precheck.c). The VM is looked at, never paused or copied; no
 * ticket is used up and nothing is reserved there. */
#include <getopt.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit/audit.h"
#include "base/base.h"
#include "cli/cli.h"
#include "cli/host_tpm.h"
#include "cli/migrate.h"
#include "cli/net.h"

struct pre_args {
	struct smg_send_opts so;
	unsigned io_timeout;
	const char *to, *peer, *dir, *key, *peers, *name, *policy, *tcti;
	const char *ticket, *operators;
	uint8_t tk[SMG_TICKET_MAX];
	bool json;
};

struct pre_run {
	struct pre_args a;
	struct smg_cli_ident ci;
	struct smg_cli_tpm tpm;
	struct smg_cli_dest dest;
	struct smg_mig_stats st;
	struct smg_send *m;
	struct smg_precheck pc;
};

enum {
	OPT_PEER = 1000,
	OPT_POLICY,
	OPT_TCTI,
	OPT_TICKET,
	OPT_OPERATORS,
	OPT_DISK_SOCKET
};

static int usage(const char *fmt, const char *arg)
{
	return smg_cli_usage_error(smg_cmd_find("precheck"), fmt, arg);
}

static int one_opt(struct pre_args *a, int c, const char *arg)
{
	switch (c) {
	case 't':
		a->to = arg;
		break;
	case OPT_PEER:
		a->peer = arg;
		break;
	case 'd':
		a->so.domain = arg;
		break;
	case 'j':
		a->json = true;
		break;
	case 's':
		a->dir = arg;
		break;
	case 'B':
		a->so.backend = arg;
		break;
	case 'k':
		a->key = arg;
		break;
	case 'p':
		a->peers = arg;
		break;
	case 'n':
		a->name = arg;
		break;
	case OPT_POLICY:
		a->policy = arg;
		break;
	case OPT_TCTI:
		a->tcti = arg;
		break;
	case OPT_TICKET:
		a->ticket = arg;
		break;
	case OPT_OPERATORS:
		a->operators = arg;
		break;
	case OPT_DISK_SOCKET:
		a->so.disk_socket = arg;
		break;
	case SMG_CLI_OPT_IO_TIMEOUT:
		if (smg_cli_io_timeout(arg, &a->io_timeout) != 0)
			return usage("--io-timeout: 100..3600000 ms, not '%s'", arg);
		break;
	case 'h':
		printf("%s", smg_cmd_find("precheck")->usage);
		return SMG_EXIT_OK;
	default:
		return usage("bad option%s", "");
	}
	return -1;
}

static int parse_args(int argc, char **argv, struct pre_args *a)
{
	static const struct option opts[] = {
	    {"to", required_argument, NULL, 't'},
	    {"peer", required_argument, NULL, OPT_PEER},
	    {"domain", required_argument, NULL, 'd'},
	    {"json", no_argument, NULL, 'j'},
	    {"state-dir", required_argument, NULL, 's'},
	    {"backend", required_argument, NULL, 'B'},
	    {"key", required_argument, NULL, 'k'},
	    {"peers", required_argument, NULL, 'p'},
	    {"name", required_argument, NULL, 'n'},
	    {"policy", required_argument, NULL, OPT_POLICY},
	    {"tcti", required_argument, NULL, OPT_TCTI},
	    {"ticket", required_argument, NULL, OPT_TICKET},
	    {"operators", required_argument, NULL, OPT_OPERATORS},
	    {"disk-socket", required_argument, NULL, OPT_DISK_SOCKET},
	    {"io-timeout", required_argument, NULL, SMG_CLI_OPT_IO_TIMEOUT},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	char host[SMG_CLI_HOST_MAX];
	uint16_t port;
	int c, r;

	memset(a, 0, sizeof(*a));
	a->so.backend = "sim";
	optind = 1;
	while ((c = getopt_long(argc, argv, "t:d:js:B:k:p:n:h", opts, NULL)) != -1)
		if ((r = one_opt(a, c, optarg)) >= 0)
			return r;
	if (optind < argc)
		return usage("unexpected argument '%s'", argv[optind]);
	if (a->to == NULL || a->so.domain == NULL)
		return usage(
		    "precheck needs --to NAME[:PORT] (or --to HOST[:PORT] --peer "
		    "NAME) and --domain NAME%s",
		    "");
	if (!smg_domain_name_valid(a->so.domain))
		return usage("--domain: 1..63 of [A-Za-z0-9._-], not '%s'", a->so.domain);
	if (smg_cli_parse_addr(a->to, host, sizeof(host), &port) != SMG_OK)
		return usage("--to: NAME[:PORT] or HOST[:PORT], not '%s'", a->to);
	return -1;
}

static void add(struct smg_precheck *pc, const char *name, int err, const char *detail)
{
	struct smg_precheck_item *it;

	if (pc->n >= SMG_PRECHECK_ITEMS_MAX)
		return;
	it = &pc->v[pc->n++];
	memset(it, 0, sizeof(*it));
	snprintf(it->name, sizeof(it->name), "%s", name);
	it->ok = err == SMG_OK;
	it->err = err;
	snprintf(it->detail, sizeof(it->detail), "%s", detail != NULL ? detail : "");
}

/* The verdicts, one line each (or one JSON object), and the exit code:
 * the first failing check's, as `secmig send` would exit. */
static int report(struct pre_run *x, int err)
{
	int code = smg_exit_from_err(err);
	const struct smg_precheck *pc = &x->pc;
	const char *first = NULL;

	for (unsigned i = 0; i < pc->n && first == NULL; i++)
		if (!pc->v[i].ok)
			first = pc->v[i].name;
	if (x->a.json) {
		json_object *j = json_object_new_object(), *arr = json_object_new_array();
		json_object_object_add(j, "event", json_object_new_string("precheck"));
		json_object_object_add(j, "domain",
				       json_object_new_string(x->a.so.domain));
		json_object_object_add(j, "peer", json_object_new_string(x->dest.peer));
		json_object_object_add(j, "ok", json_object_new_boolean(code == 0));
		json_object_object_add(j, "exit", json_object_new_int(code));
		json_object_object_add(j, "exit_name",
				       json_object_new_string(smg_exit_name(code)));
		for (unsigned i = 0; i < pc->n; i++) {
			json_object *c = json_object_new_object();
			json_object_object_add(c, "check",
					       json_object_new_string(pc->v[i].name));
			json_object_object_add(c, "where",
					       json_object_new_string(pc->v[i].remote
									  ? "destination"
									  : "source"));
			json_object_object_add(c, "ok",
					       json_object_new_boolean(pc->v[i].ok));
			if (!pc->v[i].ok)
				json_object_object_add(
				    c, "detail", json_object_new_string(pc->v[i].detail));
			json_object_array_add(arr, c);
		}
		json_object_object_add(j, "checks", arr);
		printf("%s\n", json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN));
		json_object_put(j);
	} else {
		printf("precheck %s -> %s (%s)\n", x->a.so.domain, x->dest.peer,
		       x->dest.addr[0] ? x->dest.addr : x->a.to);
		for (unsigned i = 0; i < pc->n; i++)
			printf("  %-4s  %-11s  %-11s  %s\n", pc->v[i].ok ? "ok" : "FAIL",
			       pc->v[i].name, pc->v[i].remote ? "destination" : "source",
			       pc->v[i].detail);
		if (code == 0)
			printf("would succeed: every check passed; the VM was not "
			       "touched\n");
		else
			printf("would fail (%s): exit %d (%s); the VM was not touched\n",
			       first != NULL ? first : smg_strerror(err), code,
			       smg_exit_name(code));
	}
	fflush(stdout);
	return code;
}

/* This host's side up to the session: identity, destination, TPM, ticket,
 * operators, then the backend and the domain (looked at, not touched). */
static int setup(struct pre_run *x)
{
	int r;

	if (smg_cli_ident_load(&x->ci, x->a.dir, x->a.key, x->a.peers, x->a.name) !=
	    SMG_OK) {
		add(&x->pc, "config", SMG_ERR_CONFIG, "bad identity or peers file");
		return SMG_ERR_CONFIG;
	}
	if ((r = smg_cli_dest_resolve(x->ci.peers, x->a.to, x->a.peer, &x->dest)) !=
	    SMG_OK) {
		if (r == SMG_ERR_INVAL)
			return r;
		add(&x->pc, "config", SMG_ERR_CONFIG, "the destination is not enrolled");
		return SMG_ERR_CONFIG;
	}
	x->ci.so.channels = 1; /* the control channel is all a pre-check uses */
	x->ci.so.io_timeout_ms = x->a.io_timeout;
	x->ci.so.handshake_timeout_ms = x->a.io_timeout;
	x->ci.so.expect_peer = x->dest.peer;
	if ((r = smg_cli_tpm_load(&x->tpm, x->a.policy, x->a.tcti, &x->ci.so)) !=
	    SMG_OK) {
		add(&x->pc, "config", r, "TPM mode could not start");
		return r;
	}
	if ((x->a.ticket != NULL &&
	     smg_cli_ticket_read(x->a.ticket, x->a.tk, sizeof(x->a.tk),
				 &x->a.so.ticket_len) != SMG_OK) ||
	    smg_cli_audit_open(&x->a.so.audit, x->a.dir, x->a.operators, &x->ci, &x->tpm,
			       x->a.policy) != SMG_OK) {
		add(&x->pc, "config", SMG_ERR_CONFIG,
		    "bad ticket or operators file, or the audit log cannot open");
		return SMG_ERR_CONFIG;
	}
	x->a.so.ticket = x->a.tk;
	x->a.so.bopts.state_dir = x->a.dir;
	x->a.so.peer = x->dest.addr;
	x->a.so.policy = x->tpm.policy;
	if ((r = smg_engine_send_prepare(&x->a.so, &x->st, &x->m)) != SMG_OK) {
		add(&x->pc, "domain", r, x->st.detail);
		return r;
	}
	add(&x->pc, "domain", SMG_OK, "");
	return SMG_OK;
}

static int precheck(struct pre_run *x)
{
	struct smg_session *s = NULL;
	char d[SMG_ENGINE_DETAIL_MAX + SMG_CLI_HOST_MAX + 128];
	int r;

	r = smg_session_connect(x->dest.host, x->dest.port, &x->ci.so, &s);
	if (r != SMG_OK) {
		snprintf(d, sizeof(d), "%s at %s: %s", x->dest.peer, x->dest.addr,
			 smg_strerror(r));
		add(&x->pc,
		    smg_exit_from_err(r) == SMG_EXIT_AUTH     ? "auth"
		    : r == SMG_ERR_ATTEST || r == SMG_ERR_TPM ? "attestation"
							      : "connect",
		    r, d);
		return r;
	}
	add(&x->pc, "auth", SMG_OK, "");
	if (x->tpm.tpm_mode)
		add(&x->pc, "attestation", SMG_OK, "");
	r = smg_engine_send_precheck(x->m, s, &x->pc);
	bool answered = false;
	for (unsigned i = 0; i < x->pc.n; i++)
		answered |= x->pc.v[i].remote;
	if (answered)
		smg_session_close(s);
	else
		smg_session_free(s);
	return r;
}

int smg_cmd_precheck(int argc, char **argv)
{
	struct pre_run *x = calloc(1, sizeof(*x));
	int code, r;

	if (x == NULL)
		return SMG_EXIT_FAIL;
	if ((code = parse_args(argc, argv, &x->a)) >= 0) {
		free(x);
		return code;
	}
	x->a.dir = smg_cli_state_dir(x->a.dir);
	if ((r = setup(x)) == SMG_ERR_INVAL)
		code = SMG_EXIT_USAGE;
	else
		code = report(x, r == SMG_OK ? precheck(x) : r);
	smg_engine_send_free(x->m);
	smg_audit_close(x->a.so.audit);
	smg_cli_tpm_free(&x->tpm);
	smg_cli_ident_free(&x->ci);
	free(x);
	return code;
}
