/* Helpers the migration subcommands (send, recv, resolve, demo, status,
 * cancel, tune) share: addresses and pinned peers, identities, the
 * progress line and the --json event stream (json-c), the local control
 * socket, signal handling. */
#ifndef SMG_CLI_MIGRATE_H
#define SMG_CLI_MIGRATE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "engine/engine.h"
#include "transport/transport.h"

#define SMG_CLI_HOST_MAX    256
#define SMG_CLI_DEFAULT_DIR "/var/lib/secmig"

/* HOST[:PORT], [V6]:PORT; port defaults to SMG_DEFAULT_PORT; *explicit_port
 * (may be NULL) says whether one was given. */
int smg_cli_parse_addr2(const char *s, char *host, size_t hlen, uint16_t *port,
			bool *explicit_port);
int smg_cli_parse_addr(const char *s, char *host, size_t hlen, uint16_t *port);
const char *smg_cli_state_dir(const char *opt);

/* Identity, peers and session options from --key/--peers/--name. */
struct smg_cli_ident {
	struct smg_identity *id;
	struct smg_peers *peers;
	struct smg_session_opts so;
	char name[SMG_PEER_NAME_MAX + 1]; /* the name we claim */
};
int smg_cli_ident_load(struct smg_cli_ident *ci, const char *dir, const char *key,
		       const char *peers, const char *name);
void smg_cli_ident_free(struct smg_cli_ident *ci);

/* This host's audit context (audit/): the log in DIR/audit, operators
 * from `operators` (NULL: DIR/operators if present), and with tpm the
 * policy (hashed into records; its tickets knob) and the AK for receipts.
 * SMG_ERR_CONFIG for a bad operators file. */
struct smg_audit;
struct smg_cli_tpm;
int smg_cli_audit_open(struct smg_audit **out, const char *dir, const char *operators,
		       const struct smg_cli_ident *ci, const struct smg_cli_tpm *tpm,
		       const char *policy_path);
/* "+30m", "-1h", "+2d", "@UNIX", "YYYY-MM-DDTHH:MM:SSZ" -> unix seconds. */
int smg_cli_parse_time(const char *s, uint64_t now, uint64_t *out);
/* Read an armoured ticket file (`secmig ticket sign`) into buf. */
int smg_cli_ticket_read(const char *path, uint8_t *buf, size_t cap, size_t *len);

/* The destination, pinned (DESIGN §7): --to NAME[:PORT] with NAME enrolled
 * (its address from the peers file's addr= option, else NAME itself), or
 * --to HOST[:PORT] --peer NAME. Fills host/port to connect to, the peer
 * name the handshake must prove, and "HOST:PORT" for the records. */
struct smg_cli_dest {
	char host[SMG_CLI_HOST_MAX];
	uint16_t port;
	char peer[SMG_PEER_NAME_MAX + 1];
	char addr[SMG_CLI_HOST_MAX + 8];
};
/* SMG_ERR_INVAL: a usage error, printed; SMG_ERR_UNKNOWN_PEER: --peer names
 * no enrolled host; SMG_ERR_CONFIG: a bad addr= option. */
int smg_cli_dest_resolve(const struct smg_peers *peers, const char *to, const char *peer,
			 struct smg_cli_dest *out);
/* The addr= option of a peers-file line's options (untrusted: a file):
 * SMG_OK and host/port, SMG_ERR_NOT_FOUND without one, SMG_ERR_CONFIG. */
int smg_cli_peer_addr(const char *options, char *host, size_t hlen, uint16_t *port,
		      bool *explicit_port);

/* Event output: JSON lines on out (json-c), or a live progress line on a
 * tty. A write that fails (the reader went away: `| head`, a closed
 * terminal) calls lost() once: send cancels the migration then. */
struct smg_cli_out {
	FILE *f;
	bool json, tty;
	const char *role; /* "send", "recv" */
	unsigned line_len;
	double handshake_ms; /* session set-up incl. attestation; <0: not measured */
	bool broken;	     /* a write failed; nothing more is written */
	void (*lost)(void *arg);
	void *lost_arg;
	const char *auth; /* "tpm" or "software": how sessions authenticate */
};
void smg_cli_out_init(struct smg_cli_out *o, FILE *f, bool json, const char *role);
void smg_cli_event(void *arg, const struct smg_event *ev);
/* The last line: {"event":"result", ...} or a human summary; flushed. */
void smg_cli_result(struct smg_cli_out *o, const struct smg_mig_stats *st, int code);
/* One JSON object as a line on o (takes ownership of obj, a json_object *). */
void smg_cli_emit_json(struct smg_cli_out *o, void *obj);

/* ---- the local control socket (cli/control.c, cli/ctl_proto.c) ---------
 * Each migration process serves DIR/control/PID.sock (the directory 0700,
 * the socket 0600, the peer's uid checked with SO_PEERCRED: root or our
 * own). secmig status / cancel / tune talk to every socket there. */
#define SMG_CTL_REQ_MAX	       512
#define SMG_CTL_REPLY_MAX      (256 * 1024)
#define SMG_CTL_MIGRATIONS_MAX 64 /* per process */

enum smg_ctl_verb { SMG_CTL_STATUS = 1, SMG_CTL_CANCEL, SMG_CTL_TUNE, SMG_CTL_METRICS };

struct smg_ctl_req {
	enum smg_ctl_verb verb;
	char id[SMG_MIGRATION_ID_LEN + 1]; /* "" when by domain */
	char domain[SMG_DOMAIN_NAME_MAX];  /* "" when by id */
	uint64_t bandwidth;		   /* TUNE: 0 keep, UINT64_MAX no cap */
	unsigned max_downtime_ms;	   /* TUNE: 0 keep */
};
/* Requests (untrusted bytes, fuzzed: fuzz/fuzz_ctl_request.c):
 *   STATUS | METRICS | CANCEL id=HEX | CANCEL domain=NAME
 *   TUNE (id=HEX|domain=NAME) [bandwidth=BYTES_PER_S|bandwidth=none]
 *        [max_downtime=MS]
 * one line, at most SMG_CTL_REQ_MAX bytes, an optional final newline. */
