/* Engine internals shared by source.c, dest.c and xfer.c. */
#ifndef SMG_ENGINE_INTERNAL_H
#define SMG_ENGINE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include <protobuf-c/protobuf-c.h>

#include "audit/audit.h"
#include "base/base.h"
#include "engine/backend.h"
#include "engine/engine.h"
#include "storage/storage.h"

/* ---- the VM's disks (engine/disks.c), through the host's disk service --- */
#define SMG_DISK_EXTRA_ROUNDS 8 /* rounds memory would not need, for disks */

struct smg_engine_disks;
struct smg_session;
struct smg_ratelim;
/* Source: disk i of the domain is the service's disk info->disks[i].path
 * (named D.i); sock is the service's control socket or its directory. */
int smg_engine_disks_src_open(const struct smg_domain_info *info, const char *sock,
			      struct smg_engine_disks **out);
/* Start the synthetic guest disk workload (smg_send_opts.disk_workload). */
int smg_engine_disks_workload(struct smg_engine_disks *e, const char *spec);
unsigned smg_engine_disks_count(const struct smg_engine_disks *e);
void smg_engine_disks_spec(const struct smg_engine_disks *e, unsigned i, uint64_t *size,
			   uint32_t *chunk);
int smg_engine_disks_begin(struct smg_engine_disks *e, enum smg_stg_mode mode);
/* On channel chan, the disks that travel on it (i % nchan == chan), their
 * current phase, a record frame at a time: start asks the disk service for
 * the first frame; step(wait=false) sends what has arrived, if anything,
 * and asks for the next (the channel thread calls it between its page
 * frames, so the service reads while the thread encrypts memory);
 * finish waits for and sends the rest. bytes adds the frames' bytes. */
struct smg_disk_pump {
	struct smg_engine_disks *e;
	struct smg_session *s;
	unsigned chan, nchan;
	bool final, started;
	bool begun;   /* a bulk frame is begun for the answer in progress */
	int room_err; /* why the channel gave no frame for it (0: it did) */
	struct smg_ratelim *rl;
	uint64_t *bytes;
	unsigned disk;	   /* the disk in progress */
	const char *phase; /* its phase ("bulk", "iter", "final"); NULL: done */
};
int smg_disk_pump_start(struct smg_disk_pump *p, struct smg_engine_disks *e,
			struct smg_session *s, unsigned chan, unsigned nchan, bool final,
			struct smg_ratelim *rl, uint64_t *bytes);
int smg_disk_pump_step(struct smg_disk_pump *p, bool wait);
bool smg_disk_pump_done(const struct smg_disk_pump *p);
int smg_disk_pump_finish(struct smg_disk_pump *p);
/* The disks' delta for the stop rule, summed over the disks: chunks and
 * bytes a FINAL pass would carry now, bytes of bulk copy still to go. */
int smg_engine_disks_pending(struct smg_engine_disks *e, struct smg_stg_pending *p);
/* Bytes the pause may carry for all disks (WAIO's hold-back limit). */
int smg_engine_disks_budget(struct smg_engine_disks *e, uint64_t bytes);
int smg_engine_disks_pause(struct smg_engine_disks *e);
int smg_engine_disks_src_root(struct smg_engine_disks *e, unsigned i,
			      uint8_t root[SMG_DIGEST_LEN]);
/* Source: COMMIT is about to be recorded (the disks stay held if this
 * process dies now). Destination: COMMIT was received (the images are kept
 * if this process dies now). */
int smg_engine_disks_commit(struct smg_engine_disks *e);
/* Source: end tracking (before COMMIT: merge WAIO writes back, release I/O;
 * after DONE: the service drops its copy). */
int smg_engine_disks_end(struct smg_engine_disks *e, bool committed);
/* Destination: one new disk of the host's disk service per plan disk,
 * under the names the destination chose (plan_check.c: DOMAIN.i). */
int smg_engine_disks_dst_open(const char *sock, const char *const *names, size_t n,
			      const uint64_t *sizes, const uint32_t *chunks,
			      struct smg_engine_disks **out);
