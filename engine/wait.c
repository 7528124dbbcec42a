/* Bounded waits: every condition-variable wait of the engine that depends
 * on the peer's frames runs in short slices and asks the session's
 * liveness rule (docs/protocol.md, "Liveness") after each, so no wait
 * outlives a dead or merely pinging peer. */
#include <time.h>

#include "base/base.h"
#include "engine/internal.h"
#include "transport/transport.h"

#define COND_SLICE_NS 100000000L /* 100 ms */

int smg_engine_cond_init(pthread_cond_t *cv)
{
	pthread_condattr_t ca;
	int r;

	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	r = pthread_cond_init(cv, &ca);
	pthread_condattr_destroy(&ca);
	return r == 0 ? SMG_OK : SMG_ERR_SYS;
}

int smg_engine_cond_wait(pthread_cond_t *cv, pthread_mutex_t *mu, struct smg_session *s,
			 uint64_t since)
{
	struct timespec due;

	clock_gettime(CLOCK_MONOTONIC, &due);
	due.tv_nsec += COND_SLICE_NS;
	if (due.tv_nsec >= 1000000000L) {
		due.tv_sec++;
		due.tv_nsec -= 1000000000L;
	}
	(void)pthread_cond_timedwait(cv, mu, &due);
	return smg_session_alive(s, since);
}
