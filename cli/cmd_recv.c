/* `secmig recv`: the destination service. Long-running by default (several
 * migrations in a row, at most --max-concurrent at once); --once serves one
 * session in the foreground and exits with its code. SIGHUP reloads the
 * peers, policy and host definitions (cli/recv_conf.c). */
#include <json-c/json.h>
#include <pthread.h>
#include <signal.h>
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
#include "cli/net.h"
#include "cli/opts.h"
#include "cli/recv_conf.h"
#include "proto/proto.h"
#include "secmig.pb-c.h"

#define RECV_CONCURRENT_DEFAULT 4
#define RECV_BACKEND_TRIES	20 /* a backend that is starting: 20 x 250 ms */
#define RECV_BACKEND_NAP_MS	250
#define RECV_CONCURRENT_MAX	64

#define RECV_TIMEOUT_MIN_MS	     100u
#define SMG_CLI_PROGRESS_TIMEOUT_MAX 3600000u	/* 1 h */
#define SMG_CLI_SESSION_TIMEOUT_MAX  604800000u /* 7 days */

/* How often an idle listener looks for a reloaded snapshot: it adopts one
 * only between accepts with no handshake under way, so that no handshake
 * mixes two snapshots. */
#define RECV_RELOAD_POLL_MS 500

#define RELOAD_STOP_SIGNAL SIGUSR2 /* ends the reload thread */

struct recv_ctx {
	struct smg_recv_opts ro; /* from flags; a session adds its snapshot */
	struct smg_cli_out out;
	struct smg_ctl_server *ctl; /* secmig status / cancel see our sessions */
	pthread_mutex_t lock;	    /* active, the snapshots' references, cur */
	unsigned active, max;
	struct smg_recv_files files;
	struct smg_identity *id;      /* not reloaded */
	struct smg_session_opts base; /* channels, timeouts: flags */
	struct smg_recv_conf *cur;    /* the newest snapshot */
	unsigned generation;
	struct smg_capacity *cap; /* one ledger across snapshots */
	pthread_t reload_tid;
	bool reload_running;
};

static struct smg_recv_conf *conf_get(struct recv_ctx *ctx)
{
	struct smg_recv_conf *c;

	pthread_mutex_lock(&ctx->lock);
	c = ctx->cur;
	c->refs++;
	pthread_mutex_unlock(&ctx->lock);
	return c;
}

static void conf_put(struct recv_ctx *ctx, struct smg_recv_conf *c)
{
	bool last;

	if (c == NULL)
		return;
	pthread_mutex_lock(&ctx->lock);
	last = --c->refs == 0;
	pthread_mutex_unlock(&ctx->lock);
	if (last)
		smg_recv_conf_free(c);
}

struct serve_arg {
	struct recv_ctx *ctx;
	struct smg_session *s;
	struct smg_recv_conf *conf; /* a reference, dropped when it ends */
};

static int serve_one(struct recv_ctx *ctx, struct smg_session *s, struct smg_recv_conf *c)
{
	struct smg_mig_stats st;
	struct smg_recv_opts ro = ctx->ro;
	struct smg_live *live = NULL;
	int r, code;

	ro.policy = c->tpm.policy;
	ro.defs = c->defs;
	ro.audit = c->audit;
	ro.capacity = ctx->cap;
	ro.event_arg = &ctx->out;
	ro.announce_arg = &ctx->out;
	if (smg_live_new("recv", &live) == SMG_OK &&
	    smg_ctl_server_add(ctx->ctl, live) == SMG_OK)
		ro.live = live;
	smg_metrics_active(SMG_MR_RECV, true);
	r = smg_engine_serve(s, &ro, &st);
	smg_metrics_active(SMG_MR_RECV, false);
	smg_ctl_server_remove(ctx->ctl, live);
	if (r == SMG_OK)
		smg_session_close(s);
	else
		smg_session_free(s);
	smg_live_free(live);
	code = smg_exit_from_err(r);
	if (st.migration_id[0] != '\0' || st.detail[0] != '\0') {
		smg_metrics_finished(SMG_MR_RECV, &st);
		pthread_mutex_lock(&ctx->lock);
		ctx->out.auth = c->tpm.tpm_mode ? "tpm" : "software";
		smg_cli_result(&ctx->out, &st, code);
		pthread_mutex_unlock(&ctx->lock);
	}
	smg_log_ctx_clear();
	return code;
}

