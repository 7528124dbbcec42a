/* Auto-converge for a QEMU VM. QEMU's own vCPU throttle only works inside
 * its own migration, so the engine's throttle percentage becomes a duty
 * cycle on the whole QEMU process: stopped (SIGSTOP) for pct % of every
 * 100 ms, running for the rest, as the sim host's writers sleep. Signals go
 * through a pidfd, so a recycled pid is never hit. If the sender dies while
 * QEMU is stopped, the guard sends SIGCONT (qemu_guard.c). */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "base/base.h"
#include "engine/backend/qemu_internal.h"

#define PERIOD_MS 100u

static void sig(int pidfd, int s)
{
	syscall(SYS_pidfd_send_signal, pidfd, s, NULL, 0);
}

static void wait_ms(struct smg_qemu_throttle *t, unsigned ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	ts.tv_sec += ms / 1000 + ts.tv_nsec / 1000000000L;
	ts.tv_nsec %= 1000000000L;
	while (!t->quit && pthread_cond_timedwait(&t->cond, &t->lock, &ts) == 0)
		;
}

static void *throttle_main(void *arg)
{
	struct smg_qemu_throttle *t = arg;

	pthread_mutex_lock(&t->lock);
	while (!t->quit) {
		unsigned pct = t->pct;

		if (pct == 0) {
			pthread_cond_wait(&t->cond, &t->lock);
			continue;
		}
		sig(t->pidfd, SIGSTOP);
		wait_ms(t, PERIOD_MS * pct / 100);
		sig(t->pidfd, SIGCONT);
		if (!t->quit)
			wait_ms(t, PERIOD_MS - PERIOD_MS * pct / 100);
	}
	pthread_mutex_unlock(&t->lock);
	sig(t->pidfd, SIGCONT);
	return NULL;
}

int smg_qemu_throttle_set(struct smg_qemu_throttle *t, int pidfd, unsigned pct)
{
	if (pct > 99)
		pct = 99;
	if (!t->running) {
		if (pct == 0)
			return SMG_OK;
		pthread_mutex_init(&t->lock, NULL);
		pthread_cond_init(&t->cond, NULL);
		t->pidfd = pidfd;
		t->quit = false;
		t->pct = pct;
		if (pthread_create(&t->tid, NULL, throttle_main, t) != 0) {
			pthread_mutex_destroy(&t->lock);
			pthread_cond_destroy(&t->cond);
			return SMG_ERR_SYS;
		}
		t->running = true;
		smg_info("qemu: throttled to %u%% of the time", 100 - pct);
		return SMG_OK;
	}
	pthread_mutex_lock(&t->lock);
	t->pct = pct;
	pthread_cond_broadcast(&t->cond);
	pthread_mutex_unlock(&t->lock);
	return SMG_OK;
}

void smg_qemu_throttle_stop(struct smg_qemu_throttle *t)
{
	if (!t->running)
		return;
	pthread_mutex_lock(&t->lock);
	t->quit = true;
	pthread_cond_broadcast(&t->cond);
	pthread_mutex_unlock(&t->lock);
	pthread_join(t->tid, NULL); /* it sends the last SIGCONT */
	pthread_mutex_destroy(&t->lock);
	pthread_cond_destroy(&t->cond);
	t->running = false;
}
