#include <errno.h>
#include <string.h>

#include "base/base.h"
#include "check.h"
#include "cli/cli.h"

int main(void)
{
	for (int e = 0; e > SMG_ERR_MAX_; e--) {
		const char *s = smg_strerror(e);

		CHECK(s != NULL && strcmp(s, "unknown error") != 0);
	}
	CHECK(strcmp(smg_strerror(1), "unknown error") == 0);
	CHECK(strcmp(smg_strerror(SMG_ERR_MAX_), "unknown error") == 0);
	CHECK_EQ(smg_err_sys(-ECONNRESET), SMG_ERR_SYS);
	CHECK_EQ(smg_err_errno(), ECONNRESET);
	CHECK(strcmp(smg_strerror(SMG_ERR_SYS), strerror(ECONNRESET)) == 0);

	/* the exit-code mapping an operator relies on */
	CHECK_EQ(smg_exit_from_err(SMG_OK), SMG_EXIT_OK);
	CHECK_EQ(smg_exit_from_err(SMG_ERR_UNKNOWN_PEER), SMG_EXIT_AUTH);
	CHECK_EQ(smg_exit_from_err(SMG_ERR_ATTEST), SMG_EXIT_ATTEST);
	CHECK_EQ(smg_exit_from_err(SMG_ERR_POLICY), SMG_EXIT_POLICY);
	CHECK_EQ(smg_exit_from_err(SMG_ERR_EOF), SMG_EXIT_NETWORK);
	CHECK_EQ(smg_exit_from_err(SMG_ERR_INTEGRITY), SMG_EXIT_INTEGRITY);
	CHECK_EQ(smg_exit_from_err(SMG_ERR_NOT_CONVERGED), SMG_EXIT_NOT_CONVERGED);
	CHECK_EQ(smg_exit_from_err(SMG_ERR_IN_DOUBT), SMG_EXIT_IN_DOUBT);
	CHECK_EQ(smg_exit_from_err(SMG_ERR_DECRYPT), SMG_EXIT_PROTOCOL);
	CHECK(strcmp(smg_exit_name(SMG_EXIT_IN_DOUBT), "in_doubt") == 0);
	return check_result("err");
}