/* A DISK_CHUNK frame on chan: checked, handed to the service, its answer
 * collected with the disk's next frame or by drain, which the channel
 * calls at its ROUND_END (any failure then is the round's). */
int smg_engine_disks_apply(struct smg_engine_disks *e, unsigned chan, unsigned nchan,
			   const uint8_t *p, size_t len);
int smg_engine_disks_drain(struct smg_engine_disks *e, unsigned chan, unsigned nchan);
/* Compare each disk's root with the manifest's; fresh (recv --check-memory)
 * also has the service re-hash every image file from scratch. */
int smg_engine_disks_verify(struct smg_engine_disks *e, size_t n_roots,
			    const ProtobufCBinaryData *roots, bool fresh);
/* Destination, at resume: the guest's I/O is let through. */
int smg_engine_disks_resume(struct smg_engine_disks *e);
/* Destination, resolve: release the committed disks of domain whose
 * receiver died before resuming them (sock: the disk service). */
int smg_engine_disks_resume_committed(const char *sock, const char *domain, unsigned *n);
/* Destination before COMMIT: remove the incoming images. */
void smg_engine_disks_discard(struct smg_engine_disks *e);
/* Destination after a failed verification: keep the incoming disks in the
 * disk service (committed, never resumed) and name them in dir/disks (the
 * quarantine) instead; frees e like discard. */
int smg_engine_disks_quarantine(struct smg_engine_disks *e, const char *dir);
void smg_engine_disks_free(struct smg_engine_disks *e);

/* ---- the destination's answer to a plan (engine/plan_check.c) ----------- */
struct ProtobufCMessage;
struct Smg__Plan;
/* Match the plan against this host's definitions: SMG_OK with the build
 * filled (disk service names D.i, their images under disk_dir, matched
 * NICs), or SMG_ERR_POLICY with the reason in b->why. *disk_total: bytes
 * of disk the plan asks for. */
int smg_plan_check(const struct Smg__Plan *p, const struct smg_hostdef *d,
		   const char *peer, const char *disk_dir, struct smg_vm_build *b,
		   uint64_t *disk_total);
int smg_capacity_reserve(struct smg_capacity *c, const char *peer, uint64_t memory,
			 uint64_t disk, char *why, size_t why_len);
void smg_capacity_release(struct smg_capacity *c, const char *peer, uint64_t memory,
			  uint64_t disk);
/* Would smg_capacity_reserve succeed now? Nothing is reserved. */
int smg_capacity_check(struct smg_capacity *c, const char *peer, uint64_t memory,
		       uint64_t disk, char *why, size_t why_len);

/* Pages go to channels in groups so that a page always travels on the same
 * channel: a later version can never overtake an earlier one. */
#define SMG_XFER_GROUP_SHIFT 9 /* 512 pages per group */
/* Pages per read_pages call on the source (a run the backend can copy in
 * one go, e.g. one preadv); at most a frame's worth. */
#define SMG_XFER_BATCH 64

static inline unsigned smg_xfer_chan_of(uint64_t pfn, unsigned nchan)
{
	return (unsigned)((pfn >> SMG_XFER_GROUP_SHIFT) % nchan);
}

/* --bandwidth: one token bucket shared by the sending channels. It is also
 * where every sending path passes once per frame, so it counts progress and
 * is the cancellation point of a round. */
struct smg_ratelim {
	pthread_mutex_t lock;
	_Atomic uint64_t rate; /* bytes/s, 0 = unlimited; secmig tune changes it */
	uint64_t next_ns;
	_Atomic uint64_t bytes, pages; /* sent so far (pages: incl. zero records) */
	_Atomic uint64_t page_bytes;   /* of bytes, those of page frames */
	const _Atomic bool *cancel;    /* NULL or set: the next frame fails */
	/* The destination spoke on channel 0 during a round (it says nothing
	 * there then but ABORT): the next frame fails, the source reads why. */
	_Atomic bool peer_spoke;
};
/* Pace one frame of `bytes`; SMG_ERR_CANCELLED once a cancel is set,
 * SMG_ERR_ABORTED once the peer spoke. */
