/* `secmig send`: migrate a domain to a receiver, pinned to the enrolled
 * destination it names (DESIGN §7), cancellable before COMMIT (signals,
 * `secmig cancel`, a lost output), visible to `secmig status`. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit/audit.h"
#include "base/base.h"
#include "cli/cli.h"
#include "cli/host_tpm.h"
#include "cli/migrate.h"
#include "cli/net.h"

struct send_args {
	struct smg_send_opts so;
	struct smg_netid_host net;
	unsigned io_timeout, channels;
	const char *to, *peer, *dir, *key, *peers, *name, *policy, *tcti;
	const char *ticket, *operators;
	uint8_t tk[SMG_TICKET_MAX];
	bool json;
};

static int usage(const char *fmt, const char *arg)
{
	return smg_cli_usage_error(smg_cmd_find("send"), fmt, arg);
}

static int parse_rule(const char *s, enum smg_stop_rule *r)
{
	if (strcmp(s, "downtime") == 0)
		*r = SMG_RULE_DOWNTIME;
	else if (strcmp(s, "xen") == 0)
		*r = SMG_RULE_XEN;
	else if (strcmp(s, "stop-and-copy") == 0)
		*r = SMG_RULE_STOP_AND_COPY;
	else
		return -1;
	return 0;
}

enum {
	OPT_STORAGE_MODE = 1000,
	OPT_DISK_SOCKET,
	OPT_DISK_WORKLOAD,
	OPT_PEER,
	OPT_ON_NO_CONVERGE,
	OPT_POLICY = 1100,
	OPT_TCTI,
	OPT_TICKET = 1200,
	OPT_OPERATORS,
};

/* One option; returns -1 to go on, else the exit code. */
static int one_opt(struct send_args *a, int c, const char *arg)
{
	uint64_t v;

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
	case 'D':
		if (smg_parse_size(arg, &v) != 0 || v == 0 || v > 3600000)
			return usage("--max-downtime: milliseconds, 1..3600000, not '%s'",
				     arg);
		a->so.max_downtime_ms = (unsigned)v;
		break;
	case 'b':
		if (smg_parse_size(arg, &v) != 0 || v == 0)
			return usage("--bandwidth: bytes/s like 100M, not '%s'", arg);
		a->so.bandwidth = v;
		break;
	case 'c':
		if (smg_parse_size(arg, &v) != 0 || v == 0 || v > SMG_CHANNELS_MAX)
			return usage("--channels: 1..8, not '%s'", arg);
		a->channels = (unsigned)v;
		break;
	case 'A':
		a->so.auto_converge = false;
		break;
	case OPT_ON_NO_CONVERGE:
		if (strcmp(arg, "abort") == 0)
			a->so.on_no_converge = SMG_NOCONV_ABORT;
		else if (strcmp(arg, "extend") == 0)
			a->so.on_no_converge = SMG_NOCONV_EXTEND;
		else
			return usage("--on-no-converge: abort or extend, not '%s'", arg);
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
	case 'r':
		if (parse_rule(arg, &a->so.rule) != 0)
			return usage("--rule: downtime, xen or stop-and-copy, not '%s'",
				     arg);
		break;
	case 'R':
		if (smg_parse_size(arg, &v) != 0 || v == 0 || v > 1000)
			return usage("--max-rounds: 1..1000, not '%s'", arg);
		a->so.max_rounds = (unsigned)v;
		break;
	case SMG_CLI_OPT_NET_BRIDGE:
	case SMG_CLI_OPT_NET_NS_PREFIX:
		if (smg_cli_net_opt(c, arg, &a->net) != 0)
			return usage("--net-bridge / --net-ns-prefix: bad name '%s'",
				     arg);
		a->so.net = &a->net;
		break;
	case SMG_CLI_OPT_IO_TIMEOUT:
		if (smg_cli_io_timeout(arg, &a->io_timeout) != 0)
			return usage("--io-timeout: 100..3600000 ms, not '%s'", arg);
		break;
	case OPT_STORAGE_MODE:
		if (strcmp(arg, "waio") == 0)
			a->so.storage_mode = SMG_STG_MODE_WAIO;
		else if (strcmp(arg, "dbt") == 0)
			a->so.storage_mode = SMG_STG_MODE_DBT;
		else
			return usage("--storage-mode: waio or dbt, not '%s'", arg);
		break;
	case OPT_DISK_SOCKET:
		a->so.disk_socket = arg;
		break;
	case OPT_DISK_WORKLOAD:
		a->so.disk_workload = arg;
		break;
	case 'C':
		a->so.check_memory = true;
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
	case 'h':
		printf("%s", smg_cmd_find("send")->usage);
		return SMG_EXIT_OK;
	default:
		return usage("bad option%s", "");
	}
	return -1;
}