static void release_slot(struct recv_ctx *ctx)
{
	pthread_mutex_lock(&ctx->lock);
	ctx->active--;
	pthread_mutex_unlock(&ctx->lock);
}

static void *serve_thread(void *arg)
{
	struct serve_arg *a = arg;

	serve_one(a->ctx, a->s, a->conf);
	conf_put(a->ctx, a->conf);
	release_slot(a->ctx);
	free(a);
	return NULL;
}

static void refuse(struct smg_session *s, Smg__AbortReason reason, int err,
		   const char *detail)
{
	Smg__Abort a = SMG__ABORT__INIT;

	a.reason = reason;
	a.detail = (char *)detail;
	a.error = err;
	smg_chan_send_msg(s, 0, SMG_FT_ABORT, &a.base);
	smg_chan_flush(s, 0);
	smg_session_free(s);
}

/* A session authenticated under an older snapshot than the newest: its key
 * must still be enrolled, so a reload that removes a peer takes effect at
 * once, even for a handshake that finished just before it. */
static bool still_enrolled(struct smg_recv_conf *c, struct smg_session *s)
{
	if (smg_recv_conf_enrols(c, smg_session_peer_name(s), smg_session_peer_key(s)))
		return true;
	smg_warn("refusing a session of '%s': no longer enrolled with that key "
		 "(peers reloaded)",
		 smg_session_peer_name(s));
	smg_metrics_refused(SMG_MR_RECV, SMG_ERR_UNKNOWN_PEER);
	smg_audit_alert(c->audit, smg_session_peer_addr(s), smg_session_peer_name(s),
			SMG_ERR_UNKNOWN_PEER);
	refuse(s, SMG__ABORT_REASON__ABORT_POLICY, SMG_ERR_UNKNOWN_PEER,
	       "this host no longer enrols your key");
	return false;
}

/* The listener takes the newest snapshot (it is between handshakes). */
static struct smg_recv_conf *adopt(struct recv_ctx *ctx, struct smg_recv_conf *lc)
{
	struct smg_recv_conf *c = conf_get(ctx);

	if (c == lc) {
		conf_put(ctx, c);
		return lc;
	}
	conf_put(ctx, lc);
	smg_info("reload: snapshot %u in effect for new connections", c->generation);
	if (ctx->out.json) {
		json_object *j = json_object_new_object();
		json_object_object_add(j, "event", json_object_new_string("reloaded"));
		json_object_object_add(j, "generation",
				       json_object_new_int((int)c->generation));
		smg_cli_emit_json(&ctx->out, j);
	}
	return c;
}

/* One accepted session: served in its own thread with the newest snapshot. */
static void dispatch(struct recv_ctx *ctx, struct smg_session *s)
{
	struct smg_recv_conf *c = conf_get(ctx);
	struct serve_arg *a;
	pthread_t t;
	bool busy;

	if (!still_enrolled(c, s)) {
		conf_put(ctx, c);
		return;
	}
	pthread_mutex_lock(&ctx->lock);
	busy = ctx->active >= ctx->max;
	if (!busy)
		ctx->active++;
	pthread_mutex_unlock(&ctx->lock);
	if (busy) {
		smg_warn("refusing a migration: %u already running", ctx->max);
		smg_metrics_refused(SMG_MR_RECV, SMG_ERR_BUSY);
		smg_audit_alert(c->audit, smg_session_peer_addr(s),
				smg_session_peer_name(s), SMG_ERR_BUSY);
		refuse(s, SMG__ABORT_REASON__ABORT_RESOURCES, SMG_ERR_BUSY,
		       "receiver busy: too many concurrent migrations");
		conf_put(ctx, c);
		return;
	}
	if ((a = malloc(sizeof(*a))) != NULL)
		*a = (struct serve_arg){ctx, s, c};
	if (a == NULL || pthread_create(&t, NULL, serve_thread, a) != 0) {
		free(a);
		conf_put(ctx, c);
		smg_session_free(s);
		release_slot(ctx);
		return;
	}
	pthread_detach(t);
}

