/* For the harnesses that need a real backend: a sim host (the sim
 * backend's hypervisor, engine/backend/sim_host.c) serving DIR from a
 * thread of the fuzzer's own process. */
#ifndef SMG_FUZZ_SIM_HOST_H
#define SMG_FUZZ_SIM_HOST_H

#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/base.h"
#include "engine/backend/sim.h"

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

static inline void *fz_sim_main(void *arg)
{
	smg_sim_host_run(arg);
	return NULL;
}

/* Start it on dir (which must outlive the process) and wait for its socket. */
static inline void fz_sim_start(char *dir)
{
	pthread_t t;

	if (pthread_create(&t, NULL, fz_sim_main, dir) != 0)
		abort();
	pthread_detach(t);
	for (int i = 0; i < 500; i++) {
		int fd;
		if (smg_sim_client_connect(dir, &fd) == SMG_OK) {
			close(fd);
			return;
		}
		usleep(10000);
	}
	abort();
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
