/* `secmig recv`: the destination service. Long-running by default (several
 * migrations in a row, at most --max-concurrent at once); --once serves one
 * session in the foreground and exits with its code. */
#include <errno.h>
#include <getopt.h>
#include <json-c/json.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit/audit.h"
#include "base/base.h"
#include "cli/cli.h"
#include "cli/host_tpm.h"
#include "cli/migrate.h"
#include "cli/net.h"
#include "proto/proto.h"
#include "secmig.pb-c.h"

#define RECV_CONCURRENT_DEFAULT 4
#define RECV_CONCURRENT_MAX	64

#define SMG_CLI_PROGRESS_TIMEOUT_MAX 3600000u	/* 1 h */
#define SMG_CLI_SESSION_TIMEOUT_MAX  604800000u /* 7 days */

/* A limit in ms, 100..max. */
static int parse_ms(const char *arg, unsigned max, unsigned *out)
{
	unsigned long long v;
	char *end;

	if (arg[0] < '0' || arg[0] > '9')
		return -1;
	errno = 0;
	v = strtoull(arg, &end, 10);
	if (errno != 0 || *end != '\0' || v < 100 || v > max)
		return -1;
	*out = (unsigned)v;
	return 0;
}

static int usage(const char *fmt, const char *arg)
{
	return smg_cli_usage_error(smg_cmd_find("recv"), fmt, arg);
}

struct recv_ctx {
	struct smg_recv_opts ro;
	struct smg_cli_out out;
	struct smg_ctl_server *ctl; /* secmig status / cancel see our sessions */
	pthread_mutex_t lock;
	unsigned active, max;
};

struct serve_arg {
	struct recv_ctx *ctx;
	struct smg_session *s;
};

static int serve_one(struct recv_ctx *ctx, struct smg_session *s)
{
	struct smg_mig_stats st;
	struct smg_recv_opts ro = ctx->ro;
	struct smg_live *live = NULL;
	int r, code;

	ro.event_arg = &ctx->out;
	ro.announce_arg = &ctx->out;
	if (smg_live_new("recv", &live) == SMG_OK &&
	    smg_ctl_server_add(ctx->ctl, live) == SMG_OK)
		ro.live = live;
	r = smg_engine_serve(s, &ro, &st);
	smg_ctl_server_remove(ctx->ctl, live);
	if (r == SMG_OK)
		smg_session_close(s);
	else
		smg_session_free(s);
	smg_live_free(live);
	code = smg_exit_from_err(r);
	if (st.migration_id[0] != '\0' || st.detail[0] != '\0') {
		pthread_mutex_lock(&ctx->lock);
		smg_cli_result(&ctx->out, &st, code);
		pthread_mutex_unlock(&ctx->lock);
	}
	return code;
}

static void *serve_thread(void *arg)
{
	struct serve_arg *a = arg;

	serve_one(a->ctx, a->s);
	pthread_mutex_lock(&a->ctx->lock);
	a->ctx->active--;
	pthread_mutex_unlock(&a->ctx->lock);
	free(a);
	return NULL;
}

static void refuse_busy(struct smg_session *s)
{
	Smg__Abort a = SMG__ABORT__INIT;

	a.reason = SMG__ABORT_REASON__ABORT_RESOURCES;
	a.detail = "receiver busy: too many concurrent migrations";
	a.error = SMG_ERR_BUSY;
	smg_chan_send_msg(s, 0, SMG_FT_ABORT, &a.base);
	smg_chan_flush(s, 0);
	smg_session_free(s);
}

