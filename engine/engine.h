/* The migration engine: source and destination state machines, pre-copy
 * policy, the hypervisor backend interface, integrity and hand-over. */
#ifndef SMG_ENGINE_H
#define SMG_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "engine/backend.h"
#include "storage/storage.h"

struct smg_session;
struct smg_live_status;
struct smg_netid_host; /* network block below */
struct smg_policy;
struct smg_audit;
struct smg_hostdef;
/* What this receiver holds for incoming migrations at once, against the
 * definitions' "limit total" and "limit peer" (engine/plan_check.c). One
 * per receiver process, shared by its sessions. */
struct smg_capacity;
int smg_capacity_new(const struct smg_hostdef *defs, struct smg_capacity **out);
void smg_capacity_free(struct smg_capacity *c);
/* A reload: new reservations meet these limits; those held stay counted. */
void smg_capacity_set_defs(struct smg_capacity *c, const struct smg_hostdef *defs);

/* NULL-terminated list of the backends compiled into this build. */
const char *const *smg_engine_backend_names(void);

#define SMG_MIGRATION_ID_LEN	    32 /* hex characters */
#define SMG_DIGEST_LEN		    32 /* Merkle roots; BLAKE2b-256 (other hashes) */
#define SMG_MAX_DOWNTIME_DEFAULT_MS 300
#define SMG_MAX_ROUNDS_DEFAULT	    30
#define SMG_THROTTLE_FIRST	    20 /* auto-converge: first step, % of vCPU time */
#define SMG_THROTTLE_STEP	    10
#define SMG_THROTTLE_MAX	    99

/* ---- pre-copy stop rule (engine/precopy.c) ------------------------------ */
enum smg_stop_rule {
	SMG_RULE_DOWNTIME = 0, /* ours: bandwidth x max-downtime vs dirty bytes */
	SMG_RULE_XEN,	       /* Xen's default: < 50 dirty pages or 5 rounds */
	SMG_RULE_STOP_AND_COPY /* pause first, send everything once */
};

enum smg_precopy_decision {
	SMG_PRECOPY_CONTINUE = 0,
	SMG_PRECOPY_STOP,     /* pause and send the rest */
	SMG_PRECOPY_THROTTLE, /* auto-converge: throttle raised, continue */
	SMG_PRECOPY_ABORT,    /* did not fit the budget: --on-no-converge abort */
};

/* When the round cap or a maxed-out (or disabled) throttle comes before the
 * estimate fits --max-downtime: abort (exit 8, the VM keeps running) or
 * stop-and-copy anyway over the budget (the result says it was exceeded). */
enum smg_no_converge {
	SMG_NOCONV_ABORT = 0,
	SMG_NOCONV_EXTEND,
};

struct smg_precopy {
	/* policy */
	enum smg_stop_rule rule;
	unsigned max_downtime_ms; /* may change between rounds (secmig tune) */
	unsigned max_rounds;
	bool auto_converge;
	enum smg_no_converge on_no_converge;
	/* the rest of the downtime estimate, set by the caller before each
	 * decision: bytes that must also cross while paused (disk delta,
	 * device state) and fixed costs (the destination's load time) */
	uint64_t pending_bytes;
	double fixed_ms;
	/* of the round's time, how long finding its dirty pages took (a
	 * backend without a dirty log scans all memory): not sending */
	double scan_ms;
	/* state */
	unsigned round;	     /* rounds done */
	unsigned throttle;   /* current throttle % */
	unsigned outpaced;   /* consecutive rounds dirtying outpaced sending */
	uint64_t prev_dirty; /* dirty pages after the previous round */
	double bw;	     /* bytes/s, smoothed */
	double dirty_rate;   /* bytes/s dirtied during the last round */
	double est_ms;	     /* estimated downtime if we stopped now */
	bool over_budget;    /* STOP although est_ms > max_downtime_ms (extend) */
	const char *why;     /* ABORT / over-budget STOP: which limit came first */
};

void smg_precopy_init(struct smg_precopy *pc, enum smg_stop_rule rule,
		      unsigned max_downtime_ms, unsigned max_rounds, bool auto_converge);
