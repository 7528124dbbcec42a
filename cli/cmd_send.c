/* `secmig send`: migrate a domain to a receiver, pinned to the enrolled
 * destination it names (DESIGN §7), cancellable before COMMIT (signals,
 * `secmig cancel`, a lost output), visible to `secmig status`. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit/audit.h"
#include "base/base.h"
#include "cli/cli.h"
#include "cli/host_tpm.h"
#include "cli/migrate.h"
#include "cli/opts.h"

struct send_args {
	struct smg_cli_common co;
	struct smg_send_opts so;
	uint8_t tk[SMG_TICKET_MAX];
};

_Static_assert(sizeof(enum smg_stop_rule) == sizeof(int) &&
		   sizeof(enum smg_no_converge) == sizeof(int) &&
		   sizeof(enum smg_stg_mode) == sizeof(int),
	       "SMG_OPT_CHOICE stores an int");

#define SO_OFF(f)  offsetof(struct send_args, so.f)
#define MAX_ROUNDS 1000u

static const struct smg_opt_choice rules[] = {
    {"downtime", SMG_RULE_DOWNTIME},
    {"xen", SMG_RULE_XEN},
    {"stop-and-copy", SMG_RULE_STOP_AND_COPY},
    {NULL, 0},
};
static const struct smg_opt_choice no_converge[] = {
    {"abort", SMG_NOCONV_ABORT},
    {"extend", SMG_NOCONV_EXTEND},
    {NULL, 0},
};
static const struct smg_opt_choice storage_modes[] = {
    {"waio", SMG_STG_MODE_WAIO},
    {"dbt", SMG_STG_MODE_DBT},
    {NULL, 0},
};

static const struct smg_opt own[] = {
    {.name = "max-downtime",
     .short_name = 'D',
     .kind = SMG_OPT_UINT,
     .off = SO_OFF(max_downtime_ms),
     .min = 1,
     .max = SMG_OPTS_MAX_DOWNTIME_MS,
     .bad = "--max-downtime: milliseconds, 1..3600000, not '%s'"},
    {.name = "on-no-converge",
     .kind = SMG_OPT_CHOICE,
     .off = SO_OFF(on_no_converge),
     .choices = no_converge,
     .bad = "--on-no-converge: abort or extend, not '%s'"},
    {.name = "bandwidth",
     .short_name = 'b',
     .kind = SMG_OPT_U64,
     .off = SO_OFF(bandwidth),
     .min = 1,
     .max = UINT64_MAX,
     .bad = "--bandwidth: bytes/s like 100M, not '%s'"},
    {.name = "no-auto-converge",
     .short_name = 'A',
     .kind = SMG_OPT_CLEAR,
     .off = SO_OFF(auto_converge)},
    {.name = "rule",
     .short_name = 'r',
     .kind = SMG_OPT_CHOICE,
     .off = SO_OFF(rule),
     .choices = rules,
     .bad = "--rule: downtime, xen or stop-and-copy, not '%s'"},
    {.name = "max-rounds",
     .short_name = 'R',
     .kind = SMG_OPT_UINT,
     .off = SO_OFF(max_rounds),
     .min = 1,
     .max = MAX_ROUNDS,
     .bad = "--max-rounds: 1..1000, not '%s'"},
    {.name = "storage-mode",
     .kind = SMG_OPT_CHOICE,
     .off = SO_OFF(storage_mode),
     .choices = storage_modes,
     .bad = "--storage-mode: waio or dbt, not '%s'"},
    {.name = "disk-workload", .kind = SMG_OPT_STR, .off = SO_OFF(disk_workload)},
};

static const struct smg_opt_spec spec = {
    .cmd = "send",
    .common = SMG_CO(TO) | SMG_CO(PEER) | SMG_CO(DOMAIN) | SMG_CO(JSON) |
	      SMG_CO_IDENTITY | SMG_CO(TICKET) | SMG_CO(OPERATORS) | SMG_CO(DISK_SOCKET) |
	      SMG_CO(CHANNELS) | SMG_CO_NET | SMG_CO(CHECK_MEMORY) | SMG_CO(HELP),
    .own = own,
    .n_own = SMG_ARRAY_LEN(own),
};

static int parse_args(int argc, char **argv, struct send_args *a)
{
	struct smg_cli_common *co = &a->co;
	int r;

	memset(a, 0, sizeof(*a));
	co->backend = "sim";
	co->channels = 2;
	a->so.auto_converge = true;
	if ((r = smg_opts_parse(&spec, argc, argv, co, a)) >= 0)
		return r;
	return smg_opts_send(&spec, co, &a->so);
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

	smg_cli_out_init(&x->out, stdout, x->a.co.json, "send");
	if ((r = smg_cli_ident_load(&x->ci, x->a.co.dir, x->a.co.key, x->a.co.peers,
				    x->a.co.name)) != SMG_OK)
		return early(&x->out, &x->st, SMG_ERR_CONFIG,
			     "bad identity or peers file");
	if ((r = smg_cli_dest_resolve(x->ci.peers, x->a.co.to, x->a.co.peer, &x->dest)) !=
	    SMG_OK)
		return r == SMG_ERR_INVAL ? SMG_EXIT_USAGE
					  : early(&x->out, &x->st, SMG_ERR_CONFIG,
						  "the destination is not enrolled");
	x->ci.so.channels = x->a.co.channels;
	x->ci.so.io_timeout_ms = x->a.co.io_timeout;
	x->ci.so.handshake_timeout_ms = x->a.co.io_timeout;
	x->ci.so.expect_peer = x->dest.peer;
	if ((r = smg_cli_tpm_load(&x->tpm, x->a.co.policy, x->a.co.tcti, &x->ci.so)) !=
	    SMG_OK)
		return early(&x->out, &x->st, r, "TPM mode could not start");
	if ((x->a.co.ticket != NULL &&
	     (r = smg_cli_ticket_read(x->a.co.ticket, x->a.tk, sizeof(x->a.tk),
				      &x->a.so.ticket_len)) != SMG_OK) ||
	    (r = smg_cli_audit_open(&x->a.so.audit, x->a.co.dir, x->a.co.operators,
				    &x->ci, &x->tpm, x->a.co.policy)) != SMG_OK)
		return early(
		    &x->out, &x->st, SMG_ERR_CONFIG,
		    "bad ticket or operators file, or the audit log cannot open");
	x->a.so.ticket = x->a.tk;
	if ((r = smg_live_new("send", &x->live)) != SMG_OK ||
	    (r = smg_cli_signals_start(x->live, &x->sig)) != SMG_OK)
		return early(&x->out, &x->st, r, NULL);
	if (smg_ctl_server_start(x->a.co.dir, &x->ctl) != SMG_OK)
		smg_warn("no control socket: secmig status/cancel/tune will not see "
			 "this migration (signals still cancel it)");
	smg_ctl_server_add(x->ctl, x->live);
	x->out.lost = output_lost;
	x->out.lost_arg = x->live;
	x->a.so.bopts.state_dir = x->a.co.dir;
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