int smg_ctl_parse_request(const uint8_t *buf, size_t len, struct smg_ctl_req *out);
int smg_ctl_format_request(const struct smg_ctl_req *r, char *out, size_t n);

/* ---- metrics (cli/metrics.c) -------------------------------------------
 * A process's counters since it started (a SIGHUP reload keeps them), read
 * over the control socket (METRICS) and printed by `secmig metrics` in the
 * Prometheus text format (docs/operating.md lists the names). */
enum smg_metrics_role { SMG_MR_SEND, SMG_MR_RECV, SMG_MR_N };
enum smg_metrics_outcome {
	SMG_MO_MIGRATED,
	SMG_MO_FAILED,
	SMG_MO_CANCELLED,
	SMG_MO_IN_DOUBT,
	SMG_MO_REFUSED,
	SMG_MO_N
};
enum smg_metrics_reason {
	SMG_MX_UNKNOWN_PEER,
	SMG_MX_AUTH,
	SMG_MX_VERSION,
	SMG_MX_ATTESTATION,
	SMG_MX_POLICY,
	SMG_MX_CAPACITY,
	SMG_MX_BUSY,
	SMG_MX_EXISTS,
	SMG_MX_BACKEND,
	SMG_MX_TIMEOUT,
	SMG_MX_PROTOCOL,
	SMG_MX_OTHER,
	SMG_MX_N
};
#define SMG_METRICS_DOWNTIME_BUCKETS 12 /* 11 bounds and +Inf */
#define SMG_METRICS_ROUNDS_BUCKETS   9	/* 8 bounds and +Inf */

struct smg_metrics {
	uint64_t migrations[SMG_MR_N][SMG_MO_N];
	uint64_t refused[SMG_MR_N][SMG_MX_N];
	uint64_t bytes[SMG_MR_N];
	uint64_t downtime[SMG_MR_N][SMG_METRICS_DOWNTIME_BUCKETS]; /* per bucket */
	uint64_t downtime_ms_sum[SMG_MR_N];
	uint64_t rounds[SMG_MR_N][SMG_METRICS_ROUNDS_BUCKETS];
	uint64_t rounds_sum[SMG_MR_N];
	uint64_t active[SMG_MR_N];
	uint64_t reloads_ok, reloads_failed;
};

/* This process's counters. */
void smg_metrics_active(enum smg_metrics_role role, bool started);
/* A migration that ended (outcome from st->err; a refusal also counts
 * under its reason). */
void smg_metrics_finished(enum smg_metrics_role role, const struct smg_mig_stats *st);
/* An attempt refused before a migration began (handshake, enrolment,
 * concurrency). */
void smg_metrics_refused(enum smg_metrics_role role, int err);
void smg_metrics_reload(bool ok);
void smg_metrics_get(struct smg_metrics *out);
/* {"migrations":[[..],[..]],...} as a json-c object, and back (untrusted:
 * every array of its exact length, every count a non-negative integer). */
void *smg_metrics_json(const struct smg_metrics *m);
int smg_metrics_from_json(void *obj, struct smg_metrics *out);
void smg_metrics_add(struct smg_metrics *sum, const struct smg_metrics *m);
/* The Prometheus text exposition format (version 0.0.4). */
void smg_metrics_write_prom(FILE *f, const struct smg_metrics *m, unsigned processes);

/* A reply: {"ok":bool,"pid":N,"error":"...","detail":"...","migrations":[...],
 * "metrics":{...}} */
struct smg_ctl_reply {
	bool ok;
	long pid;
	char error[32];
	char detail[SMG_ENGINE_DETAIL_MAX];
	unsigned n;
	struct smg_live_status m[SMG_CTL_MIGRATIONS_MAX];
	bool has_metrics;
	struct smg_metrics metrics;
};
/* Parse a reply (untrusted bytes, fuzzed: fuzz/fuzz_ctl_reply.c). */
int smg_ctl_parse_reply(const char *buf, size_t len, struct smg_ctl_reply *out);
/* One migration's status as a json-c object (status --json, replies). */
void *smg_ctl_status_json(const struct smg_live_status *s);

struct smg_ctl_server;
/* Create DIR/control (0700) and DIR/control/PID.sock, serve from a thread. */
int smg_ctl_server_start(const char *state_dir, struct smg_ctl_server **out);
int smg_ctl_server_add(struct smg_ctl_server *sv, struct smg_live *l);
void smg_ctl_server_remove(struct smg_ctl_server *sv, struct smg_live *l);
void smg_ctl_server_stop(struct smg_ctl_server *sv);
/* Send req to every migration process of this host; fn gets each reply
 * (from a peer checked to be root or us). Returns how many answered. */
int smg_ctl_query_all(const char *state_dir, const struct smg_ctl_req *req,
		      void (*fn)(void *arg, const struct smg_ctl_reply *r), void *arg);

/* ---- signals (cli/signals.c) -------------------------------------------
 * SIGINT, SIGTERM, SIGHUP and SIGPIPE become a cancel of l (before COMMIT;
 * after it they are reported and deferred) instead of killing the process.
 * A signal the parent left ignored (nohup, a script's background job) stays
 * ignored. Start before any other thread. */
struct smg_cli_signals;
int smg_cli_signals_start(struct smg_live *l, struct smg_cli_signals **out);
void smg_cli_signals_stop(struct smg_cli_signals *sg);

#endif
