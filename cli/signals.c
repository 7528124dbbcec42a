/* Signals of a migration process (DESIGN §7): SIGINT (Ctrl-C), SIGTERM,
 * SIGHUP (the ssh session or terminal went away) and SIGPIPE do not kill
 * it. They are blocked in every thread and taken by one thread with
 * sigwait(), which cancels the migration: before COMMIT the engine aborts
 * in order (ABORT to the peer, the VM running here, a result, exit 13);
 * from COMMIT on the cancel is refused and the hand-over finishes or ends
 * in doubt. A signal the parent left ignored (nohup, a background job of a
 * script) stays ignored, as for any well-behaved Unix tool. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "cli/migrate.h"

#define STOP_SIGNAL SIGUSR2 /* ends the thread */

struct smg_cli_signals {
	struct smg_live *live;
	sigset_t set;
	pthread_t tid;
};

static void *sig_main(void *arg)
{
	struct smg_cli_signals *sg = arg;
	int sig;

	for (;;) {
		if (sigwait(&sg->set, &sig) != 0 || sig == STOP_SIGNAL)
			break;
		const char *name = sigabbrev_np(sig);
		char why[32];
		snprintf(why, sizeof(why), "SIG%s", name != NULL ? name : "?");
		if (smg_live_cancel(sg->live, why) == SMG_OK)
			smg_warn("%s: cancelling the migration; the VM keeps running on "
				 "the source",
				 why);
		else
			smg_warn("%s: the hand-over is past COMMIT and cannot be "
				 "cancelled; it completes or ends in doubt (then run "
				 "'secmig resolve')",
				 why);
	}
	return NULL;
}

int smg_cli_signals_start(struct smg_live *l, struct smg_cli_signals **out)
{
	static const int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGPIPE};
	struct smg_cli_signals *sg;
	struct sigaction old;

	*out = NULL;
	if ((sg = calloc(1, sizeof(*sg))) == NULL)
		return SMG_ERR_NOMEM;
	sg->live = l;
	sigemptyset(&sg->set);
	for (size_t i = 0; i < SMG_ARRAY_LEN(sigs); i++)
		if (sigaction(sigs[i], NULL, &old) == 0 && old.sa_handler != SIG_IGN)
			sigaddset(&sg->set, sigs[i]);
	/* SIGPIPE stays blocked even when ignored: writes then fail with
	 * EPIPE, which the output layer reports as a lost reader. */
	sigset_t block = sg->set;
	sigaddset(&block, SIGPIPE);
	sigaddset(&block, STOP_SIGNAL);
	sigaddset(&sg->set, STOP_SIGNAL);
	if (pthread_sigmask(SIG_BLOCK, &block, NULL) != 0 ||
	    pthread_create(&sg->tid, NULL, sig_main, sg) != 0) {
		free(sg);
		return SMG_ERR_SYS;
	}
	*out = sg;
	return SMG_OK;
}

void smg_cli_signals_stop(struct smg_cli_signals *sg)
{
	if (sg == NULL)
		return;
	pthread_kill(sg->tid, STOP_SIGNAL);
	pthread_join(sg->tid, NULL);
	free(sg);
}