static int parse_args(int argc, char **argv, struct send_args *a)
{
	static const struct option opts[] = {
	    {"to", required_argument, NULL, 't'},
	    {"peer", required_argument, NULL, OPT_PEER},
	    {"domain", required_argument, NULL, 'd'},
	    {"max-downtime", required_argument, NULL, 'D'},
	    {"on-no-converge", required_argument, NULL, OPT_ON_NO_CONVERGE},
	    {"bandwidth", required_argument, NULL, 'b'},
	    {"channels", required_argument, NULL, 'c'},
	    {"no-auto-converge", no_argument, NULL, 'A'},
	    {"json", no_argument, NULL, 'j'},
	    {"state-dir", required_argument, NULL, 's'},
	    {"backend", required_argument, NULL, 'B'},
	    {"key", required_argument, NULL, 'k'},
	    {"peers", required_argument, NULL, 'p'},
	    {"name", required_argument, NULL, 'n'},
	    {"rule", required_argument, NULL, 'r'},
	    {"max-rounds", required_argument, NULL, 'R'},
	    {"storage-mode", required_argument, NULL, OPT_STORAGE_MODE},
	    {"disk-socket", required_argument, NULL, OPT_DISK_SOCKET},
	    {"disk-workload", required_argument, NULL, OPT_DISK_WORKLOAD},
	    {"check-memory", no_argument, NULL, 'C'},
	    {"policy", required_argument, NULL, OPT_POLICY},
	    {"tcti", required_argument, NULL, OPT_TCTI},
	    {"ticket", required_argument, NULL, OPT_TICKET},
	    {"operators", required_argument, NULL, OPT_OPERATORS},
	    {"help", no_argument, NULL, 'h'},
	    SMG_CLI_NET_OPTIONS,
	    {NULL, 0, NULL, 0},
	};
	int c, r;

	memset(a, 0, sizeof(*a));
	a->so.backend = "sim";
	a->so.auto_converge = true;
	a->channels = 2;
	optind = 1;
	while ((c = getopt_long(argc, argv, "t:d:D:b:c:Ajs:B:k:p:n:r:R:Ch", opts,
				NULL)) != -1)
		if ((r = one_opt(a, c, optarg)) >= 0)
			return r;
	if (optind < argc)
		return usage("unexpected argument '%s'", argv[optind]);
	if (a->to == NULL || a->so.domain == NULL)
		return usage(
		    "send needs --to NAME[:PORT] (or --to HOST[:PORT] --peer NAME) "
		    "and --domain NAME%s",
		    "");
	if (!smg_domain_name_valid(a->so.domain))
		return usage("--domain: 1..63 of [A-Za-z0-9._-], not '%s'", a->so.domain);
	char host[SMG_CLI_HOST_MAX];
	uint16_t port;
	if (smg_cli_parse_addr(a->to, host, sizeof(host), &port) != SMG_OK)
		return usage("--to: NAME[:PORT] or HOST[:PORT], not '%s'", a->to);
	return -1;
}

static void output_lost(void *arg)
{
	if (smg_live_cancel(arg, "output closed") == SMG_OK)
		smg_warn("output closed: cancelling the migration");
}

/* A migration that ends before it could run: its result, its exit code. */
static int early(struct smg_cli_out *out, struct smg_mig_stats *st, int err,
		 const char *detail)
{
	int code = smg_exit_from_err(err);

	st->err = err;
	if (detail != NULL && st->detail[0] == '\0') {
		/* a long detail is cut: the log line above carries it whole */
		size_t n = strnlen(detail, sizeof(st->detail) - 1);

		memcpy(st->detail, detail, n);
		st->detail[n] = '\0';
	}
	smg_cli_result(out, st, code);
	return code;
}

struct send_run {
	struct send_args a;
	struct smg_cli_ident ci;
	struct smg_cli_tpm tpm;
	struct smg_cli_dest dest;
	struct smg_cli_out out;
	struct smg_mig_stats st;
	struct smg_live *live;
	struct smg_cli_signals *sig;
	struct smg_ctl_server *ctl;
	struct smg_send *m;
};