/* A handshake the listener refused: counted, then audited as before. */
static void on_refused(void *arg, const char *addr, const char *peer, int err)
{
	struct smg_recv_conf *c = arg;

	smg_metrics_refused(SMG_MR_RECV, err);
	if (c->so.on_refused != NULL)
		c->so.on_refused(c->so.refused_arg, addr, peer, err);
}

static int serve_loop(struct recv_ctx *ctx, struct smg_listener *l, bool once)
{
	struct smg_recv_conf *lc = conf_get(ctx); /* the listener's snapshot */
	int r, code;

	for (;;) {
		struct smg_session_opts so = lc->so;
		struct smg_session *s;

		so.accept_timeout_ms = RECV_RELOAD_POLL_MS;
		so.on_refused = on_refused;
		so.refused_arg = lc;
		if ((r = smg_listener_accept(l, &so, &s)) == SMG_ERR_TIMEOUT) {
			lc = adopt(ctx, lc);
			continue;
		}
		if (r != SMG_OK) {
			if (once) {
				code = smg_exit_from_err(r);
				break;
			}
			smg_warn("accept: %s", smg_strerror(r));
			continue;
		}
		if (!once) {
			dispatch(ctx, s);
			continue;
		}
		struct smg_recv_conf *c = conf_get(ctx);
		code = still_enrolled(c, s) ? serve_one(ctx, s, c) : SMG_EXIT_AUTH;
		conf_put(ctx, c);
		break;
	}
	conf_put(ctx, lc);
	return code;
}

/* A snapshot opens its own TPM context next to the running one's: fine for
 * the kernel's resource manager (device:/dev/tpmrm*) and tpm2-abrmd; a TPM
 * that takes one client at a time (swtpm, mssim, /dev/tpm0) would stall
 * the second, so such a receiver is restarted instead. */
static bool tpm_takes_one_client(const struct recv_ctx *ctx)
{
	const struct smg_recv_conf *c = ctx->cur;
	const char *t;

	if (!c->tpm.tpm_mode)
		return false;
	t = ctx->files.tcti != NULL ? ctx->files.tcti : c->tpm.policy->tcti;
	return strncmp(t, "device:/dev/tpmrm", 17) != 0 && strncmp(t, "tabrmd", 6) != 0;
}

static void reload(struct recv_ctx *ctx)
{
	struct smg_recv_conf *c = NULL, *old;
	char status[160];
	int r = SMG_ERR_CONFIG;

	smg_notify_send("RELOADING=1\nSTATUS=reloading peers, policy and host "
			"definitions");
	smg_info("SIGHUP: reloading peers, policy and host definitions");
	if (tpm_takes_one_client(ctx))
		smg_err("reload: this receiver's TPM takes one client at a time and "
			"the running configuration holds it: restart secmig-recv to "
			"apply the changes (device:/dev/tpmrm0 reloads)");
	else
		r = smg_recv_conf_load(&ctx->files, ctx->id, &ctx->base, &c);
	if (r != SMG_OK) {
		pthread_mutex_lock(&ctx->lock);
		unsigned g = ctx->cur->generation;
		pthread_mutex_unlock(&ctx->lock);
		smg_err("reload failed: snapshot %u stays in effect", g);
		smg_metrics_reload(false);
		snprintf(status, sizeof(status),
			 "READY=1\nSTATUS=listening; last reload failed, snapshot %u "
			 "in effect",
			 g);
		smg_notify_send(status);
		if (ctx->out.json) {
			json_object *j = json_object_new_object();
			json_object_object_add(j, "event",
					       json_object_new_string("reload_failed"));
			json_object_object_add(j, "generation",
					       json_object_new_int((int)g));
			smg_cli_emit_json(&ctx->out, j);
		}
		return;
	}
	pthread_mutex_lock(&ctx->lock);
	c->generation = ++ctx->generation;
	old = ctx->cur;
	ctx->cur = c;
	/* In-flight reservations stay in the ledger; new ones meet the new
	 * limits. */
	smg_capacity_set_defs(ctx->cap, c->defs);
	pthread_mutex_unlock(&ctx->lock);
	conf_put(ctx, old);
	smg_metrics_reload(true);
	smg_info("reload: snapshot %u loaded (%u vm definition(s)); migrations in "
		 "flight keep theirs",
		 c->generation, c->defs->n_vms);
	snprintf(status, sizeof(status), "READY=1\nSTATUS=listening; snapshot %u",
		 c->generation);
	smg_notify_send(status);
}