int smg_ratelim_wait(struct smg_ratelim *rl, size_t bytes);
/* Count pages handled (sent or zero records) and their frame bytes, for
 * the progress line (the rest of `bytes` is disk data). */
void smg_ratelim_pages(struct smg_ratelim *rl, uint64_t pages, uint64_t bytes);

/* Right where it happened (errno is per thread): a full disk or quota
 * becomes SMG_ERR_DISK_FULL, no memory SMG_ERR_CAPACITY; anything else
 * passes through. */
int smg_err_classify(int err);

/* ---- the live view of a migration (engine/live.c) ---------------------- */
struct smg_live {
	pthread_mutex_t lock;
	struct smg_live_status st;
	struct smg_session *s;	/* interrupted on cancel while attached */
	struct smg_ratelim *rl; /* its rate is the live bandwidth cap */
	/* destination: its receive counters while attached */
	const _Atomic uint64_t *rx_bytes, *rx_pages, *rx_zeros;
	_Atomic bool cancel; /* accepted cancel (before COMMIT) */
	_Atomic bool poked;  /* any cancel request, accepted or deferred */
	bool past_commit;    /* the engine passed the point of no return */
	bool frozen;	     /* stop-and-copy began: tuning is over */
	uint64_t t0_ms;	     /* monotonic start: the receiver's mean rate */
	char why[64];
};
/* The engine's side; every function accepts l == NULL (no live view). */
void smg_live_lock(struct smg_live *l);
void smg_live_unlock(struct smg_live *l);
void smg_live_attach(struct smg_live *l, struct smg_session *s, struct smg_ratelim *rl);
void smg_live_attach_rx(struct smg_live *l, const _Atomic uint64_t *bytes,
			const _Atomic uint64_t *pages, const _Atomic uint64_t *zeros);
/* Before the session, the rate limiter or the counters go away. */
void smg_live_detach(struct smg_live *l);
bool smg_live_cancelled(struct smg_live *l);
bool smg_live_poked(struct smg_live *l);
const char *smg_live_why(struct smg_live *l);
/* The point of no return (just before COMMIT is recorded, or on the
 * destination before it is accepted): false if a cancel came first; from
 * true on every cancel is refused. */
bool smg_live_commit(struct smg_live *l);
/* Stop-and-copy began: no more tuning; the budget in force is returned. */
unsigned smg_live_freeze(struct smg_live *l, unsigned budget_ms);
/* The budget now in force (tune may have changed it). */
unsigned smg_live_budget(struct smg_live *l, unsigned current);

/* One channel's share of a source round. */
struct smg_xfer_send {
	struct smg_session *s;
	struct smg_backend *be;
	struct smg_merkle *mk;
	struct smg_ratelim *rl;
	const uint64_t *bitmap;
	uint64_t npages;
	uint32_t page_size;
	uint32_t round;
	unsigned chan, nchan;
	struct smg_engine_disks *disks; /* NULL: none */
	bool final;
	struct smg_disk_pump pump; /* this channel's disks, between page frames */
	/* results */
	uint64_t pages, zeros, bytes;
	int err;
	pthread_t tid;
};
void *smg_xfer_send_main(void *arg);
/* While the source joins its channel threads, it folds the leaves they set
 * into the tree this often, so the root after the round (in stop-and-copy:
 * inside the downtime) has only the last few paths left. Only one thread
 * may fold a tree. */
#define SMG_XFER_FOLD_NS 2000000L

/* Destination: what the control thread and the channel threads share. */
struct smg_xfer_dest {
	struct smg_session *s;
	struct smg_backend *be;
	struct smg_merkle *mk;
	uint64_t npages;
	uint32_t page_size;
	unsigned nchan;
	struct smg_engine_disks *disks;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	uint32_t known_round; /* highest ROUND_START seen + 1 */
	int64_t final_round;  /* -1 until the final ROUND_START */
	bool stop;	      /* control thread gave up: channel threads drain */
	unsigned chans_done;  /* channel threads past their final ROUND_END or failed */
	_Atomic uint64_t pages, zeros, bytes;
	_Atomic int err;
};