static int migrate(struct send_run *x)
{
	struct smg_session *s = NULL;
	int r;

	/* Local checks first: a missing domain or backend never opens a
	 * session with anybody. */
	if ((r = smg_engine_send_prepare(&x->a.so, &x->st, &x->m)) != SMG_OK)
		return early(&x->out, &x->st, r, NULL);
	smg_log_ctx_set(x->st.migration_id, x->dest.peer, x->st.domain);
	smg_metrics_active(SMG_MR_SEND, true);
	uint64_t t0 = smg_now_ns();
	r = smg_session_connect(x->dest.host, x->dest.port, &x->ci.so, &s);
	x->out.handshake_ms = (double)(smg_now_ns() - t0) / 1e6;
	if (r != SMG_OK) {
		char d[SMG_ENGINE_DETAIL_MAX + 512];
		if (smg_exit_from_err(r) == SMG_EXIT_AUTH)
			/* Either end may be the one that does not know the
			 * other: the log above says which check failed. */
			snprintf(
			    d, sizeof(d),
			    "authentication with '%s' at %s failed (%s): the host there "
			    "must prove the key enrolled here as '%s' and know this host "
			    "as '%s'; the VM was not touched",
			    x->dest.peer, x->dest.addr, smg_strerror(r), x->dest.peer,
			    x->ci.name);
		else
			snprintf(d, sizeof(d),
				 "%s '%s' at %s: %s; the VM was not touched",
				 r == SMG_ERR_ATTEST || r == SMG_ERR_TPM
				     ? "attestation failed with"
				     : "cannot reach the destination",
				 x->dest.peer, x->dest.addr, smg_strerror(r));
		smg_err("%s", d);
		smg_engine_send_fail(x->m, r);
		snprintf(x->st.peer, sizeof(x->st.peer), "%s", x->dest.peer);
		x->st.peer_failed = smg_exit_from_err(r) != SMG_EXIT_ATTEST;
		smg_metrics_active(SMG_MR_SEND, false);
		smg_metrics_finished(SMG_MR_SEND, &x->st);
		return early(&x->out, &x->st, r, d);
	}
	r = smg_engine_send_run(x->m, s);
	if (r == SMG_OK)
		smg_session_close(s);
	else
		smg_session_free(s);
	smg_metrics_active(SMG_MR_SEND, false);
	smg_metrics_finished(SMG_MR_SEND, &x->st);
	int code = smg_exit_from_err(r);
	smg_cli_result(&x->out, &x->st, code);
	return code;
}

static int setup(struct send_run *x)
{
	int r;

	smg_cli_out_init(&x->out, stdout, x->a.json, "send");
	if ((r = smg_cli_ident_load(&x->ci, x->a.dir, x->a.key, x->a.peers, x->a.name)) !=
	    SMG_OK)
		return early(&x->out, &x->st, SMG_ERR_CONFIG,
			     "bad identity or peers file");
	if ((r = smg_cli_dest_resolve(x->ci.peers, x->a.to, x->a.peer, &x->dest)) !=
	    SMG_OK)
		return r == SMG_ERR_INVAL ? SMG_EXIT_USAGE
					  : early(&x->out, &x->st, SMG_ERR_CONFIG,
						  "the destination is not enrolled");
	x->ci.so.channels = x->a.channels;
	x->ci.so.io_timeout_ms = x->a.io_timeout;
	x->ci.so.handshake_timeout_ms = x->a.io_timeout;
	x->ci.so.expect_peer = x->dest.peer;
	if ((r = smg_cli_tpm_load(&x->tpm, x->a.policy, x->a.tcti, &x->ci.so)) != SMG_OK)
		return early(&x->out, &x->st, r, "TPM mode could not start");
	if ((x->a.ticket != NULL &&
	     (r = smg_cli_ticket_read(x->a.ticket, x->a.tk, sizeof(x->a.tk),
				      &x->a.so.ticket_len)) != SMG_OK) ||
	    (r = smg_cli_audit_open(&x->a.so.audit, x->a.dir, x->a.operators, &x->ci,
				    &x->tpm, x->a.policy)) != SMG_OK)
		return early(
		    &x->out, &x->st, SMG_ERR_CONFIG,
		    "bad ticket or operators file, or the audit log cannot open");
	x->a.so.ticket = x->a.tk;
	if ((r = smg_live_new("send", &x->live)) != SMG_OK ||
	    (r = smg_cli_signals_start(x->live, &x->sig)) != SMG_OK)
		return early(&x->out, &x->st, r, NULL);
	if (smg_ctl_server_start(x->a.dir, &x->ctl) != SMG_OK)
		smg_warn("no control socket: secmig status/cancel/tune will not see "
			 "this migration (signals still cancel it)");
	smg_ctl_server_add(x->ctl, x->live);
	x->out.lost = output_lost;
	x->out.lost_arg = x->live;
	x->a.so.bopts.state_dir = x->a.dir;
	x->a.so.peer = x->dest.addr;
	x->a.so.policy = x->tpm.policy;
	x->out.auth = x->tpm.tpm_mode ? "tpm" : "software";
	x->a.so.event = smg_cli_event;
	x->a.so.event_arg = &x->out;
	x->a.so.live = x->live;
	return -1;
}

int smg_cmd_send(int argc, char **argv)
{
	struct send_run *x = calloc(1, sizeof(*x));
	int code;

	if (x == NULL)
		return SMG_EXIT_FAIL;
	if ((code = parse_args(argc, argv, &x->a)) >= 0) {
		free(x);
		return code;
	}
	x->a.dir = smg_cli_state_dir(x->a.dir);
	if ((code = setup(x)) < 0)
		code = migrate(x);
	smg_engine_send_free(x->m);
	smg_ctl_server_remove(x->ctl, x->live);
	smg_ctl_server_stop(x->ctl);
	smg_cli_signals_stop(x->sig);
	smg_live_free(x->live);
	smg_audit_close(x->a.so.audit);
	smg_cli_tpm_free(&x->tpm);
	smg_cli_ident_free(&x->ci);
	free(x);
	return code;
}