static void *reload_main(void *arg)
{
	struct recv_ctx *ctx = arg;
	sigset_t set;
	int sig;

	sigemptyset(&set);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, RELOAD_STOP_SIGNAL);
	while (sigwait(&set, &sig) == 0 && sig == SIGHUP)
		reload(ctx);
	return NULL;
}

/* Before any other thread exists, so that every thread inherits the mask
 * and SIGHUP reaches only the reload thread. A SIGHUP the parent left
 * ignored stays ignored. */
static void reload_start(struct recv_ctx *ctx)
{
	struct sigaction old;
	sigset_t set;

	if (sigaction(SIGHUP, NULL, &old) != 0 || old.sa_handler == SIG_IGN)
		return;
	sigemptyset(&set);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, RELOAD_STOP_SIGNAL);
	if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0 ||
	    pthread_create(&ctx->reload_tid, NULL, reload_main, ctx) != 0) {
		smg_warn("no reload thread: SIGHUP will not reload");
		return;
	}
	ctx->reload_running = true;
}

static void reload_stop(struct recv_ctx *ctx)
{
	if (!ctx->reload_running)
		return;
	pthread_kill(ctx->reload_tid, RELOAD_STOP_SIGNAL);
	pthread_join(ctx->reload_tid, NULL);
	ctx->reload_running = false;
}

static void print_listening(struct recv_ctx *ctx, const char *host, uint16_t port,
			    const char *name)
{
	/* The name sources must enrol us under (their peers file): a mismatch
	 * fails their handshake, so say it where the operator looks. */
	if (ctx->out.json) {
		json_object *j = json_object_new_object();
		json_object_object_add(j, "event", json_object_new_string("listening"));
		json_object_object_add(j, "host", json_object_new_string(host));
		json_object_object_add(j, "port", json_object_new_int(port));
		json_object_object_add(j, "name", json_object_new_string(name));
		smg_cli_emit_json(&ctx->out, j);
	} else {
		printf("secmig recv: listening on %s port %u as '%s' (sources enrol this "
		       "host under that name)\n",
		       host, port, name);
		fflush(stdout);
	}
}