/* One channel's receive state; channel 0's is driven by the control thread. */
struct smg_xfer_recv {
	struct smg_xfer_dest *d;
	unsigned chan;
	uint32_t round; /* the channel's current round: ROUND_ENDs it handled */
	bool finished;	/* handled the final round's ROUND_END */
	/* this round: disk frames, and page frames that came after the first
	 * of them (memory and disks interleaved; logged at ROUND_END) */
	uint32_t disk_frames, pages_after_disk;
	pthread_t tid;
};
void *smg_xfer_recv_main(void *arg);
/* Handle one frame that arrived on x's channel (PAGES, ZERO_PAGES,
 * DISK_CHUNK, ROUND_END), in sequence or SMG_ERR_STATE at once. */
int smg_xfer_recv_frame(struct smg_xfer_recv *x, uint8_t type, const uint8_t *p,
			size_t len);

/* ---- bounded waits (engine/wait.c) --------------------------------------- */
/* A condition variable on CLOCK_MONOTONIC, for smg_engine_cond_wait. */
int smg_engine_cond_init(pthread_cond_t *cv);
/* One slice of a wait (mu held) that began at since and waits for frames
 * of session s to change what cv guards: SMG_OK (re-check the condition)
 * or SMG_ERR_TIMEOUT once the session's liveness rule gives up. */
int smg_engine_cond_wait(pthread_cond_t *cv, pthread_mutex_t *mu, struct smg_session *s,
			 uint64_t since);

/* PINGs on the channels in chan_mask (bit per channel) every
 * SMG_KEEPALIVE_MS while this side is busy in a long backend call; the
 * caller must not send on those channels until smg_keepalive_stop. */
#define SMG_KEEPALIVE_MS 5000
/* The peer's progress limit (transport.h): it gives up on PINGs then too. */
#define SMG_KEEPALIVE_MAX_MS SMG_PROGRESS_TIMEOUT_MS
struct smg_keepalive {
	struct smg_session *s;
	uint32_t chan_mask;
	pthread_t tid;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool stop, running;
	unsigned pings;
};
int smg_keepalive_start(struct smg_keepalive *k, struct smg_session *s,
			uint32_t chan_mask);
void smg_keepalive_stop(struct smg_keepalive *k);

/* ---- the two state machines' transitions (engine/states.c) -------------
 * Pure functions of (state, input): the engines feed them every frame they
 * read on channel 0 and the outcome of every state's work, and a refusal
 * (SMG_ERR_STATE) is a protocol error -- the peer's frame out of sequence
 * -- or, for a local outcome, the engine's own bug. The states are ordered:
 * everything before SRC_COMMITTED (the source) or DST_RESUMED (the
 * destination) may still abort. */
enum src_state {
	SRC_SETUP = 0, /* PLAN sent: PLAN_ACK due */
	SRC_PRECOPY,   /* live rounds while the VM runs */
	SRC_STOPCOPY,  /* paused: final round, DEVICE_STATE, VTPM_STATE, MANIFEST */
	SRC_HANDOVER,  /* READY due */
	SRC_VERIFIED,  /* READY matched: the re-check, then COMMIT is recorded */
	SRC_COMMITTED, /* COMMIT recorded: it goes out, DONE due */
	SRC_DONE,
	SRC_ABORTED,
	SRC_IN_DOUBT,
};
#define SMG_SRC_STATES (SRC_IN_DOUBT + 1)