/* After a round: bytes it sent, how long it took, and how many pages are
 * dirty now. Returns the decision; on THROTTLE pc->throttle is the new cap. */
enum smg_precopy_decision smg_precopy_next_round(struct smg_precopy *pc,
						 uint64_t bytes_sent, uint64_t round_ns,
						 uint64_t dirty_pages,
						 uint32_t page_size);
/* Seconds until pre-copy ends if each next round carries what was dirtied
 * during the previous one: remaining / bw, summed geometrically (dirty rate
 * over bandwidth); < 0 when dirtying keeps pace with the link (no end in
 * sight unless throttled). */
double smg_precopy_eta(double remaining_bytes, double bw, double dirty_rate);

/* ---- memory Merkle root (engine/merkle.c), DESIGN §6 -------------------
 * The tree and its construction are base's (smg_merkle_*, base/base.h): one
 * for memory and disks. */
/* Root of a memory image computed from scratch (tests, --check-memory). */
int smg_merkle_of_memory(struct smg_backend *be, uint64_t pages, uint32_t page_size,
			 uint8_t root[SMG_DIGEST_LEN]);

/* ---- events (progress and outcome), consumed by the CLI ----------------- */
enum smg_phase {
	SMG_PHASE_SETUP = 0,
	SMG_PHASE_PRECOPY,
	SMG_PHASE_STOPCOPY,
	SMG_PHASE_VERIFY,
	SMG_PHASE_COMMIT,
	SMG_PHASE_DONE,
	SMG_PHASE_ABORTED,
	SMG_PHASE_IN_DOUBT,
};
const char *smg_phase_name(enum smg_phase p);

#define SMG_ENGINE_PEER_MAX   65  /* a peer name (transport: 64) + NUL */
#define SMG_ENGINE_DETAIL_MAX 256 /* an outcome's human-readable detail */

struct smg_mig_stats {
	char migration_id[SMG_MIGRATION_ID_LEN + 1];
	char domain[SMG_DOMAIN_NAME_MAX];
	char peer[SMG_ENGINE_PEER_MAX]; /* the other host's enrolled name */
	uint64_t ram_bytes;
	uint64_t disk_bytes; /* sum of the disks' sizes */
	uint64_t bytes_sent; /* payload bytes of page frames + state + control */
	uint64_t pages_sent, zero_pages;
	unsigned rounds, throttle;
	uint64_t downtime_ms, total_ms;
	double bandwidth, dirty_rate; /* bytes/s, last measured */
	double est_downtime_ms;	      /* the estimate stop-and-copy started on */
	unsigned downtime_budget_ms;  /* --max-downtime in force at the end */
	bool downtime_exceeded;	      /* actual (or forced) downtime over it */
	bool converged, verified;
	uint8_t memory_root[SMG_DIGEST_LEN];
	int err; /* smg_err of the outcome */
	/* Why it ended, for the operator: an ABORT reason code (proto
	 * AbortReason, 0 none), which host failed, and a sanitized detail. */
	int reason;
	bool peer_failed; /* the other host refused or failed */
	char detail[SMG_ENGINE_DETAIL_MAX];
};

enum smg_event_kind { SMG_EV_PHASE, SMG_EV_ROUND, SMG_EV_INFO, SMG_EV_PROGRESS };

struct smg_event {
	enum smg_event_kind kind;
	enum smg_phase phase;
	unsigned round;
	uint64_t round_pages, dirty_pages;
	double est_downtime_ms;
	const char *info; /* SMG_EV_INFO: a short note (throttle, abort reason) */
	const struct smg_mig_stats *st;
	const struct smg_live_status *live; /* SMG_EV_PROGRESS: where it stands */
};

typedef void (*smg_event_fn)(void *arg, const struct smg_event *ev);

/* ---- a running migration as other threads see it (engine/live.c) -------
 * `secmig status` reads it, `secmig cancel` and signals cancel through it,
 * `secmig tune` changes its bandwidth cap and downtime budget. */
struct smg_live;