/* Identity, the first snapshot, the ledger; then listen and serve. */
static int run(struct recv_ctx *ctx, const char *key, const char *listen,
	       const char *host, uint16_t port, bool once)
{
	char kp[512], hostname[SMG_PEER_NAME_MAX + 1];
	struct smg_listener *l = NULL;
	int r, code = SMG_EXIT_CONFIG;

	snprintf(kp, sizeof(kp), "%s/host.key", ctx->files.dir);
	if ((r = smg_identity_load(key != NULL ? key : kp, &ctx->id)) != SMG_OK) {
		fprintf(stderr,
			"secmig: identity %s: %s (create one with 'secmig keygen')\n",
			key != NULL ? key : kp, smg_strerror(r));
		return SMG_EXIT_CONFIG;
	}
	if ((r = smg_recv_conf_load(&ctx->files, ctx->id, &ctx->base, &ctx->cur)) !=
	    SMG_OK) {
		code = smg_exit_from_err(r);
		goto out;
	}
	ctx->cur->generation = ctx->generation = 1;
	/* The backend answers before READY: a receiver whose hypervisor is
	 * missing fails here, once, not at every incoming migration. A host
	 * started in the same breath (`secmig sim host & secmig recv ...`)
	 * gets a grace period to come up. */
	struct smg_backend *be = NULL;
	for (unsigned i = 0; i < RECV_BACKEND_TRIES; i++) {
		if ((r = smg_backend_open(ctx->ro.backend, &ctx->ro.bopts, &be)) ==
		    SMG_OK)
			break;
		if (i == 0)
			smg_info("waiting up to %u s for backend '%s'",
				 RECV_BACKEND_TRIES * RECV_BACKEND_NAP_MS / 1000,
				 ctx->ro.backend);
		struct timespec nap = {0, RECV_BACKEND_NAP_MS * 1000000L};
		nanosleep(&nap, NULL);
	}
	if (r != SMG_OK) {
		fprintf(stderr,
			"secmig recv: backend '%s' does not answer on this host (%s): "
			"refusing to start (sim: start its host first, 'secmig sim host' "
			"or secmig-sim-host.service)\n",
			ctx->ro.backend, smg_strerror(r));
		code = SMG_EXIT_BACKEND;
		goto out;
	}
	smg_backend_close(be);
	if (smg_capacity_new(ctx->cur->defs, &ctx->cap) != SMG_OK)
		goto out;
	if ((r = smg_listener_open(host, port, &l)) != SMG_OK) {
		fprintf(stderr, "secmig: cannot listen on %s: %s\n", listen,
			smg_strerror(r));
		code = SMG_EXIT_NETWORK;
		goto out;
	}
	reload_start(ctx);
	if (smg_ctl_server_start(ctx->files.dir, &ctx->ctl) != SMG_OK)
		smg_warn("no control socket: secmig status/cancel will not see this "
			 "receiver's migrations");
	if (ctx->cur->so.name == NULL && gethostname(hostname, sizeof(hostname)) != 0)
		snprintf(hostname, sizeof(hostname), "localhost");
	hostname[sizeof(hostname) - 1] = '\0';
	print_listening(ctx, host, smg_listener_port(l),
			ctx->cur->so.name != NULL ? ctx->cur->so.name : hostname);
	smg_notify_ready("listening");
	code = serve_loop(ctx, l, once);
	reload_stop(ctx);
	smg_ctl_server_stop(ctx->ctl);
out:
	smg_listener_close(l);
	smg_capacity_free(ctx->cap);
	conf_put(ctx, ctx->cur);
	smg_identity_free(ctx->id);
	return code;
}

struct recv_args {
	struct smg_cli_common co;
	const char *listen, *defs;
	bool once, insecure;
	unsigned max, progress_timeout, session_timeout;
};

#define RA_OFF(f) offsetof(struct recv_args, f)

static const struct smg_opt own[] = {
    {.name = "listen", .short_name = 'l', .kind = SMG_OPT_STR, .off = RA_OFF(listen)},
    {.name = "once", .short_name = 'o', .kind = SMG_OPT_SET, .off = RA_OFF(once)},
    {.name = "max-concurrent",
     .short_name = 'm',
     .kind = SMG_OPT_UINT,
     .off = RA_OFF(max),
     .min = 1,
     .max = RECV_CONCURRENT_MAX,
     .bad = "--max-concurrent: 1..64, not '%s'"},
    {.name = "defs", .kind = SMG_OPT_STR, .off = RA_OFF(defs)},
    {.name = "insecure-software-mode", .kind = SMG_OPT_SET, .off = RA_OFF(insecure)},
    {.name = "progress-timeout",
     .kind = SMG_OPT_MS,
     .off = RA_OFF(progress_timeout),
     .min = RECV_TIMEOUT_MIN_MS,
     .max = SMG_CLI_PROGRESS_TIMEOUT_MAX,
     .bad = "--progress-timeout: 100..3600000 ms, not '%s'"},
    {.name = "session-timeout",
     .kind = SMG_OPT_MS,
     .off = RA_OFF(session_timeout),
     .min = RECV_TIMEOUT_MIN_MS,
     .max = SMG_CLI_SESSION_TIMEOUT_MAX,
     .bad = "--session-timeout: 100..604800000 ms, not '%s'"},
};