enum smg_src_input {
	SRC_IN_PLAN_ACK, /* frame PLAN_ACK (accepted: the state's work decides) */
	SRC_IN_READY,	 /* frame READY */
	SRC_IN_DONE,	 /* frame DONE */
	SRC_IN_ABORT,	 /* frame ABORT */
	SRC_IN_STRAY,	 /* any other frame: never valid from a destination */
	SRC_IN_ROUND,	 /* local: the pre-copy rule asks for another round */
	SRC_IN_STOP,	 /* local: ... says stop and copy */
	SRC_IN_SENT,	 /* local: final round, state and manifest are out */
	SRC_IN_COMMIT,	 /* local: COMMIT is recorded (the point of no return) */
	SRC_IN_FAIL,	 /* local: a failure, a cancel, the link lost */
};
#define SMG_SRC_INPUTS (SRC_IN_FAIL + 1)

enum dst_state {
	DST_WAIT_PLAN = 0, /* the first frame: PLAN due */
	DST_WAIT_ROUND,	   /* channel 0 between rounds: ROUND_START due */
	DST_IN_ROUND,	   /* channel 0's share of a round until its ROUND_END */
	DST_FINAL_ROUND,   /* the same for the final round (the source paused) */
	DST_WAIT_STATE,	   /* DEVICE_STATE due */
	DST_WAIT_VTPM,	   /* VTPM_STATE due (a VM with a vTPM) */
	DST_WAIT_MANIFEST, /* MANIFEST due */
	DST_VERIFY,	   /* nothing read: the copy is checked, READY sent */
	DST_READY_SENT,	   /* COMMIT due */
	DST_RESUMED,
	DST_ABORTED,
};
#define SMG_DST_STATES (DST_ABORTED + 1)

enum smg_dst_input {
	DST_IN_PLAN,	     /* frame PLAN */
	DST_IN_ROUND_START,  /* frame ROUND_START, not the final one */
	DST_IN_FINAL_START,  /* frame ROUND_START{final} */
	DST_IN_DATA,	     /* frame PAGES, ZERO_PAGES or DISK_CHUNK */
	DST_IN_ROUND_END,    /* frame ROUND_END */
	DST_IN_DEVICE_STATE, /* frame DEVICE_STATE */
	DST_IN_VTPM_STATE,   /* frame VTPM_STATE */
	DST_IN_MANIFEST,     /* frame MANIFEST */
	DST_IN_COMMIT,	     /* frame COMMIT */
	DST_IN_ABORT,	     /* frame ABORT */
	DST_IN_STRAY,	     /* any other frame: never valid from a source */
	DST_IN_VERIFIED,     /* local: the copy matches the manifest, READY is out */
	DST_IN_FAIL,	     /* local: a failure, a cancel, the link lost */
};
#define SMG_DST_INPUTS (DST_IN_FAIL + 1)

/* The input a frame of this type is (ROUND_START: the caller tells a
 * final one apart, DST_IN_FINAL_START, once it has parsed it). */
enum smg_src_input smg_src_input_of(uint8_t frame_type);
enum smg_dst_input smg_dst_input_of(uint8_t frame_type);
/* SMG_OK with *next set, or SMG_ERR_STATE (*next untouched): in is not
 * valid in state s. vtpm: the VM has a vTPM (its state follows
 * DEVICE_STATE). */
int smg_src_next_state(enum src_state s, enum smg_src_input in, enum src_state *next);
int smg_dst_next_state(enum dst_state s, enum smg_dst_input in, bool vtpm,
		       enum dst_state *next);
const char *smg_src_state_name(enum src_state s);
const char *smg_dst_state_name(enum dst_state s);

/* ---- the source (engine/source.c, engine/source_round.c) --------------- */

