/* For the harnesses that need a real backend: a sim host (the sim
 * backend's hypervisor, simhost/daemon.c) serving DIR, and
 * scratch directories. */
#ifndef SMG_FUZZ_SIM_HOST_H
#define SMG_FUZZ_SIM_HOST_H

#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/base.h"
#include "simhost/simhost.h"

static inline int fz_rm_one(const char *path, const struct stat *sb, int flag,
			    struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	if (ftw->level > 0)
		remove(path);
	return 0;
}

/* Remove everything under dir (dir itself stays). */
static inline void fz_rm_under(const char *dir)
{
	nftw(dir, fz_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* The sim host is another process, as a hypervisor is: `secmig sim host`
 * from the fuzzer's own build directory (bash scripts/build.sh fuzz builds
 * it), ended with the fuzzer (SIGTERM when it exits or dies). In-process,
 * its per-connection threads outlived an input and LeakSanitizer took
 * their buffers for leaks of the code under test. */
static pid_t fz_sim_pid = -1;

static inline void fz_sim_stop(void)
{
	if (fz_sim_pid > 0) {
		kill(fz_sim_pid, SIGTERM);
		waitpid(fz_sim_pid, NULL, 0);
		fz_sim_pid = -1;
	}
}

/* Start it on dir and wait for its socket. */
static inline void fz_sim_start(const char *dir)
{
	char exe[PATH_MAX], bin[PATH_MAX + 16];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	char *slash;

	if (n <= 0)
		abort();
	exe[n] = '\0';
	if ((slash = strrchr(exe, '/')) != NULL)
		*slash = '\0';
	snprintf(bin, sizeof(bin), "%s/secmig", exe);
	if (access(bin, X_OK) != 0) {
		fprintf(stderr, "fuzz: %s is missing (bash scripts/build.sh fuzz)\n",
			bin);
		abort();
	}
	if ((fz_sim_pid = fork()) < 0)
		abort();
	if (fz_sim_pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		execl(bin, bin, "--quiet", "sim", "host", "--state-dir", dir,
		      (char *)NULL);
		_exit(127);
	}
	atexit(fz_sim_stop);
	for (int i = 0; i < 1000; i++) {
		int fd;
		if (smg_sim_client_connect(dir, &fd) == SMG_OK) {
			close(fd);
			return;
		}
		usleep(10000);
	}
	abort();
}

/* The harness's world: logs quiet unless FUZZ_VERBOSE, SIGPIPE ignored, a
 * scratch directory base (under /dev/shm when writable, else $TMPDIR or
 * /tmp; removed at exit) with a sim host serving base/sim (simdir). */
static char *fz_world_base;

static inline void fz_world_cleanup(void)
{
	fz_rm_under(fz_world_base);
	rmdir(fz_world_base);
}

static inline void fz_world_init(const char *tag, char *base, size_t nbase, char *simdir,
				 size_t nsim)
{
	const char *tmp = getenv("TMPDIR");

	if (getenv("FUZZ_VERBOSE") == NULL)
		smg_log_set_stream(fopen("/dev/null", "w"));
	signal(SIGPIPE, SIG_IGN);
	snprintf(base, nbase, "%s/smg-fuzz-%s.XXXXXX",
		 access("/dev/shm", W_OK) == 0 ? "/dev/shm"
		 : tmp			       ? tmp
					       : "/tmp",
		 tag);
	if (mkdtemp(base) == NULL)
		abort();
	fz_world_base = base;
	atexit(fz_world_cleanup);
	snprintf(simdir, nsim, "%s/sim", base);
	if (mkdir(simdir, 0700) != 0)
		abort();
	fz_sim_start(simdir);
}

/* One request on a fresh connection; the reply's text in reply. */
static inline int fz_sim_call(const char *dir, const char *req, const char *payload,
			      char *reply, size_t cap)
{
	int fd, r;

	if (smg_sim_client_connect(dir, &fd) != SMG_OK)
		abort();
	r = smg_sim_client_call(fd, req, payload, payload ? strlen(payload) : 0, reply,
				cap, NULL);
	close(fd);
	return r;
}

/* Every domain a run left on the host goes. */
static inline void fz_sim_wipe(const char *dir)
{
	char reply[4096], req[SMG_DOMAIN_NAME_MAX + 16], other[512], *save = NULL;

	if (fz_sim_call(dir, "LIST", NULL, reply, sizeof(reply)) != SMG_OK)
		return;
	for (char *l = strtok_r(reply, "\n", &save); l != NULL;
	     l = strtok_r(NULL, "\n", &save)) {
		l[strcspn(l, " ")] = '\0';
		snprintf(req, sizeof(req), "DESTROY %s", l);
		fz_sim_call(dir, req, NULL, other, sizeof(other));
	}
}

#endif
