/* Keepalive while one side is busy in a long backend call (the Xen restore
 * finishing under libxl, a slow cooperative suspend): PING frames on the
 * given channels every SMG_KEEPALIVE_MS, so the peer's I/O timeout measures
 * silence from a live peer that is still working, not the length of the
 * phase. Only channels whose send side nobody else uses meanwhile. */
#include <errno.h>
#include <time.h>

#include "base/base.h"
#include "engine/internal.h"
#include "proto/proto.h"
#include "transport/transport.h"

static void *ping_main(void *arg)
{
	struct smg_keepalive *k = arg;
	struct timespec due;
	uint64_t t0 = smg_now_ms();
	uint32_t live = k->chan_mask;

	pthread_mutex_lock(&k->lock);
	while (!k->stop && live != 0) {
		clock_gettime(CLOCK_MONOTONIC, &due);
		due.tv_sec += SMG_KEEPALIVE_MS / 1000;
		due.tv_nsec += (long)(SMG_KEEPALIVE_MS % 1000) * 1000000L;
		if (due.tv_nsec >= 1000000000L) {
			due.tv_sec++;
			due.tv_nsec -= 1000000000L;
		}
		if (pthread_cond_timedwait(&k->cond, &k->lock, &due) != ETIMEDOUT ||
		    k->stop)
			continue;
		/* A backend call that never returns must not keep the peer
		 * waiting forever: give up pinging after SMG_KEEPALIVE_MAX_MS. */
		if (smg_now_ms() - t0 > SMG_KEEPALIVE_MAX_MS)
			break;
		for (unsigned c = 0; c < SMG_CHANNELS_MAX; c++)
			if ((live & 1u << c) &&
			    smg_chan_send(k->s, c, SMG_FT_PING, NULL, 0) != SMG_OK)
				live &= ~(1u << c); /* the channel is dead: leave it */
		k->pings++;
	}
	pthread_mutex_unlock(&k->lock);
	return NULL;
}

int smg_keepalive_start(struct smg_keepalive *k, struct smg_session *s,
			uint32_t chan_mask)
{
	pthread_condattr_t ca;

	*k = (struct smg_keepalive){.s = s, .chan_mask = chan_mask};
	pthread_mutex_init(&k->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&k->cond, &ca);
	pthread_condattr_destroy(&ca);
	if (smg_log_thread_create(&k->tid, ping_main, k) != 0) {
		pthread_cond_destroy(&k->cond);
		pthread_mutex_destroy(&k->lock);
		return SMG_ERR_SYS;
	}
	k->running = true;
	return SMG_OK;
}

void smg_keepalive_stop(struct smg_keepalive *k)
{
	if (!k->running)
		return;
	pthread_mutex_lock(&k->lock);
	k->stop = true;
	pthread_cond_signal(&k->cond);
	pthread_mutex_unlock(&k->lock);
	pthread_join(k->tid, NULL);
	pthread_cond_destroy(&k->cond);
	pthread_mutex_destroy(&k->lock);
	k->running = false;
}