struct smg_send {
	enum src_state state;
	struct smg_session *s;
	const struct smg_send_opts *o;
	struct smg_mig_stats *st;
	struct smg_live *live, *own_live;
	struct smg_backend *be;
	struct smg_domain_info info;
	unsigned nchan;
	uint64_t *pending, words;
	struct smg_merkle *mk;
	struct smg_engine_disks *disks;
	unsigned disk_rounds; /* rounds added for the disks alone */
	uint32_t disk_chunk;  /* largest chunk size of the disks */
	/* The disks' delta, asked of the disk service between rounds only
	 * (the channel threads use its connections during a round). */
	struct smg_stg_pending disk_pending;
	bool planned;		 /* the destination accepted the plan */
	struct smg_audit_mig am; /* evidence and the record (audit/) */
	struct smg_precopy pc;
	struct smg_ratelim rl;
	bool logdirty, paused, peer_abort;
	struct smg_netid_hold *net_hold; /* network: NICs silenced while paused */
	uint32_t round;
	uint32_t dst_load_ms; /* the destination's load time (PLAN_ACK) */
	uint64_t t_start, t_pause;
	uint8_t config_hash[SMG_DIGEST_LEN], manifest_hash[SMG_DIGEST_LEN];
	char why[256]; /* ABORT detail when set (policy) */
	int err;
	/* progress ticks while a round's channel threads run */
	uint64_t tick_ns, tick_bytes;
	double tick_rate;
};
void smg_src_emit(struct smg_send *c, enum smg_event_kind kind, enum smg_phase ph,
		  uint64_t round_pages, uint64_t dirty, const char *info);
/* One round: ROUND_START, every channel's share, ROUND_END on each. */
int smg_src_run_round(struct smg_send *c, bool final, uint64_t *sent_bytes,
		      uint64_t *npages);
/* Disk bytes still to send (0 while the bulk copy runs: counted apart). */
uint64_t smg_src_disk_pending_bytes(const struct smg_send *c);
/* Between rounds: ask the disk service for the disks' delta (disk_pending). */
void smg_src_disk_refresh(struct smg_send *c);

struct smg_frame;
/* Source: the PLAN (or, type SMG_FT_PRECHECK, the same plan to check). */
int smg_src_send_plan(struct smg_send *c, uint8_t type);
/* Destination: answer a PRECHECK (engine/precheck.c). */
int smg_engine_answer_precheck(struct smg_session *s, const struct smg_recv_opts *o,
			       const struct smg_frame *f);
/* Destination: its measured load time for o's backend (PlanAck.load_ms). */
uint32_t smg_dest_load_ms(const struct smg_recv_opts *o);
/* Destination: answer a RESOLVE_QUERY from the durable outcome records. */
int smg_engine_answer_resolve(struct smg_session *s, const struct smg_recv_opts *o,
			      const struct smg_frame *query);

/* ---- quarantine (engine/quarantine.c): a copy that failed verification is
 * kept aside for the operator, never resumed and never silently deleted. */
struct smg_quarantine {
	const char *state_dir, *id, *domain, *source;
	const uint8_t *source_key; /* 32 bytes */
	const char *what;	   /* which check failed, and how */
	const uint8_t *config;	   /* the domain's config as planned */
	size_t config_len;
	struct smg_backend *be; /* the incoming domain, still there */
	uint64_t pages;
	uint32_t page_size;
};
/* DIR/quarantine/ID/: reason, config, memory (the incoming domain's pages,
 * zero pages as holes). path receives the directory. */
int smg_quarantine_save(const struct smg_quarantine *q, char *path, size_t n);

/* Hash of a byte string, BLAKE2b-256. */
void smg_engine_hash(const void *p, size_t len, uint8_t out[SMG_DIGEST_LEN]);

/* ---- guest vTPM (engine/vtpm.c) ------------------------------------------ */
struct smg_frame;
/* Take the running instance's state (domain paused), send VTPM_STATE on
 * channel 0; hash receives the manifest's vtpm_hash. */
int smg_engine_vtpm_send(struct smg_session *s, const char *ctrl,
			 uint8_t hash[SMG_DIGEST_LEN], uint64_t *bytes);
/* Check a VTPM_STATE frame against its hash, load it into the waiting
 * instance at ctrl_port; hash receives the state's hash. */
int smg_engine_vtpm_recv(const struct smg_frame *f, const char *ctrl,
			 uint8_t hash[SMG_DIGEST_LEN]);

#endif
