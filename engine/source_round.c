/* The source's rounds and what they look like from outside: one round
 * sends ROUND_START, then every channel its share of the pending set in
 * parallel, then ROUND_END on each. While the channel threads run, this
 * thread wakes every SMG_PROGRESS_TICK_MS to measure the rate, refresh the
 * live view (`secmig status`) and emit a progress event, so progress moves
 * with bytes, not rounds. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/base.h"
#include "engine/internal.h"
#include "proto/proto.h"
#include "secmig.pb-c.h"
#include "transport/transport.h"

#define SMG_INLINE_ROUND_PAGES 2048 /* rounds up to 8 MiB run without threads */
#define SMG_PROGRESS_TICK_MS   500
#define RATE_SMOOTH	       0.5 /* weight of the newest tick */

void smg_src_disk_refresh(struct smg_send *c)
{
	if (c->disks == NULL ||
	    smg_engine_disks_pending(c->disks, &c->disk_pending) != SMG_OK)
		memset(&c->disk_pending, 0, sizeof(c->disk_pending));
}

/* What the disks still have to send, as of the last round's end. */
uint64_t smg_src_disk_pending_bytes(const struct smg_send *c)
{
	return c->disk_pending.bytes + c->disk_pending.bulk_left;
}

/* The live view, under its lock; called from the migration's thread only. */
static void live_update(struct smg_send *c, enum smg_phase ph, uint64_t round_pages)
{
	struct smg_live *l = c->live;
	uint64_t bytes = atomic_load(&c->rl.bytes);
	uint64_t page_bytes = atomic_load(&c->rl.page_bytes);

	if (l == NULL)
		return;
	smg_live_lock(l);
	struct smg_live_status *ls = &l->st;
	snprintf(ls->migration_id, sizeof(ls->migration_id), "%s", c->st->migration_id);
	snprintf(ls->domain, sizeof(ls->domain), "%s", c->st->domain);
	snprintf(ls->peer, sizeof(ls->peer), "%s", c->st->peer);
	ls->phase = ph;
	ls->round = c->round;
	if (round_pages != UINT64_MAX)
		ls->round_pages = round_pages;
	ls->ram_pages = c->st->ram_bytes / c->info.page_size; /* populated */
	ls->disk_bytes = c->st->disk_bytes;
	ls->disk_sent = bytes - page_bytes;
	ls->bytes = bytes;
	ls->rate = c->tick_rate > 0 ? c->tick_rate : c->pc.bw;
	ls->dirty_rate = c->pc.dirty_rate;
	ls->est_downtime_ms = c->pc.est_ms;
	ls->throttle = c->pc.throttle;
	if (ls->budget_ms == 0)
		ls->budget_ms = c->pc.max_downtime_ms;
	smg_live_unlock(l);
}

void smg_src_emit(struct smg_send *c, enum smg_event_kind kind, enum smg_phase ph,
		  uint64_t round_pages, uint64_t dirty, const char *info)
{
	struct smg_event ev = {.kind = kind,
			       .phase = ph,
			       .round = c->round,
			       .round_pages = round_pages,
			       .dirty_pages = dirty,
			       .est_downtime_ms = c->pc.est_ms,
			       .info = info,
			       .st = c->st};

	c->st->total_ms = (smg_now_ns() - c->t_start) / 1000000;
	if (kind == SMG_EV_PHASE || kind == SMG_EV_ROUND)
		live_update(c, ph, UINT64_MAX);
	if (c->o->event != NULL)
		c->o->event(c->o->event_arg, &ev);
}

/* Between ticks: what this round has done, the rate, and the ETA. */
static void tick(struct smg_send *c, uint64_t round_pages, uint64_t pages0,
		 enum smg_phase ph)
{
	struct smg_live_status snap;
	uint64_t now = smg_now_ns(), bytes = atomic_load(&c->rl.bytes);
	uint64_t done = atomic_load(&c->rl.pages) - pages0;
	struct smg_event ev = {.kind = SMG_EV_PROGRESS,
			       .phase = ph,
			       .round = c->round,
			       .round_pages = round_pages,
			       .est_downtime_ms = c->pc.est_ms,
			       .st = c->st,
			       .live = &snap};

	if (c->tick_ns != 0 && now > c->tick_ns) {
		double r =
		    (double)(bytes - c->tick_bytes) / ((double)(now - c->tick_ns) / 1e9);
		c->tick_rate = c->tick_rate > 0
				   ? RATE_SMOOTH * r + (1 - RATE_SMOOTH) * c->tick_rate
				   : r;
	}
	c->tick_ns = now;
	c->tick_bytes = bytes;
	live_update(c, ph, round_pages);
	smg_live_lock(c->live);
	if (c->live != NULL) {
		struct smg_live_status *ls = &c->live->st;
		double left = (double)(round_pages > done ? round_pages - done : 0) *
				  c->info.page_size +
			      (double)smg_src_disk_pending_bytes(c);
		ls->round_done = done;
		if (c->round == 0)
			ls->copied_pages = done;
		ls->eta_s = smg_precopy_eta(left, ls->rate, c->pc.dirty_rate);
		snap = *ls;
	}
	smg_live_unlock(c->live);
	if (c->live != NULL && c->o->event != NULL) {
		c->st->total_ms = (now - c->t_start) / 1000000;
		c->o->event(c->o->event_arg, &ev);
	}
}