struct smg_live_status {
	char migration_id[SMG_MIGRATION_ID_LEN + 1];
	char domain[SMG_DOMAIN_NAME_MAX];
	char peer[SMG_ENGINE_PEER_MAX];
	char role[8]; /* "send" or "recv" */
	enum smg_phase phase;
	unsigned round;
	uint64_t round_pages, round_done; /* pages this round carries, handled so far */
	uint64_t ram_pages, copied_pages; /* the first full copy of memory */
	uint64_t disk_bytes, disk_sent;	  /* the disks' bulk copy */
	uint64_t bytes;			  /* bytes sent (recv: received) so far */
	double rate, dirty_rate;	  /* bytes/s */
	double eta_s;			  /* until pre-copy ends; < 0 unknown */
	double est_downtime_ms;
	unsigned budget_ms, throttle;
	uint64_t bandwidth; /* the cap in bytes/s, 0 none */
	uint64_t started_unix_ms;
	bool cancelling; /* cancel asked, not done yet */
	bool committed;	 /* past COMMIT: cancel no longer possible */
};

int smg_live_new(const char *role, struct smg_live **out);
void smg_live_free(struct smg_live *l);
void smg_live_get(struct smg_live *l, struct smg_live_status *out);
/* Cancel before COMMIT (thread-safe, not async-signal-safe): the engine
 * aborts in order (ABORT to the peer, the VM keeps running on the source)
 * and ends with SMG_ERR_CANCELLED. SMG_ERR_STATE once the hand-over is past
 * COMMIT: it completes or ends in doubt. */
int smg_live_cancel(struct smg_live *l, const char *why);
/* Live tuning: bandwidth in bytes/s (0 keeps it, UINT64_MAX lifts the cap),
 * max_downtime_ms (0 keeps it). SMG_ERR_STATE once stop-and-copy began. */
int smg_live_tune(struct smg_live *l, uint64_t bandwidth, unsigned max_downtime_ms);

/* ---- why a migration ended: reason codes <-> errors (engine/reason.c) --- */
/* The ABORT / PLAN_ACK reason code (proto AbortReason) for a local error. */
int smg_reason_from_err(int err);
/* Our error for a reason the peer sent (unknown codes: fallback). */
int smg_reason_to_err(int reason, int fallback);
/* "cancelled", "disk_full", ... for events; "unspecified" for 0. */
const char *smg_reason_name(int reason);
/* A string the peer sent, made safe to log and print: printable ASCII
 * only (anything else becomes '?'), at most n-1 bytes. */
void smg_peer_text(const char *in, char *out, size_t n);
/* 1..63 bytes of [A-Za-z0-9._-], not starting with '.' or '-'. */
bool smg_domain_name_valid(const char *name);

/* ---- source ------------------------------------------------------------- */
struct smg_send_opts {
	const char *backend; /* "sim" */
	struct smg_backend_opts bopts;
	const char *domain;
	const char *peer; /* where the destination listens (recorded for resolve) */
	unsigned max_downtime_ms;
	unsigned max_rounds;
	uint64_t bandwidth; /* bytes/s; 0 = unlimited */
	bool auto_converge;
	enum smg_no_converge on_no_converge;
	enum smg_stop_rule rule;
	enum smg_stg_mode storage_mode; /* the domain's disks: WAIO (default) or DBT */
	/* The host's disk service (control socket or its directory), which owns
	 * and serves the domain's disks; NULL: the state dir. */
	const char *disk_socket;
	/* Synthetic guest disk I/O on every disk while it migrates (the sim
	 * VM's disk workload): "read-hot", "write-heavy", "mixed" or
	 * "trace:FILE" (MSR Cambridge CSV); NULL: none. */
	const char *disk_workload;
	/* Tests: while paused, recompute the memory root from the guest's
	 * memory itself and abort unless it equals the root of what was sent
	 * (proves the dirty log missed nothing). Adds to the downtime. */
	bool check_memory;
	/* Host policy (attest/): before the plan is sent the destination must
	 * be enrolled and carry the VM's placement labels, else ABORT
	 * (SMG_ERR_POLICY / SMG_ERR_UNKNOWN_PEER). NULL: no check. */
	const struct smg_policy *policy;
	/* audit/: this host's log, operators and replay cache (NULL: no log,
	 * no tickets; evidence is signed and checked regardless), and the
	 * operator's ticket the PLAN carries (ticket_len 0: none). */
	struct smg_audit *audit;
	const uint8_t *ticket;
	size_t ticket_len;
	smg_event_fn event;
	void *event_arg;
	/* status, cancel and tune from other threads; NULL: none */
	struct smg_live *live;
	/* network: the VM's NICs on this host (NULL: not managed); vifs go
	 * down at pause, up again on abort, away after DONE. */
	const struct smg_netid_host *net;
};

