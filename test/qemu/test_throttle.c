/* Auto-converge for QEMU (qemu_throttle.c): a throttled process is seen
 * stopped (SIGSTOP) part of the time and running part of the time; after
 * the throttle stops it runs on and makes progress, never left stopped. */
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/base.h"
#include "check.h"
#include "engine/backend/qemu_internal.h"

#define SAMPLES_MAX 200000

static char state_of(pid_t pid)
{
	char path[64], buf[256], *rp;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if ((f = fopen(path, "r")) == NULL)
		return '?';
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	rp = strrchr(buf, ')');
	return rp != NULL && rp[1] == ' ' ? rp[2] : '?';
}

int main(void)
{
	_Atomic unsigned long *ctr =
	    mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	struct smg_qemu_throttle t;
	bool seen_t = false, seen_r = false;
	pid_t pid;
	int pidfd;

	memset(&t, 0, sizeof(t));
	CHECK(ctr != MAP_FAILED);
	if ((pid = fork()) == 0)
		for (;;)
			atomic_fetch_add(ctr, 1); /* a busy vCPU */
	pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	CHECK(pidfd >= 0);
	CHECK_EQ(smg_qemu_throttle_set(&t, pidfd, 80), SMG_OK);
	for (int i = 0; i < SAMPLES_MAX && !(seen_t && seen_r); i++) {
		char s = state_of(pid);
		seen_t |= s == 'T';
		seen_r |= s == 'R';
		usleep(100);
	}
	CHECK(seen_t && seen_r);
	CHECK_EQ(smg_qemu_throttle_set(&t, pidfd, 10), SMG_OK); /* retuned live */
	smg_qemu_throttle_stop(&t);
	CHECK(state_of(pid) != 'T');
	unsigned long before = atomic_load(ctr);
	for (int i = 0; i < SAMPLES_MAX && atomic_load(ctr) == before; i++)
		usleep(100);
	CHECK(atomic_load(ctr) != before); /* it runs on */
	/* 0 % never starts a thread */
	CHECK_EQ(smg_qemu_throttle_set(&t, pidfd, 0), SMG_OK);
	CHECK(!t.running);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	close(pidfd);
	return check_result("test_qemu_throttle");
}
