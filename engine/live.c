/* The live view of one running migration: what `secmig status` shows, and
 * the door through which signals, `secmig cancel` and `secmig tune` reach
 * the engine (DESIGN §7, §9). The engine updates it under the lock; other
 * threads read snapshots and set requests.
 *
 * Cancellation is linearised with the hand-over by the same lock: a cancel
 * that comes before smg_live_commit() wins (the engine aborts in order), one
 * that comes after is refused, so a migration past COMMIT always completes
 * or ends in doubt, never half-aborted. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/base.h"
#include "engine/internal.h"
#include "transport/transport.h"

int smg_live_new(const char *role, struct smg_live **out)
{
	struct smg_live *l;
	struct timespec ts;

	*out = NULL;
	if ((l = calloc(1, sizeof(*l))) == NULL)
		return SMG_ERR_NOMEM;
	pthread_mutex_init(&l->lock, NULL);
	snprintf(l->st.role, sizeof(l->st.role), "%s", role);
	l->st.eta_s = -1;
	l->t0_ms = smg_now_ms();
	clock_gettime(CLOCK_REALTIME, &ts);
	l->st.started_unix_ms =
	    (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
	*out = l;
	return SMG_OK;
}

void smg_live_free(struct smg_live *l)
{
	if (l == NULL)
		return;
	pthread_mutex_destroy(&l->lock);
	free(l);
}

void smg_live_lock(struct smg_live *l)
{
	if (l != NULL)
		pthread_mutex_lock(&l->lock);
}

void smg_live_unlock(struct smg_live *l)
{
	if (l != NULL)
		pthread_mutex_unlock(&l->lock);
}

void smg_live_get(struct smg_live *l, struct smg_live_status *out)
{
	pthread_mutex_lock(&l->lock);
	*out = l->st;
	if (l->rx_bytes != NULL) {
		uint64_t ms = smg_now_ms() - l->t0_ms;
		out->bytes = atomic_load(l->rx_bytes);
		out->round_done = atomic_load(l->rx_pages) + atomic_load(l->rx_zeros);
		out->copied_pages =
		    out->round_done < out->ram_pages ? out->round_done : out->ram_pages;
		/* the receiver measures no rounds: its mean receive rate */
		out->rate = ms > 0 ? (double)out->bytes * 1000.0 / (double)ms : 0;
	}
	pthread_mutex_unlock(&l->lock);
}

int smg_live_cancel(struct smg_live *l, const char *why)
{
	int r = SMG_OK;

	pthread_mutex_lock(&l->lock);
	atomic_store(&l->poked, true);
	if (l->past_commit) {
		r = SMG_ERR_STATE;
	} else if (!atomic_load(&l->cancel)) {
		snprintf(l->why, sizeof(l->why), "%s", why);
		atomic_store(&l->cancel, true);
		l->st.cancelling = true;
		if (l->s != NULL)
			smg_session_interrupt(l->s);
	}
	pthread_mutex_unlock(&l->lock);
	return r;
}

int smg_live_tune(struct smg_live *l, uint64_t bandwidth, unsigned max_downtime_ms)
{
	int r = SMG_OK;

	pthread_mutex_lock(&l->lock);
	if (l->frozen || l->past_commit || strcmp(l->st.role, "send") != 0) {
		r = SMG_ERR_STATE;
	} else {
		if (bandwidth != 0) {
			l->st.bandwidth = bandwidth == UINT64_MAX ? 0 : bandwidth;
			if (l->rl != NULL)
				atomic_store(&l->rl->rate, l->st.bandwidth);
		}
		if (max_downtime_ms != 0)
			l->st.budget_ms = max_downtime_ms;
	}
	pthread_mutex_unlock(&l->lock);
	return r;
}

void smg_live_attach(struct smg_live *l, struct smg_session *s, struct smg_ratelim *rl)
{
	if (l == NULL)
		return;
	pthread_mutex_lock(&l->lock);
	l->s = s;
	l->rl = rl;
	if (rl != NULL) {
		atomic_store(&rl->rate, l->st.bandwidth);
		rl->cancel = &l->cancel;
	}
	/* a cancel that came while the session was being set up */
	if (s != NULL && atomic_load(&l->cancel))
		smg_session_interrupt(s);
	pthread_mutex_unlock(&l->lock);
}

void smg_live_attach_rx(struct smg_live *l, const _Atomic uint64_t *bytes,
			const _Atomic uint64_t *pages, const _Atomic uint64_t *zeros)
{
	if (l == NULL)
		return;
	pthread_mutex_lock(&l->lock);
	l->rx_bytes = bytes;
	l->rx_pages = pages;
	l->rx_zeros = zeros;
	pthread_mutex_unlock(&l->lock);
}

void smg_live_detach(struct smg_live *l)
{
	if (l == NULL)
		return;
	pthread_mutex_lock(&l->lock);
	if (l->rx_bytes != NULL) {
		l->st.bytes = atomic_load(l->rx_bytes);
		l->st.round_done = atomic_load(l->rx_pages) + atomic_load(l->rx_zeros);
	}
	l->s = NULL;
	l->rl = NULL;
	l->rx_bytes = l->rx_pages = l->rx_zeros = NULL;
	pthread_mutex_unlock(&l->lock);
}

bool smg_live_cancelled(struct smg_live *l)
{
	return l != NULL && atomic_load(&l->cancel);
}

bool smg_live_poked(struct smg_live *l)
{
	return l != NULL && atomic_load(&l->poked);
}

const char *smg_live_why(struct smg_live *l)
{
	return l != NULL && l->why[0] != '\0' ? l->why : "cancelled";
}

bool smg_live_commit(struct smg_live *l)
{
	bool ok;

	if (l == NULL)
		return true;
	pthread_mutex_lock(&l->lock);
	ok = !atomic_load(&l->cancel);
	if (ok) {
		l->past_commit = true;
		l->st.committed = true;
	}
	pthread_mutex_unlock(&l->lock);
	return ok;
}

unsigned smg_live_freeze(struct smg_live *l, unsigned budget_ms)
{
	if (l == NULL)
		return budget_ms;
	pthread_mutex_lock(&l->lock);
	l->frozen = true;
	if (l->st.budget_ms != 0)
		budget_ms = l->st.budget_ms;
	pthread_mutex_unlock(&l->lock);
	return budget_ms;
}

unsigned smg_live_budget(struct smg_live *l, unsigned current)
{
	unsigned b;

	if (l == NULL)
		return current;
	pthread_mutex_lock(&l->lock);
	b = l->st.budget_ms != 0 ? l->st.budget_ms : current;
	pthread_mutex_unlock(&l->lock);
	return b;
}