/* A migration in two steps, so that everything that can be checked on this
 * host (backend, domain, disks) is checked before any connection:
 * prepare opens the domain (no VM state changes), run migrates it over an
 * authenticated session (the caller connected it and frees it afterwards).
 * run returns SMG_OK, SMG_ERR_IN_DOUBT, or the error that aborted the
 * migration (the source VM then runs as before); free after either. */
struct smg_send;
int smg_engine_send_prepare(const struct smg_send_opts *opts, struct smg_mig_stats *st,
			    struct smg_send **out);
int smg_engine_send_run(struct smg_send *m, struct smg_session *s);
/* A migration that never got a session (connect failed): release the
 * domain untouched, report err as its outcome. */
void smg_engine_send_fail(struct smg_send *m, int err);
void smg_engine_send_free(struct smg_send *m);
/* prepare + run + free. */
int smg_engine_send(struct smg_session *s, const struct smg_send_opts *opts,
		    struct smg_mig_stats *st);

/* ---- pre-check (engine/precheck.c, secmig precheck) -----------------------
 * After smg_engine_send_prepare and a session with the destination: this
 * host's policy and ticket checks, then the destination's (PRECHECK ->
 * PRECHECK_RESULT: plan, backend, policy, ticket, definitions, capacity).
 * Nothing is reserved, used up or created on either host; the VM is not
 * touched. Returns SMG_OK when every check passed, the first failing
 * check's error (what a migration would fail with), or a session error. */
#define SMG_PRECHECK_ITEMS_MAX 16
#define SMG_PRECHECK_NAME_MAX  16
struct smg_precheck_item {
	char name[SMG_PRECHECK_NAME_MAX];
	bool ok;
	bool remote; /* the destination's verdict */
	int err;     /* when !ok */
	char detail[SMG_ENGINE_DETAIL_MAX];
};
struct smg_precheck {
	unsigned n;
	struct smg_precheck_item v[SMG_PRECHECK_ITEMS_MAX];
	uint32_t load_ms; /* the destination's measured load time, 0: unknown */
};
int smg_engine_send_precheck(struct smg_send *m, struct smg_session *s,
			     struct smg_precheck *out);

/* ---- destination ---------------------------------------------------------- */
struct smg_recv_opts {
	const char *backend;
	struct smg_backend_opts bopts;
	const char *state_dir; /* durable outcome records: DIR/outcomes/ID */
	bool check_memory;     /* recompute the memory root from scratch (tests) */
	/* The host's disk service, which stores incoming disks as DOMAIN.i in
	 * its storage directory, the definitions' `storage` (disk serve
	 * --defs); its control socket or that socket's directory; NULL:
	 * state_dir. */
	const char *disk_socket;
	/* Host policy: at PLAN the source must be enrolled with a "send" line
	 * for the domain and this host must carry the VM's placement labels,
	 * else ABORT (reason POLICY) before any page moves. NULL: no check. */
	const struct smg_policy *policy;
	struct smg_audit *audit; /* audit/: log, tickets, the AK for receipts */
	/* This host's VM definitions and capacity (docs/hostdef.md): every
	 * plan is matched against them before anything is allocated; no
	 * matching definition, or over capacity: ABORT (reason POLICY). */
	const struct smg_hostdef *defs;
	struct smg_capacity *capacity;
	smg_event_fn event;
	void *event_arg;
	/* status and cancel of this session's migration; NULL: none */
	struct smg_live *live;
	/* network: build the VM's NICs at PLAN, switch them on and announce
	 * them at resume (NULL: not managed); one JSON object per round,
	 * called from the announcement thread. */
	const struct smg_netid_host *net;
	void (*announce_event)(void *arg, const char *json);
	void *announce_arg;
};

