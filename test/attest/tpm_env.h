/* Test helpers: a real swtpm per test host in a temp dir, stopped by PID. */
#ifndef SMG_TEST_TPM_ENV_H
#define SMG_TEST_TPM_ENV_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attest/attest.h"

struct tenv {
	char dir[128];
	struct smg_swtpm sw;
};

static inline bool tenv_have_swtpm(void)
{
	return system("command -v swtpm >/dev/null 2>&1") == 0;
}

static inline bool tenv_have_tools(void)
{
	return system("command -v tpm2_pcrextend >/dev/null 2>&1") == 0;
}

static inline int tenv_start(struct tenv *e, bool startup)
{
	snprintf(e->dir, sizeof(e->dir), "/tmp/smg-attest-XXXXXX");
	if (mkdtemp(e->dir) == NULL)
		return -1;
	return smg_swtpm_start(e->dir, startup, &e->sw);
}

static inline void tenv_stop(struct tenv *e)
{
	char cmd[200];

	smg_swtpm_stop(&e->sw);
	if (e->dir[0] != '\0') {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", e->dir);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", e->dir);
	}
}

/* Run a tpm2-tools command line against this instance. */
static inline int tenv_tool(const struct tenv *e, const char *cmdline)
{
	char cmd[1024];

	snprintf(cmd, sizeof(cmd), "TPM2TOOLS_TCTI='%s' %s", e->sw.tcti, cmdline);
	return system(cmd);
}

#endif
