/* vtpm: a sim domain's guest vTPM, an swtpm instance the sim host runs
 * next to the domain with its state in DIR/vtpm/NAME. A running domain's
 * instance starts fresh (TPM2_Startup); an incoming domain's waits for the
 * migrated state (CMD_SET_STATEBLOB + CMD_INIT through its control port).
 * The instance lives and dies with the domain: destroyed with it after
 * DONE on the source, discarded with an aborted incoming copy. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "attest/attest.h"
#include "base/base.h"
#include "simhost/simhost.h"

static int vtpm_dir(const char *host_dir, const char *name, char *out, size_t n)
{
	char base[SMG_DOMAIN_PATH_MAX + 16];

	snprintf(base, sizeof(base), "%s/vtpm", host_dir);
	if (mkdir(base, 0700) != 0 && errno != EEXIST)
		return smg_err_sys(errno);
	if ((size_t)snprintf(out, n, "%s/%s", base, name) >= n)
		return SMG_ERR_TOO_LONG;
	return SMG_OK;
}

static void remove_dir(const char *dir)
{
	char cmd[SMG_DOMAIN_PATH_MAX + 128];

	/* Names are [A-Za-z0-9._-] (config.c): safe inside quotes. */
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		smg_warn("sim host: could not remove %s", dir);
}

int smg_sim_vtpm_start(const char *host_dir, const char *name, bool incoming,
		       struct smg_swtpm *out)
{
	char dir[SMG_DOMAIN_PATH_MAX + 96];
	int r;

	if ((r = vtpm_dir(host_dir, name, dir, sizeof(dir))) != SMG_OK)
		return r;
	remove_dir(dir); /* a stale instance's state never leaks into this one */
	if (mkdir(dir, 0700) != 0)
		return smg_err_sys(errno);
	if ((r = smg_swtpm_start(dir, !incoming, out)) != SMG_OK) {
		remove_dir(dir);
		return r;
	}
	smg_info("sim host: vTPM of '%s' on %s (%s)", name, out->tcti,
		 incoming ? "waiting for the migrated state" : "fresh");
	return SMG_OK;
}

void smg_sim_vtpm_stop(const char *host_dir, const char *name, struct smg_swtpm *sw)
{
	char dir[SMG_DOMAIN_PATH_MAX + 96];

	if (sw->pid <= 0)
		return;
	smg_swtpm_stop(sw);
	if (vtpm_dir(host_dir, name, dir, sizeof(dir)) == SMG_OK)
		remove_dir(dir);
}