/* Serve one authenticated session: a migration (PLAN first) or a resolve
 * query (RESOLVE_QUERY first). */
int smg_engine_serve(struct smg_session *s, const struct smg_recv_opts *opts,
		     struct smg_mig_stats *st);

/* ---- in doubt ------------------------------------------------------------ */
enum smg_resolve_outcome {
	SMG_RESOLVED_RUNNING = 1,   /* destination runs the VM: source destroyed */
	SMG_RESOLVED_DISCARDED = 2, /* destination discarded it: source resumed */
};

/* Who took the COMMIT: what the source records with it (mark_commit's
 * peer argument, one token) and resolve reads back. Only this key may
 * answer resolve. */
#define SMG_COMMIT_PEER_MAX 255 /* the token, without NUL */
struct smg_commit_peer {
	char name[SMG_ENGINE_PEER_MAX];
	uint8_t key[32];
	char addr[SMG_COMMIT_PEER_MAX + 1]; /* HOST:PORT it listened on */
};
int smg_commit_peer_format(const struct smg_commit_peer *p, char *out, size_t n);
/* Parse a token read back from the backend's record (untrusted: a file). */
int smg_commit_peer_parse(const char *tok, size_t len, struct smg_commit_peer *out);

/* Ask the destination (over s) about migration id and settle the domain.
 * SMG_ERR_AUTH, with nothing settled, if the session's peer is not p (name
 * and key) or if the destination refuses us as not the source. */
int smg_engine_resolve(struct smg_session *s, struct smg_backend *be, const char *domain,
		       const char *id, const struct smg_commit_peer *p,
		       enum smg_resolve_outcome *out);

/* After resolve on the source: the disks of domain that the host's disk
 * service (sock: its control socket or directory) still holds handed over
 * are dropped (resumed: the VM runs on the destination) or merged back and
 * released (the VM resumed here). *n: disks settled. No disk service, or
 * no such disk: nothing to do. */
int smg_engine_disks_settle(const char *sock, const char *domain, bool resumed,
			    unsigned *n);

/* ---- durable outcome records on the destination (engine/outcome.c) ------- */
enum smg_outcome {
	SMG_OUTCOME_NONE = 0,
	SMG_OUTCOME_COMMITTED, /* COMMIT received, recorded; resume follows */
	SMG_OUTCOME_RESUMED,
	SMG_OUTCOME_DISCARDED,
	SMG_OUTCOME_RECEIVING,	 /* plan accepted; not committed (yet) */
	SMG_OUTCOME_QUARANTINED, /* failed verification; the copy is kept aside */
};
/* One record: the state, the domain, and the source it belongs to (its
 * enrolled name and key): only that source is told the outcome. */
struct smg_outcome_rec {
	enum smg_outcome state;
	char domain[SMG_DOMAIN_NAME_MAX];
	char source[SMG_ENGINE_PEER_MAX];
	uint8_t source_key[32];
};
bool smg_migration_id_valid(const char *id);
/* Create the record only if none exists (O_EXCL): the first of COMMIT and
 * a resolve query's "discard" wins. SMG_ERR_EXISTS otherwise. */
int smg_outcome_create(const char *dir, const char *id,
		       const struct smg_outcome_rec *rec);
/* Move an existing record from one state to another under a file lock
 * (the rest of it unchanged); SMG_ERR_EXISTS if it is not in `from` any
 * more. One fdatasync. */
int smg_outcome_transition(const char *dir, const char *id, enum smg_outcome from,
			   enum smg_outcome to);
