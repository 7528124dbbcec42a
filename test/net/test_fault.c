/* Fault points: the spec language, hit counting, and each action that a
 * test process can survive (err, stall); kill and exit run in a child. */
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/base.h"
#include "base/fault.h"
#include "check.h"

static int child_status(const char *spec, enum smg_fi point)
{
	pid_t pid = fork();
	int st = 0;

	if (pid == 0) {
		smg_log_set_level(SMG_LOG_ERROR);
		if (smg_fi_set(spec) != 0)
			_exit(3);
		smg_fi_check(point);
		_exit(0);
	}
	waitpid(pid, &st, 0);
	return st;
}

int main(void)
{
	int st;

	smg_log_set_level(SMG_LOG_ERROR);
	/* Unset: every point is a no-op. */
	for (int i = 0; i < SMG_FI_MAX_; i++)
		CHECK_EQ(smg_fi_check(i), SMG_OK);
	CHECK_EQ(smg_fi_lookup("after_commit"), SMG_FI_AFTER_COMMIT);
	CHECK_EQ(smg_fi_lookup("nope"), -1);
	CHECK(smg_fi_name(SMG_FI_ROUND0)[0] == 'r');

	CHECK_EQ(smg_fi_set("round=err@3"), 0);
	CHECK_EQ(smg_fi_check(SMG_FI_ROUND), 0);
	CHECK_EQ(smg_fi_check(SMG_FI_ROUND0), 0);
	CHECK_EQ(smg_fi_check(SMG_FI_ROUND), 0);
	CHECK_EQ(smg_fi_check(SMG_FI_ROUND), SMG_ERR_FAULT);
	CHECK_EQ(smg_fi_check(SMG_FI_ROUND), 0); /* fires once */

	CHECK_EQ(smg_fi_set("handshake=err,stop_copy=stall:30"), 0);
	CHECK_EQ(smg_fi_check(SMG_FI_HANDSHAKE), SMG_ERR_FAULT);
	uint64_t t0 = smg_now_ms();
	CHECK_EQ(smg_fi_check(SMG_FI_STOP_COPY), 0);
	CHECK(smg_now_ms() - t0 >= 30);

	/* Bad specs install nothing. */
	CHECK_EQ(smg_fi_set("after_done=err"), 0);
	CHECK_EQ(smg_fi_set("after_done=explode"), SMG_ERR_INVAL);
	CHECK_EQ(smg_fi_set("nowhere=err"), SMG_ERR_INVAL);
	CHECK_EQ(smg_fi_set("round=err@0"), SMG_ERR_INVAL);
	CHECK_EQ(smg_fi_set("round=stall"), SMG_ERR_INVAL);
	CHECK_EQ(smg_fi_set("round=err:5"), SMG_ERR_INVAL);
	CHECK_EQ(smg_fi_set("round"), SMG_ERR_INVAL);
	CHECK_EQ(smg_fi_check(SMG_FI_AFTER_DONE), SMG_ERR_FAULT);
	CHECK_EQ(smg_fi_set(""), 0);
	CHECK_EQ(smg_fi_check(SMG_FI_AFTER_DONE), 0);

	st = child_status("after_commit=kill", SMG_FI_AFTER_COMMIT);
	CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
	st = child_status("after_ready=exit", SMG_FI_AFTER_READY);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == SMG_FI_EXIT_CODE);
	st = child_status("after_ready=exit", SMG_FI_BEFORE_READY);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	return check_result("fault");
}