static const struct smg_opt_spec spec = {
    .cmd = "recv",
    .common = SMG_CO(JSON) | SMG_CO_IDENTITY | SMG_CO(OPERATORS) | SMG_CO(DISK_SOCKET) |
	      SMG_CO(CHANNELS) | SMG_CO_NET | SMG_CO(CHECK_MEMORY) | SMG_CO(HELP),
    .own = own,
    .n_own = SMG_ARRAY_LEN(own),
};

/* The flags into the receiver's context; -1 to go on, else the exit code. */
static int configure(struct recv_ctx *ctx, struct recv_args *a, char *host, size_t hlen,
		     uint16_t *port)
{
	struct smg_cli_common *co = &a->co;
	struct smg_recv_files *f = &ctx->files;
	bool known = false;

	for (const char *const *b = smg_engine_backend_names(); *b != NULL; b++)
		known |= strcmp(*b, co->backend) == 0;
	if (!known) {
		fprintf(stderr, "secmig: backend '%s' is not built in (secmig version)\n",
			co->backend);
		return SMG_EXIT_BACKEND;
	}
	if (smg_cli_parse_addr(a->listen, host, hlen, port) != SMG_OK)
		return smg_opts_usage(&spec, "--listen: ADDR[:PORT], not '%s'",
				      a->listen);
	*f = (struct smg_recv_files){
	    .dir = smg_cli_state_dir(co->dir),
	    .peers = co->peers,
	    .policy = co->policy,
	    .tcti = co->tcti,
	    .defs = a->defs,
	    .operators = co->operators,
	    .name = co->name,
	};
	ctx->max = a->max;
	ctx->ro.backend = co->backend;
	ctx->ro.disk_socket = co->disk_socket;
	ctx->ro.check_memory = co->check_memory;
	ctx->ro.net = co->has_net ? &co->net : NULL;
	ctx->ro.state_dir = f->dir;
	ctx->ro.bopts.state_dir = f->dir;
	ctx->ro.event = smg_cli_event;
	ctx->ro.announce_event = smg_cli_announce_event;
	smg_cli_out_init(&ctx->out, stdout, co->json, "recv");
	ctx->out.tty = false; /* a service: no progress line */
	ctx->base.channels = co->channels;
	ctx->base.io_timeout_ms = co->io_timeout;
	ctx->base.handshake_timeout_ms = co->io_timeout;
	ctx->base.progress_timeout_ms = a->progress_timeout;
	ctx->base.session_timeout_ms = a->session_timeout;
	return -1;
}

int smg_cmd_recv(int argc, char **argv)
{
	struct recv_ctx ctx = {.lock = PTHREAD_MUTEX_INITIALIZER};
	struct recv_args a = {.co = {.backend = "sim", .channels = SMG_CHANNELS_MAX},
			      .max = RECV_CONCURRENT_DEFAULT};
	char host[SMG_CLI_HOST_MAX];
	uint16_t port;
	int code;

	if ((code = smg_opts_parse(&spec, argc, argv, &a.co, &a)) >= 0)
		return code;
	if (a.listen == NULL)
		return smg_opts_usage(&spec, "recv needs --listen ADDR[:PORT]%s", "");
	if ((code = configure(&ctx, &a, host, sizeof(host), &port)) >= 0)
		return code;
	/* Secure by default: no policy means no ACL, no placement and no
	 * attestation; only an explicit opt-in runs like that. */
	if (a.co.policy == NULL && !a.insecure) {
		fprintf(
		    stderr,
		    "secmig recv: no --policy FILE: refusing to accept migrations "
		    "without an access policy (a lab without TPMs: 'mode software' in "
		    "the policy, or --insecure-software-mode)\n");
		return SMG_EXIT_CONFIG;
	}
	if (a.insecure && a.co.policy == NULL)
		smg_warn("--insecure-software-mode: any enrolled peer may send any VM "
			 "that matches the host definitions; no TPM binding, no "
			 "attestation, no ACL");
	signal(SIGPIPE, SIG_IGN);
	return run(&ctx, a.co.key, a.listen, host, port, a.once);
}
