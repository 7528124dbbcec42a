/* The migration engine: source and destination state machines, pre-copy
 * policy, the hypervisor backend interface, integrity and hand-over. */
#ifndef SMG_ENGINE_H
#define SMG_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/backend.h"
#include "storage/storage.h"

struct smg_session;

/* NULL-terminated list of the backends compiled into this build. */
const char *const *smg_engine_backend_names(void);

#define SMG_MIGRATION_ID_LEN	    32 /* hex characters */
#define SMG_DIGEST_LEN		    32 /* BLAKE2b-256 */
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
	SMG_PRECOPY_ABORT,    /* did not converge and auto-converge is off */
};

struct smg_precopy {
	/* policy */
	enum smg_stop_rule rule;
	unsigned max_downtime_ms;
	unsigned max_rounds;
	bool auto_converge;
	/* state */
	unsigned round;	     /* rounds done */
	unsigned throttle;   /* current throttle % */
	unsigned outpaced;   /* consecutive rounds dirtying outpaced sending */
	uint64_t prev_dirty; /* dirty pages after the previous round */
	double bw;	     /* bytes/s, smoothed */
	double dirty_rate;   /* bytes/s dirtied during the last round */
	double est_ms;	     /* estimated downtime if we stopped now */
};

void smg_precopy_init(struct smg_precopy *pc, enum smg_stop_rule rule,
		      unsigned max_downtime_ms, unsigned max_rounds, bool auto_converge);
/* After a round: bytes it sent, how long it took, and how many pages are
 * dirty now. Returns the decision; on THROTTLE pc->throttle is the new cap. */
enum smg_precopy_decision smg_precopy_next_round(struct smg_precopy *pc,
						 uint64_t bytes_sent, uint64_t round_ns,
						 uint64_t dirty_pages,
						 uint32_t page_size);

/* ---- memory Merkle tree (engine/merkle.c), DESIGN §6 --------------------- */
struct smg_merkle;
int smg_merkle_new(uint64_t leaves, uint32_t page_size, struct smg_merkle **out);
void smg_merkle_free(struct smg_merkle *m);
/* Leaf = BLAKE2b-256(0x00 || page). Safe from several threads on distinct
 * leaves; a leaf changed during an update is picked up by the next one. */
void smg_merkle_set_page(struct smg_merkle *m, uint64_t i, const uint8_t *page,
			 size_t len);
void smg_merkle_set_zero(struct smg_merkle *m, uint64_t i);
/* Recompute the nodes above changed leaves; write the root. */
void smg_merkle_root(struct smg_merkle *m, uint8_t root[SMG_DIGEST_LEN]);
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

struct smg_mig_stats {
	char migration_id[SMG_MIGRATION_ID_LEN + 1];
	char domain[SMG_DOMAIN_NAME_MAX];
	uint64_t ram_bytes;
	uint64_t bytes_sent; /* payload bytes of page frames + state + control */
	uint64_t pages_sent, zero_pages;
	unsigned rounds, throttle;
	uint64_t downtime_ms, total_ms;
	double bandwidth, dirty_rate; /* bytes/s, last measured */
	bool converged, verified;
	uint8_t memory_root[SMG_DIGEST_LEN];
	int err; /* smg_err of the outcome */
};

enum smg_event_kind { SMG_EV_PHASE, SMG_EV_ROUND, SMG_EV_INFO };

struct smg_event {
	enum smg_event_kind kind;
	enum smg_phase phase;
	unsigned round;
	uint64_t round_pages, dirty_pages;
	double est_downtime_ms;
	const char *info; /* SMG_EV_INFO: a short note (throttle, abort reason) */
	const struct smg_mig_stats *st;
};

typedef void (*smg_event_fn)(void *arg, const struct smg_event *ev);

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
	enum smg_stop_rule rule;
	enum smg_stg_mode storage_mode; /* the domain's disks: WAIO (default) or DBT */
	const char *nbd_dir; /* serve each disk over NBD here while migrating; NULL: no */
	/* Synthetic guest disk I/O on every disk while it migrates (the sim
	 * VM's disk workload): "read-hot", "write-heavy", "mixed" or
	 * "trace:FILE" (MSR Cambridge CSV); NULL: none. */
	const char *disk_workload;
	/* Tests: while paused, recompute the memory root from the guest's
	 * memory itself and abort unless it equals the root of what was sent
	 * (proves the dirty log missed nothing). Adds to the downtime. */
	bool check_memory;
	smg_event_fn event;
	void *event_arg;
};

/* Migrate opts->domain over an authenticated session (the caller connected
 * it and frees it afterwards). Returns SMG_OK, SMG_ERR_IN_DOUBT, or the
 * error that aborted the migration (the source VM then runs as before). */
int smg_engine_send(struct smg_session *s, const struct smg_send_opts *opts,
		    struct smg_mig_stats *st);

/* ---- destination ---------------------------------------------------------- */
struct smg_recv_opts {
	const char *backend;
	struct smg_backend_opts bopts;
	const char *state_dir; /* durable outcome records: DIR/outcomes/ID */
	bool check_memory;     /* recompute the memory root from scratch (tests) */
	const char
	    *disk_dir; /* incoming disk images DIR/<domain>.<i>.img; NULL: state_dir */
	smg_event_fn event;
	void *event_arg;
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
/* Ask the destination (over s) about migration id; settle the domain. */
int smg_engine_resolve(struct smg_session *s, struct smg_backend *be, const char *domain,
		       const char *id, enum smg_resolve_outcome *out);

/* ---- durable outcome records on the destination (engine/outcome.c) ------- */
enum smg_outcome {
	SMG_OUTCOME_NONE = 0,
	SMG_OUTCOME_COMMITTED, /* COMMIT received, recorded; resume follows */
	SMG_OUTCOME_RESUMED,
	SMG_OUTCOME_DISCARDED,
	SMG_OUTCOME_RECEIVING, /* plan accepted; not committed (yet) */
};
bool smg_migration_id_valid(const char *id);
/* Create the record only if none exists (O_EXCL): the first of COMMIT and
 * a resolve query's "discard" wins. SMG_ERR_EXISTS otherwise. */
int smg_outcome_create(const char *dir, const char *id, enum smg_outcome o,
		       const char *domain);
int smg_outcome_update(const char *dir, const char *id, enum smg_outcome o,
		       const char *domain);
/* Move an existing record from one state to another under a file lock;
 * SMG_ERR_EXISTS if it is not in `from` any more. One fdatasync. */
int smg_outcome_transition(const char *dir, const char *id, enum smg_outcome from,
			   enum smg_outcome to, const char *domain);
int smg_outcome_read(const char *dir, const char *id, enum smg_outcome *o, char *domain,
		     size_t dlen);

/* Lower-case hex of n bytes into out (2n+1). */
void smg_engine_hex(const uint8_t *p, size_t n, char *out);

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
	SMG_FI_DST_BAD_DISK,	     /* receiver damages one disk block before verify */
	SMG_FI_DST_SLOW_DATA,	     /* receiver's data channels lag in stop-and-copy */
	SMG_FI_MAX_
};
bool smg_fault_on(enum smg_fault f);
/* If f is on: log it and _exit(70) (a crash, no clean-up). */
void smg_fault_crash(enum smg_fault f);

#endif