static int serve_loop(struct recv_ctx *ctx, struct smg_listener *l,
		      const struct smg_session_opts *so, bool once)
{
	for (;;) {
		struct smg_session *s;
		struct serve_arg *a;
		pthread_t t;
		int r;

		if ((r = smg_listener_accept(l, so, &s)) != SMG_OK) {
			if (once)
				return smg_exit_from_err(r);
			smg_warn("accept: %s", smg_strerror(r));
			continue;
		}
		if (once)
			return serve_one(ctx, s);
		pthread_mutex_lock(&ctx->lock);
		bool busy = ctx->active >= ctx->max;
		if (!busy)
			ctx->active++;
		pthread_mutex_unlock(&ctx->lock);
		if (busy) {
			smg_warn("refusing a migration: %u already running", ctx->max);
			refuse_busy(s);
			continue;
		}
		if ((a = malloc(sizeof(*a))) != NULL)
			*a = (struct serve_arg){ctx, s};
		if (a == NULL || pthread_create(&t, NULL, serve_thread, a) != 0) {
			free(a);
			smg_session_free(s);
			pthread_mutex_lock(&ctx->lock);
			ctx->active--;
			pthread_mutex_unlock(&ctx->lock);
			continue;
		}
		pthread_detach(t);
	}
}

int smg_cmd_recv(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"listen", required_argument, NULL, 'l'},
	    {"once", no_argument, NULL, 'o'},
	    {"max-concurrent", required_argument, NULL, 'm'},
	    {"channels", required_argument, NULL, 'c'},
	    {"json", no_argument, NULL, 'j'},
	    {"state-dir", required_argument, NULL, 's'},
	    {"backend", required_argument, NULL, 'B'},
	    {"key", required_argument, NULL, 'k'},
	    {"peers", required_argument, NULL, 'p'},
	    {"name", required_argument, NULL, 'n'},
	    {"check-memory", no_argument, NULL, 'C'},
	    {"disk-socket", required_argument, NULL, 1000},
	    {"policy", required_argument, NULL, 1100},
	    {"tcti", required_argument, NULL, 1101},
	    {"operators", required_argument, NULL, 1201},
	    {"progress-timeout", required_argument, NULL, 1102},
	    {"session-timeout", required_argument, NULL, 1103},
	    {"defs", required_argument, NULL, 1104},
	    {"insecure-software-mode", no_argument, NULL, 1105},
	    {"help", no_argument, NULL, 'h'},
	    SMG_CLI_NET_OPTIONS,
	    {NULL, 0, NULL, 0},
	};
	struct recv_ctx ctx = {.lock = PTHREAD_MUTEX_INITIALIZER,
			       .max = RECV_CONCURRENT_DEFAULT};
	const char *listen = NULL, *dir = NULL, *key = NULL, *peers = NULL, *name = NULL;
	const char *policy = NULL, *tcti = NULL, *defs = NULL, *operators = NULL;
	unsigned channels = SMG_CHANNELS_MAX;
	bool once = false, json = false, insecure = false;
	struct smg_netid_host net;
	unsigned io_timeout = 0, progress_timeout = 0, session_timeout = 0;
	char host[SMG_CLI_HOST_MAX];
	uint16_t port;
	uint64_t v;
	int c;

	ctx.ro.backend = "sim";
	memset(&net, 0, sizeof(net));
	optind = 1;
	while ((c = getopt_long(argc, argv, "l:om:c:js:B:k:p:n:Ch", opts, NULL)) != -1) {
		switch (c) {
		case 'l':
			listen = optarg;
			break;
		case 'o':
			once = true;
			break;
		case 'm':
			if (smg_parse_size(optarg, &v) != 0 || v == 0 ||
			    v > RECV_CONCURRENT_MAX)
				return usage("--max-concurrent: 1..64, not '%s'", optarg);
			ctx.max = (unsigned)v;
			break;
		case 'c':
			if (smg_parse_size(optarg, &v) != 0 || v == 0 ||
			    v > SMG_CHANNELS_MAX)
				return usage("--channels: 1..8, not '%s'", optarg);
			channels = (unsigned)v;
			break;
		case 'j':
			json = true;
			break;
		case 's':
			dir = optarg;
			break;
		case 'B':
			ctx.ro.backend = optarg;
			break;
		case 'k':
			key = optarg;
			break;
		case 'p':
			peers = optarg;
			break;
		case 'n':
			name = optarg;
			break;
		case 1000:
			ctx.ro.disk_socket = optarg;
			break;
		case 1100:
			policy = optarg;
			break;
		case 1101:
			tcti = optarg;
			break;
		case 1201:
			operators = optarg;
			break;
		case 1104:
			defs = optarg;
			break;
		case 1105:
			insecure = true;
			break;
		case 'C':
			ctx.ro.check_memory = true;
			break;
		case SMG_CLI_OPT_NET_BRIDGE:
		case SMG_CLI_OPT_NET_NS_PREFIX:
			if (smg_cli_net_opt(c, optarg, &net) != 0)
				return usage(
				    "--net-bridge / --net-ns-prefix: bad name '%s'",
				    optarg);
			ctx.ro.net = &net;
			break;
		case SMG_CLI_OPT_IO_TIMEOUT:
			if (smg_cli_io_timeout(optarg, &io_timeout) != 0)
				return usage("--io-timeout: 100..3600000 ms, not '%s'",
					     optarg);
			break;
		case 1102:
			if (parse_ms(optarg, SMG_CLI_PROGRESS_TIMEOUT_MAX,
				     &progress_timeout) != 0)
				return usage(
				    "--progress-timeout: 100..3600000 ms, not '%s'",
				    optarg);
			break;
		case 1103:
			if (parse_ms(optarg, SMG_CLI_SESSION_TIMEOUT_MAX,
				     &session_timeout) != 0)
				return usage(
				    "--session-timeout: 100..604800000 ms, not '%s'",
				    optarg);
			break;
		case 'h':
			printf("%s", smg_cmd_find("recv")->usage);
			return SMG_EXIT_OK;
		default:
			return usage("bad option%s", "");
		}
	}
	if (optind < argc)
		return usage("unexpected argument '%s'", argv[optind]);
	if (listen == NULL)
		return usage("recv needs --listen ADDR[:PORT]%s", "");
	bool known = false;
	for (const char *const *b = smg_engine_backend_names(); *b != NULL; b++)
		known |= strcmp(*b, ctx.ro.backend) == 0;
	if (!known) {
		fprintf(stderr, "secmig: backend '%s' is not built in (secmig version)\n",
			ctx.ro.backend);
		return SMG_EXIT_BACKEND;
	}
	if (smg_cli_parse_addr(listen, host, sizeof(host), &port) != SMG_OK)
		return usage("--listen: ADDR[:PORT], not '%s'", listen);
	dir = smg_cli_state_dir(dir);
	ctx.ro.state_dir = dir;
	ctx.ro.bopts.state_dir = dir;
	ctx.ro.event = smg_cli_event;
	ctx.ro.announce_event = smg_cli_announce_event;
	smg_cli_out_init(&ctx.out, stdout, json, "recv");
	ctx.out.tty = false; /* a service: no progress line */

	struct smg_cli_ident ci;
	struct smg_cli_tpm tpm;
	struct smg_listener *l;
	struct smg_hostdef *hd = NULL;
	struct smg_capacity *cap = NULL;
	char err[512];
	int r, code;

	/* Secure by default: no policy means no ACL, no placement and no
	 * attestation; only an explicit opt-in runs like that. */
	if (policy == NULL && !insecure) {
		fprintf(
		    stderr,
		    "secmig recv: no --policy FILE: refusing to accept migrations "
		    "without an access policy (a lab without TPMs: 'mode software' in "
		    "the policy, or --insecure-software-mode)\n");
		return SMG_EXIT_CONFIG;
	}
	if (insecure && policy == NULL)
		smg_warn("--insecure-software-mode: any enrolled peer may send any VM "
			 "that matches the host definitions; no TPM binding, no "
			 "attestation, no ACL");
	signal(SIGPIPE, SIG_IGN);
	if (smg_cli_ident_load(&ci, dir, key, peers, name) != SMG_OK)
		return SMG_EXIT_CONFIG;
	ci.so.channels = channels;
	ci.so.io_timeout_ms = io_timeout;
	ci.so.handshake_timeout_ms = io_timeout;
	ci.so.progress_timeout_ms = progress_timeout;
	ci.so.session_timeout_ms = session_timeout;
	if ((r = smg_cli_tpm_load(&tpm, policy, tcti, &ci.so)) != SMG_OK) {
		smg_cli_ident_free(&ci);
		return smg_exit_from_err(r);
	}
	ctx.ro.policy = tpm.policy;
	ctx.out.auth = tpm.tpm_mode ? "tpm" : "software";
	if (defs == NULL && tpm.policy != NULL && tpm.policy->defs[0] != '\0')
		defs = tpm.policy->defs;
	if (defs == NULL)
		snprintf(err, sizeof(err),
			 "no host definitions: --defs FILE or 'defs FILE' in the policy "
			 "(docs/hostdef.md)");
	if (defs == NULL || smg_hostdef_load(defs, &hd, err, sizeof(err)) != SMG_OK ||
	    smg_capacity_new(hd, &cap) != SMG_OK) {
		fprintf(stderr, "secmig recv: %s\n", err);
		smg_capacity_free(cap);
		smg_hostdef_free(hd);
		smg_cli_tpm_free(&tpm);
		smg_cli_ident_free(&ci);
		return SMG_EXIT_CONFIG;
	}
	ctx.ro.defs = hd;
	ctx.ro.capacity = cap;
	if ((r = smg_cli_audit_open(&ctx.ro.audit, dir, operators, &ci, &tpm, policy)) !=
	    SMG_OK) {
		smg_capacity_free(cap);
		smg_hostdef_free(hd);
		smg_cli_tpm_free(&tpm);
		smg_cli_ident_free(&ci);
		return SMG_EXIT_CONFIG;
	}
	ci.so.on_refused = smg_audit_on_refused; /* suspicious activity */
	ci.so.refused_arg = ctx.ro.audit;
	if ((r = smg_listener_open(host, port, &l)) != SMG_OK) {
		fprintf(stderr, "secmig: cannot listen on %s: %s\n", listen,
			smg_strerror(r));
		smg_audit_close(ctx.ro.audit);
		smg_capacity_free(cap);
		smg_hostdef_free(hd);
		smg_cli_tpm_free(&tpm);
		smg_cli_ident_free(&ci);
		return SMG_EXIT_NETWORK;
	}
	if (smg_ctl_server_start(dir, &ctx.ctl) != SMG_OK)
		smg_warn("no control socket: secmig status/cancel will not see this "
			 "receiver's migrations");
	/* The name sources must enrol us under (their peers file): a mismatch
	 * fails their handshake, so say it where the operator looks. */
	if (json) {
		json_object *j = json_object_new_object();
		json_object_object_add(j, "event", json_object_new_string("listening"));
		json_object_object_add(j, "host", json_object_new_string(host));
		json_object_object_add(j, "port",
				       json_object_new_int(smg_listener_port(l)));
		json_object_object_add(j, "name", json_object_new_string(ci.name));
		smg_cli_emit_json(&ctx.out, j);
	} else {
		printf("secmig recv: listening on %s port %u as '%s' (sources enrol this "
		       "host under that name)\n",
		       host, smg_listener_port(l), ci.name);
		fflush(stdout);
	}
	smg_notify_ready("listening");
	code = serve_loop(&ctx, l, &ci.so, once);
	smg_ctl_server_stop(ctx.ctl);
	smg_listener_close(l);
	smg_audit_close(ctx.ro.audit);
	smg_capacity_free(cap);
	smg_hostdef_free(hd);
	smg_cli_tpm_free(&tpm);
	smg_cli_ident_free(&ci);
	return code;
}
