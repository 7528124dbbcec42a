/* Writer threads, the sim domain's "vCPUs": each dirties its own frames at
 * its share of the configured rate; pause parks them between writes and
 * throttle caps their time like a vCPU cap (auto-converge). */
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "base/base.h"
#include "simhost/simhost.h"

#define PARK_POLL_NS	100000ull   /* 100 us while paused */
#define IDLE_POLL_NS	5000000ull  /* 5 ms when there is nothing to write */
#define AHEAD_SLEEP_NS	500000ull   /* sleep once half a ms ahead of the pace */
#define BEHIND_RESET_NS 50000000ull /* never burst to catch up more than 50 ms */

struct vcpu_thread {
	struct smg_sim_mem *m;
	unsigned v;
	pthread_t tid;
};

struct smg_sim_vcpus {
	unsigned n;
	struct vcpu_thread t[SMG_SIM_VCPUS_MAX];
};

static void sleep_ns(uint64_t ns)
{
	struct timespec ts = {.tv_sec = (time_t)(ns / 1000000000ull),
			      .tv_nsec = (long)(ns % 1000000000ull)};

	nanosleep(&ts, NULL);
}

static void park(struct smg_sim_shared *sh, unsigned v)
{
	atomic_store(&sh->vcpu[v].parked, 1);
	while (atomic_load(&sh->paused) && !atomic_load(&sh->quit))
		sleep_ns(PARK_POLL_NS);
	atomic_store(&sh->vcpu[v].parked, 0);
}

static void *vcpu_main(void *arg)
{
	struct vcpu_thread *t = arg;
	struct smg_sim_shared *sh = t->m->sh;
	uint64_t due = smg_now_ns();

	while (!atomic_load(&sh->quit)) {
		uint64_t rate, now, thr;

		if (atomic_load(&sh->paused)) {
			park(sh, t->v);
			due = smg_now_ns();
			continue;
		}
		thr = atomic_load(&sh->throttle);
		rate = sh->dirty_rate / SMG_SIM_PAGE_SIZE / sh->vcpus * (100 - thr) / 100;
		if (sh->workload == SMG_SIM_IDLE || rate == 0) {
			sleep_ns(IDLE_POLL_NS);
			due = smg_now_ns();
			continue;
		}
		now = smg_now_ns();
		if (due > now + AHEAD_SLEEP_NS) {
			/* In short naps, so a pause never waits on a slow pace. */
			sleep_ns(due - now < IDLE_POLL_NS ? due - now : IDLE_POLL_NS);
			continue;
		}
		if (now > due + BEHIND_RESET_NS)
			due = now;
		smg_sim_write_one(t->m, t->v);
		due += 1000000000ull / rate;
	}
	atomic_store(&sh->vcpu[t->v].parked, 1);
	return NULL;
}

int smg_sim_vcpus_start(struct smg_sim_mem *m, struct smg_sim_vcpus **out)
{
	struct smg_sim_vcpus *vs;

	*out = NULL;
	if ((vs = calloc(1, sizeof(*vs))) == NULL)
		return SMG_ERR_NOMEM;
	atomic_store(&m->sh->quit, 0);
	for (unsigned v = 0; v < m->sh->vcpus; v++) {
		vs->t[v].m = m;
		vs->t[v].v = v;
		atomic_store(&m->sh->vcpu[v].parked, 0);
		if (pthread_create(&vs->t[v].tid, NULL, vcpu_main, &vs->t[v]) != 0) {
			smg_sim_vcpus_stop(vs);
			return SMG_ERR_SYS;
		}
		vs->n++;
	}
	*out = vs;
	return SMG_OK;
}

void smg_sim_vcpus_stop(struct smg_sim_vcpus *vs)
{
	if (vs == NULL)
		return;
	if (vs->n > 0)
		atomic_store(&vs->t[0].m->sh->quit, 1);
	for (unsigned v = 0; v < vs->n; v++)
		pthread_join(vs->t[v].tid, NULL);
	free(vs);
}

void smg_sim_pause(struct smg_sim_mem *m, bool paused)
{
	struct smg_sim_shared *sh = m->sh;

	atomic_store(&sh->paused, paused ? 1 : 0);
	if (!paused)
		return;
	/* A writer that already passed its pause check finishes that one
	 * write and parks before its next; wait for all of them. */
	for (unsigned v = 0; v < sh->vcpus; v++)
		while (!atomic_load(&sh->vcpu[v].parked) && !atomic_load(&sh->quit))
			sleep_ns(PARK_POLL_NS / 4);
}
