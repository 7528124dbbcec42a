/* Engine internals shared by source.c, dest.c and xfer.c. */
#ifndef SMG_ENGINE_INTERNAL_H
#define SMG_ENGINE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include <protobuf-c/protobuf-c.h>

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
/* On channel chan: the disks that travel on it, their current phase. */
int smg_engine_disks_send(struct smg_engine_disks *e, struct smg_session *s,
			  unsigned chan, unsigned nchan, bool final,
			  struct smg_ratelim *rl, uint64_t *bytes);
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
int smg_engine_disks_apply(struct smg_engine_disks *e, unsigned chan, unsigned nchan,
			   const uint8_t *p, size_t len);
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

/* --bandwidth: one token bucket shared by the sending channels. */
struct smg_ratelim {
	pthread_mutex_t lock;
	uint64_t rate; /* bytes/s, 0 = unlimited */
	uint64_t next_ns;
};
void smg_ratelim_wait(struct smg_ratelim *rl, size_t bytes);

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
	/* results */
	uint64_t pages, zeros, bytes;
	int err;
	pthread_t tid;
};
void *smg_xfer_send_main(void *arg);
/* Join a channel thread; meanwhile fold the leaves it sets into the tree,
 * so the root after the round (in stop-and-copy: inside the downtime) has
 * only the last few paths left. Only one thread may fold a tree. */
#define SMG_XFER_FOLD_NS 2000000L
void smg_xfer_join_folding(pthread_t tid, struct smg_merkle *mk);

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

struct smg_frame;
/* Destination: answer a RESOLVE_QUERY from the durable outcome records. */
int smg_engine_answer_resolve(struct smg_session *s, const struct smg_recv_opts *o,
			      const struct smg_frame *query);

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