/* rec->state is SMG_OUTCOME_NONE when there is no record. */
int smg_outcome_read(const char *dir, const char *id, struct smg_outcome_rec *rec);
/* The record's text (untrusted: a file) -> rec. */
int smg_outcome_parse(const char *text, size_t len, struct smg_outcome_rec *rec);

/* ---- fault injection (CRIU style): SMG_FI=name[,name...] ----------------- */
enum smg_fault {
	SMG_FI_SRC_AFTER_ROUND0 = 0, /* sender exits after round 0 */
	SMG_FI_SRC_AFTER_PAUSE,	     /* sender exits in stop-and-copy */
	SMG_FI_SRC_AFTER_COMMIT,     /* sender exits after recording COMMIT */
	SMG_FI_DST_AFTER_ROUND0,     /* receiver exits after round 0 */
	SMG_FI_DST_BEFORE_READY,     /* receiver exits before READY */
	SMG_FI_DST_AFTER_COMMIT,     /* receiver exits after recording COMMIT */
	SMG_FI_DST_NO_DONE,	     /* receiver resumes, drops the link before DONE */
	SMG_FI_DST_BAD_ROOT,	     /* receiver corrupts one page before verify */
	SMG_FI_DST_WRITE_FAIL,	     /* receiver's backend fails a page write */
	SMG_FI_DST_BAD_DISK,	     /* disk service: CHECK damages one byte first */
	SMG_FI_DST_SLOW_DATA,	     /* receiver's data channels lag in stop-and-copy */
	SMG_FI_SRC_STARVE_CHAN,	     /* sender's last data channel idles in round 0 */
	SMG_FI_SRC_IN_SETUP,	     /* sender exits after PLAN, before PLAN_ACK */
	SMG_FI_SRC_IN_VERIFY,	     /* sender exits after MANIFEST, before READY */
	SMG_FI_SRC_BEFORE_COMMIT,    /* sender stalls after READY until the peer speaks */
	SMG_FI_MAX_
};
bool smg_fault_on(enum smg_fault f);
/* If f is on: log it and _exit(70) (a crash, no clean-up); with
 * SMG_FI_STALL_MS=N set, pause N ms there instead (network tests). */
void smg_fault_crash(enum smg_fault f);
/* Like smg_fault_crash, but a stall (SMG_FI_STALL_MS) ends early once l
 * got a cancel request (accepted or deferred): signal tests stall a phase
 * until their signal has been handled, not for a guessed time. */
void smg_fault_point(enum smg_fault f, struct smg_live *l);
/* SMG_FI_STALL_MS when set (1..600000), else dflt. */
unsigned smg_fault_stall_ms(unsigned dflt);

/* ==== QEMU VMs of this host: `secmig qemu` (engine/backend/qemu*.c, =====
 * ==== docs/qemu.md) ===================================================== */
struct smg_qemu_vm_info {
	char name[SMG_DOMAIN_NAME_MAX];
	uint64_t mem_bytes;
	unsigned vcpus, n_nics, n_disks;
	bool vtpm;
};

/* Check definition text as this host's own file (every key allowed).
 * SMG_ERR_CONFIG with "line N: what" in err. */
int smg_qemu_def_check(const char *text, size_t len, struct smg_qemu_vm_info *info,
		       char *err, size_t errlen);
/* The QEMU command line `start` runs for STATE_DIR/qemu/NAME.vm, its
 * arguments joined by spaces (*line malloc'd). */
int smg_qemu_cmdline(const char *state_dir, const char *name, char **line);
bool smg_qemu_name_ok(const char *s);
/* Start a VM from its definition, stop it, its state. */
int smg_qemu_vm_start(const char *state_dir, const char *name, bool incoming);
int smg_qemu_vm_stop(const char *state_dir, const char *name);
/* QMP's run state and QEMU's pid, or "absent" when no QEMU answers. */
int smg_qemu_vm_status(const char *state_dir, const char *name, char *status, size_t cap,
		       pid_t *pid);

/* ==== network identity and clean-up (network: engine/netid*.c, ========
 * ==== engine/announce*.c; see docs/network.md) ========================== */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SMG_MAC_LEN	       6
