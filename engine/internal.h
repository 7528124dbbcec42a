/* Engine internals shared by source.c, dest.c and xfer.c. */
#ifndef SMG_ENGINE_INTERNAL_H
#define SMG_ENGINE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "engine/backend.h"
#include "engine/engine.h"

/* Pages go to channels in groups so that a page always travels on the same
 * channel: a later version can never overtake an earlier one. */
#define SMG_XFER_GROUP_SHIFT 9 /* 512 pages per group */

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
	/* results */
	uint64_t pages, zeros, bytes;
	int err;
	pthread_t tid;
};
void *smg_xfer_send_main(void *arg);

/* Destination: what the control thread and the channel threads share. */
struct smg_xfer_dest {
	struct smg_session *s;
	struct smg_backend *be;
	struct smg_merkle *mk;
	uint64_t npages;
	uint32_t page_size;
	unsigned nchan;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	uint32_t known_round; /* highest ROUND_START seen + 1 */
	int64_t final_round;  /* -1 until the final ROUND_START */
	bool stop;	      /* control thread gave up: channel threads drain */
	_Atomic uint64_t pages, zeros, bytes;
	_Atomic int err;
};

struct smg_xfer_recv {
	struct smg_xfer_dest *d;
	unsigned chan;
	bool finished; /* saw ROUND_END of the final round */
	pthread_t tid;
};
void *smg_xfer_recv_main(void *arg);
/* Handle one frame that arrived on chan (PAGES, ZERO_PAGES, ROUND_END).
 * *final is set once this channel has finished the final round. */
int smg_xfer_recv_frame(struct smg_xfer_dest *d, unsigned chan, uint8_t type,
			const uint8_t *p, size_t len, bool *final);

struct smg_frame;
/* Destination: answer a RESOLVE_QUERY from the durable outcome records. */
int smg_engine_answer_resolve(struct smg_session *s, const struct smg_recv_opts *o,
			      const struct smg_frame *query);

/* Hash of a byte string, BLAKE2b-256. */
void smg_engine_hash(const void *p, size_t len, uint8_t out[SMG_DIGEST_LEN]);

#endif
