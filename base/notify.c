/* Service-manager readiness: tell systemd (Type=notify) that a service is
 * listening, and keep its watchdog fed. Without NOTIFY_SOCKET (not started
 * by systemd) every call here does nothing. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <systemd/sd-daemon.h>
#include <time.h>

#include "base/base.h"

static void *heartbeat(void *arg)
{
	uint64_t usec = (uint64_t)(uintptr_t)arg;
	/* Half the watchdog period, as sd_watchdog_enabled(3) recommends. */
	struct timespec ts = {.tv_sec = (time_t)(usec / 2 / 1000000),
			      .tv_nsec = (long)(usec / 2 % 1000000) * 1000};

	for (;;) {
		sd_notify(0, "WATCHDOG=1");
		while (nanosleep(&ts, &ts) != 0)
			;
		ts.tv_sec = (time_t)(usec / 2 / 1000000);
		ts.tv_nsec = (long)(usec / 2 % 1000000) * 1000;
	}
	return NULL;
}

void smg_notify_ready(const char *status)
{
	static atomic_bool beating;
	uint64_t usec = 0;
	pthread_t t;

	sd_notifyf(0, "READY=1\nSTATUS=%s", status);
	if (sd_watchdog_enabled(0, &usec) <= 0 || usec == 0 ||
	    atomic_exchange(&beating, true))
		return;
	if (pthread_create(&t, NULL, heartbeat, (void *)(uintptr_t)usec) == 0)
		pthread_detach(t);
	else
		smg_warn("watchdog heartbeat thread: cannot start");
}

void smg_notify_send(const char *state)
{
	sd_notify(0, state);
}