#define SMG_VNIC_ADDRS_MAX     4  /* per family, per NIC */
#define SMG_NETID_NAME_MAX     64 /* namespace name */
#define SMG_NETID_IFNAME_MAX   16 /* IFNAMSIZ */
#define SMG_ANNOUNCE_FRAME_MAX 128

/* A VM NIC's identity, as the VM config gives it. */
struct smg_vnic {
	uint8_t mac[SMG_MAC_LEN];
	unsigned n_ipv4, n_ipv6;
	uint8_t ipv4[SMG_VNIC_ADDRS_MAX][4];
	uint8_t ipv4_prefix[SMG_VNIC_ADDRS_MAX];
	uint8_t ipv6[SMG_VNIC_ADDRS_MAX][16];
	uint8_t ipv6_prefix[SMG_VNIC_ADDRS_MAX];
};

/* "52:54:00:12:34:56" -> mac; only unicast MACs are accepted. */
int smg_vnic_parse_mac(const char *text, uint8_t mac[static SMG_MAC_LEN]);
/* Add "10.0.0.5/24" or "fd00::5/64" (prefix optional: /32, /128). */
int smg_vnic_add_addr(struct smg_vnic *nic, const char *cidr);

/* Where a NIC lives on this host: a namespace holding `ifname` with the
 * VM's MAC and addresses, veth-paired with `vif` on the host's `bridge`. */
struct smg_netid {
	char vm_ns[SMG_NETID_NAME_MAX];
	char vif[SMG_NETID_IFNAME_MAX];
	char bridge[SMG_NETID_IFNAME_MAX];
	char ifname[SMG_NETID_IFNAME_MAX];
	struct smg_vnic nic;
};

/* Build the NIC with its vif down (destination, before resume). */
int smg_netid_prepare(const struct smg_netid *id);
/* vif carrier on (resume) or off (source pauses): raw rtnetlink, fast. */
int smg_netid_set_link(const struct smg_netid *id, bool up);
/* Tear the NIC down (source, after commit; destination, on abort). */
int smg_netid_remove(const struct smg_netid *id);
/* Wait until bridge `bridge` (in this namespace) forwards `mac` through
 * `port`; *when_ns is CLOCK_MONOTONIC of the kernel's notification (or of
 * the check, when it already did). SMG_ERR_TIMEOUT after timeout_ms. */
int smg_netid_watch_fdb(const char *bridge, const char *port,
			const uint8_t mac[static SMG_MAC_LEN], unsigned timeout_ms,
			uint64_t *when_ns);

/* Announcement schedule, QEMU's announce-self: round 1 at once, then
 * gaps of initial, initial+step, ... each capped at max_ms. */
struct smg_announce_sched {
	unsigned rounds;
	unsigned initial_ms;
	unsigned step_ms;
	unsigned max_ms;
};
#define SMG_ANNOUNCE_SCHED_DEFAULT \
	{                          \
		5, 50, 100, 550    \
	}
#define SMG_ANNOUNCE_ROUNDS_MAX 100

/* One NIC to announce: sent on `ifname` inside namespace `netns` (NULL:
 * the caller's), as if from the guest, like QEMU injects it on the NIC. */
struct smg_announce_target {
	const char *netns;
	const char *ifname;
	const struct smg_vnic *nic;
};

/* Receives one JSON object (no newline) per announcement round per NIC. */
typedef void (*smg_announce_event_fn)(void *arg, const char *json);

struct smg_announce;
/* Open the sockets now (errors come back at once), send from a thread. */
int smg_announce_start(const struct smg_announce_target *t, size_t n,
		       const struct smg_announce_sched *sched, smg_announce_event_fn ev,
		       void *arg, struct smg_announce **out);
/* Wait for the schedule to finish; frees a. Returns the first send error. */
int smg_announce_join(struct smg_announce *a);
/* Blocking form of start + join. */
int smg_announce_run(const struct smg_announce_target *t, size_t n,
		     const struct smg_announce_sched *sched, smg_announce_event_fn ev,
		     void *arg);

