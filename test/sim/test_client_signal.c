/* A signal handled in the calling process does not fail a sim host call
 * nor shift the replies (fuzz_resolve's set-up failed at random steps:
 * libFuzzer's timer interrupted recvmsg, which a socket timeout keeps from
 * being restarted, and the late reply was then read as the next call's).
 * A sim host in a child process; SIGALRM every 100 us with a handler
 * installed without SA_RESTART; every call must succeed and answer its own
 * request. */
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/base.h"
#include "check.h"
#include "simhost/simhost.h"

#define CALLS 400
#define VM    "name = sig\nmemory = 1M\nvcpus = 1\n"

static volatile sig_atomic_t ticks;

static void on_alarm(int sig)
{
	(void)sig;
	ticks++;
}

int main(void)
{
	char dir[] = "/tmp/smg-sim-signal.XXXXXX", reply[512], cmd[64];
	struct sigaction sa = {.sa_handler = on_alarm}; /* no SA_RESTART */
	struct itimerval it = {{0, 100}, {0, 100}};
	int fd = -1, ok = 0, own = 0;
	pid_t host;

	smg_log_set_level(SMG_LOG_ERROR);
	if (mkdtemp(dir) == NULL)
		return T_SKIP;
	if ((host = fork()) == 0)
		_exit(smg_sim_host_run(dir) == SMG_OK ? 0 : 1);
	for (int i = 0; i < 500 && smg_sim_client_connect(dir, &fd) != SMG_OK; i++)
		usleep(10000);
	CHECK(fd >= 0);
	if (fd >= 0) {
		CHECK_EQ(smg_sim_client_bound(fd, SMG_SIM_CALL_TIMEOUT_MS), 0);
		CHECK_EQ(smg_sim_client_call(fd, "CREATE", VM, strlen(VM), reply,
					     sizeof(reply), NULL),
			 0);
		sigaction(SIGALRM, &sa, NULL);
		setitimer(ITIMER_REAL, &it, NULL);
		for (int i = 0; i < CALLS; i++) {
			/* two requests with different answers: a shifted
			 * reply shows */
			bool list = i % 2 == 0;
			int r = smg_sim_client_call(fd, list ? "LIST" : "VTPM sig", NULL,
						    0, reply, sizeof(reply), NULL);
			ok += list ? r == SMG_OK : r != SMG_OK;
			own += list ? strncmp(reply, "sig ", 4) == 0
				    : strstr(reply, "no vTPM") != NULL;
		}
		setitimer(ITIMER_REAL, &(struct itimerval){0}, NULL);
		CHECK(ticks > 0);
		CHECK_EQ(ok, CALLS);
		CHECK_EQ(own, CALLS);
		close(fd);
	}
	kill(host, SIGTERM);
	waitpid(host, NULL, 0);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	CHECK_EQ(system(cmd), 0);
	return check_result("test_sim_client_signal");
}