/* Join a channel thread, ticking while it runs, and folding the leaves the
 * channel threads hashed so far into the tree (stop-and-copy then pays only
 * the last round's paths). Once channel 0's thread is joined (watch), this
 * thread watches channel 0 for the destination speaking (xfer.c watch_peer
 * did until then). */
static void join_ticking(struct smg_send *c, pthread_t tid, uint64_t round_pages,
			 uint64_t pages0, enum smg_phase ph, bool watch)
{
	uint64_t next_tick = smg_now_ns() + SMG_PROGRESS_TICK_MS * 1000000ull;
	uint8_t root[SMG_DIGEST_LEN];
	struct timespec ts;

	for (;;) {
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += SMG_XFER_FOLD_NS;
		ts.tv_sec += ts.tv_nsec / 1000000000L;
		ts.tv_nsec %= 1000000000L;
		if (pthread_timedjoin_np(tid, NULL, &ts) != ETIMEDOUT)
			return;
		smg_merkle_root(c->mk, root);
		if (smg_now_ns() < next_tick)
			continue;
		next_tick = smg_now_ns() + SMG_PROGRESS_TICK_MS * 1000000ull;
		if (watch && smg_chan_has_input(c->s, 0))
			atomic_store(&c->rl.peer_spoke, true);
		tick(c, round_pages, pages0, ph);
	}
}

static uint64_t popcount_bitmap(const uint64_t *b, uint64_t words)
{
	uint64_t n = 0;

	for (uint64_t w = 0; w < words; w++)
		n += (uint64_t)__builtin_popcountll(b[w]);
	return n;
}

int smg_src_run_round(struct smg_send *c, bool final, uint64_t *sent_bytes,
		      uint64_t *npages)
{
	Smg__RoundStart rs = SMG__ROUND_START__INIT;
	struct smg_xfer_send x[SMG_CHANNELS_MAX];
	enum smg_phase ph = final ? SMG_PHASE_STOPCOPY : SMG_PHASE_PRECOPY;
	uint64_t pages0 = atomic_load(&c->rl.pages);
	unsigned started = 0;
	int r;

	*npages = popcount_bitmap(c->pending, c->words);
	*sent_bytes = 0;
	rs.round = c->round;
	rs.pages = *npages;
	rs.final = final;
	if ((r = smg_chan_send_msg(c->s, 0, SMG_FT_ROUND_START, &rs.base)) != SMG_OK)
		return r;
	live_update(c, ph, *npages);
	/* A small round (the last ones) is cheaper to drive from this thread,
	 * channel after channel, than to hand to threads that must first be
	 * scheduled: in the stop-and-copy round that latency is downtime. */
	bool inline_round =
	    *npages <= SMG_INLINE_ROUND_PAGES &&
	    smg_engine_disks_count(c->disks) == 0; /* disks: channels in parallel */
	for (unsigned i = 0; i < c->nchan; i++) {
		x[i] = (struct smg_xfer_send){.s = c->s,
					      .be = c->be,
					      .mk = c->mk,
					      .rl = &c->rl,
					      .bitmap = c->pending,
					      .npages = c->info.pages,
					      .page_size = c->info.page_size,
					      .round = c->round,
					      .chan = i,
					      .nchan = c->nchan,
					      .disks = c->disks,
					      .final = final};
		if (inline_round)
			smg_xfer_send_main(&x[i]);
		else if (smg_log_thread_create(&x[i].tid, smg_xfer_send_main, &x[i]) !=
			 0) {
			r = SMG_ERR_SYS;
			break;
		}
		started++;
	}
	for (unsigned i = 0; i < started; i++) {
		if (!inline_round)
			join_ticking(c, x[i].tid, *npages, pages0, ph, i > 0);
		r = r ?: x[i].err;
		*sent_bytes += x[i].bytes;
		c->st->pages_sent += x[i].pages;
		c->st->zero_pages += x[i].zeros;
	}
	c->st->bytes_sent += *sent_bytes;
	memset(c->pending, 0, c->words * sizeof(uint64_t));
	if (c->round == 0)
		live_update(c, ph, *npages);
	smg_live_lock(c->live);
	if (c->live != NULL) {
		c->live->st.round_done = atomic_load(&c->rl.pages) - pages0;
		if (c->round == 0)
			c->live->st.copied_pages = c->live->st.round_done;
	}
	smg_live_unlock(c->live);
	c->round++;
	c->st->rounds = c->round;
	return r;
}