/* Frames: build them, and parse captured bytes (untrusted; fuzzed). */
enum smg_announce_kind {
	SMG_ANNOUNCE_RARP = 1, /* reverse request, QEMU announce-self */
	SMG_ANNOUNCE_GARP = 2, /* gratuitous ARP request, one per IPv4 */
	SMG_ANNOUNCE_NA = 3,   /* unsolicited neighbour advertisement, per IPv6 */
};
struct smg_announce_frame {
	enum smg_announce_kind kind;
	uint8_t mac[SMG_MAC_LEN];
	uint8_t ip[16]; /* IPv4 in the first 4 bytes for GARP; zero for RARP */
};
int smg_announce_build(enum smg_announce_kind kind, const uint8_t mac[static SMG_MAC_LEN],
		       const uint8_t *ip, uint8_t *buf, size_t cap, size_t *len);
/* SMG_OK: a well-formed announcement; SMG_ERR_UNKNOWN_TYPE: some other
 * frame; SMG_ERR_TRUNCATED/SMG_ERR_PROTO: a malformed announcement. */
int smg_announce_parse(const uint8_t *buf, size_t len, struct smg_announce_frame *out);
const char *smg_announce_kind_name(enum smg_announce_kind kind);
/* Hand-over of every NIC of one domain on this host (engine/netid_handover.c).
 * The NICs come from the backend's domain info (struct smg_nic in
 * engine/backend.h: MAC, IPv4, IPv6); the host config names where they go. */
struct smg_nic;
#define SMG_NETID_PREFIX_MAX 32
struct smg_netid_host {
	char ns_prefix[SMG_NETID_PREFIX_MAX]; /* VM namespaces: <prefix><domain>-<n> */
	char bridge[SMG_NETID_IFNAME_MAX];    /* the host bridge (xenbr0, hbr) */
	unsigned prefix4, prefix6;	      /* on-link prefix: 0 = 24 / 64 */
};
/* The host-side vif name of NIC idx of domain (collision-free, see
 * engine/netid_handover.c). */
void smg_netid_vif_name(const char *domain, unsigned idx,
			char out[static SMG_NETID_IFNAME_MAX]);
/* Name and fill the identity of NIC number idx of domain. */
int smg_netid_from_nic(const struct smg_netid_host *host, const char *domain,
		       unsigned idx, const struct smg_nic *nic, struct smg_netid *out);
/* Destination before resume: build every NIC (vifs down). On failure the
 * ones already built are removed again. */
int smg_netid_dest_prepare(const struct smg_netid_host *host, const char *domain,
			   const struct smg_nic *nics, unsigned n);
/* Destination at resume: vifs up, then start the announcement (join it
 * with smg_announce_join after DONE). */
int smg_netid_dest_resume(const struct smg_netid_host *host, const char *domain,
			  const struct smg_nic *nics, unsigned n,
			  const struct smg_announce_sched *sched,
			  smg_announce_event_fn ev, void *arg, struct smg_announce **out);
/* Source: pause (vifs down), abort (vifs up again), or after commit and on
 * the destination after an abort: remove. Each returns the first error but
 * still handles every NIC. */
int smg_netid_set_links(const struct smg_netid_host *host, const char *domain,
			const struct smg_nic *nics, unsigned n, bool up);
int smg_netid_remove_all(const struct smg_netid_host *host, const char *domain,
			 const struct smg_nic *nics, unsigned n);
/* Source at pause: silence every NIC (XDP drop through bpf_links) for as
 * long as this process lives or until release; a crash undoes it. */
struct smg_netid_hold;
int smg_netid_hold(const struct smg_netid_host *host, const char *domain,
		   const struct smg_nic *nics, unsigned n, struct smg_netid_hold **out);
void smg_netid_release(struct smg_netid_hold *h);
/* After `secmig resolve` on the source, by name only (the domain may be
 * gone): the VM runs here again (vifs up) or elsewhere (NICs removed).
 * *n is how many NICs were found. */
int smg_netid_settle(const struct smg_netid_host *host, const char *domain,
		     bool runs_here, unsigned *n);
/* ==== end network block ================================================== */

#endif
