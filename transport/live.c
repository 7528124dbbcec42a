/* Session liveness (docs/protocol.md, "Liveness"). Every channel feeds one
 * record: when a byte last moved (received, or accepted by the kernel for
 * sending: the peer is reading) and when something other than a PING last
 * did. A blocked wait on any channel asks the record, not its own clock, so
 * a channel with nothing to carry in this round is not dead while the others
 * work; a peer that only pings is dead after the progress limit; and a
 * hard deadline (the session ceiling, or the cut-off after an abort) ends
 * every wait and every frame call. */
#include <stdatomic.h>

#include "transport/internal.h"

void smg_live_init(struct live *l, const struct smg_session_opts *o, const char *peer)
{
	uint64_t now = smg_now_ms();

	l->idle_ms = o->io_timeout_ms ? o->io_timeout_ms : SMG_IO_TIMEOUT_MS;
	l->progress_limit_ms =
	    o->progress_timeout_ms ? o->progress_timeout_ms : SMG_PROGRESS_TIMEOUT_MS;
	atomic_store(&l->moved_ms, now);
	atomic_store(&l->progress_ms, now);
	atomic_store(&l->busy, 0);
	atomic_store(&l->local_ms, now);
	atomic_store(&l->cutoff_ms,
		     now + (o->session_timeout_ms ? o->session_timeout_ms
						  : SMG_SESSION_TIMEOUT_MS));
	l->peer = peer;
}

void smg_live_moved(struct live *l, bool progress)
{
	uint64_t now = smg_now_ms();

	/* Plain stores: every writer stores "now", so the newest value is the
	 * one that counts and a lost race costs a few microseconds. */
	atomic_store_explicit(&l->moved_ms, now, memory_order_relaxed);
	if (progress)
		atomic_store_explicit(&l->progress_ms, now, memory_order_relaxed);
}

bool smg_live_cut_off(struct live *l)
{
	uint64_t cut = atomic_load(&l->cutoff_ms);

	return cut != 0 && smg_now_ms() >= cut;
}

static uint64_t later(uint64_t a, uint64_t b)
{
	return a > b ? a : b;
}

enum live_verdict smg_live_check(struct live *l, uint64_t since, int *left_ms)
{
	uint64_t now = smg_now_ms(), cut = atomic_load(&l->cutoff_ms);
	/* A wait never fails sooner than its own limit after it began: the
	 * time this side spent busy elsewhere is not the peer's silence. Nor
	 * is the time another thread of this side spends working locally
	 * (smg_session_busy): the peer cannot be heard while nobody reads. */
	uint64_t local = atomic_load(&l->busy) > 0 ? now : atomic_load(&l->local_ms);
	uint64_t idle_end =
	    later(later(since, local),
		  atomic_load_explicit(&l->moved_ms, memory_order_relaxed)) +
	    l->idle_ms;
	uint64_t prog_end =
	    later(since, atomic_load_explicit(&l->progress_ms, memory_order_relaxed)) +
	    l->progress_limit_ms;
	uint64_t end = idle_end < prog_end ? idle_end : prog_end;

	*left_ms = 0;
	if (cut != 0 && now >= cut)
		return LIVE_CUTOFF;
	if (now >= idle_end)
		return LIVE_IDLE;
	if (now >= prog_end)
		return LIVE_PINGS;
	if (cut != 0 && cut < end)
		end = cut;
	*left_ms = end - now < WAIT_SLICE_MS ? (int)(end - now) : WAIT_SLICE_MS;
	return LIVE_OK;
}

int smg_live_fail(struct live *l, enum live_verdict v, const char *what)
{
	if (v == LIVE_IDLE)
		smg_peer_log(SMG_LOG_ERROR,
			     "%s: session with '%s' silent on every channel for %u ms",
			     what, l->peer, l->idle_ms);
	else if (v == LIVE_PINGS)
		smg_peer_log(SMG_LOG_ERROR,
			     "%s: session with '%s' moved nothing but PINGs for %u ms",
			     what, l->peer, l->progress_limit_ms);
	else
		smg_peer_log(SMG_LOG_ERROR, "%s: session with '%s' reached its deadline",
			     what, l->peer);
	return SMG_ERR_TIMEOUT;
}

int smg_session_alive(struct smg_session *s, uint64_t since_ms)
{
	int left;
	enum live_verdict v = smg_live_check(&s->live, since_ms, &left);

	return v == LIVE_OK ? SMG_OK : smg_live_fail(&s->live, v, "wait");
}

void smg_session_busy(struct smg_session *s, bool begin)
{
	if (s == NULL)
		return; /* no session (fuzz_engine_frame drives xfer without one) */
	if (begin) {
		atomic_fetch_add(&s->live.busy, 1);
		return;
	}
	/* The clock first: a waiter that sees busy drop to 0 must not read
	 * an older local_ms. */
	atomic_store(&s->live.local_ms, smg_now_ms());
	atomic_fetch_sub(&s->live.busy, 1);
}

void smg_session_set_deadline(struct smg_session *s, unsigned ms)
{
	uint64_t want = smg_now_ms() + ms, cur = atomic_load(&s->live.cutoff_ms);

	while ((cur == 0 || want < cur) &&
	       !atomic_compare_exchange_weak(&s->live.cutoff_ms, &cur, want))
		;
}

unsigned smg_session_idle_limit(const struct smg_session *s)
{
	return s->live.idle_ms;
}
