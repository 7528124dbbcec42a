/* The guest's vTPM: an swtpm instance per VM whose control channel is a
 * unix socket QEMU's tpm-emulator connects to (tpm-tis in the guest).
 * QEMU moves the TPM's state itself: its device state carries swtpm's
 * permanent, volatile and save-state blobs (taken through the control
 * channel while the VM is stopped, loaded into the destination's instance
 * by migrate-incoming, before READY). That stream travels inside the
 * session, encrypted, and is hashed into the manifest with the rest of the
 * device state. swtpm serves one control client, and QEMU holds it, so
 * secmig never talks to the instance itself.
 *
 * The instance's state directory holds the vTPM's seeds: when the VM has
 * left a host for good its directory is wiped. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/base.h"
#include "engine/backend/qemu_internal.h"

#define SWTPM_BIN      "/usr/bin/swtpm"
#define SWTPM_START_MS 10000u
#define SWTPM_POLL_NS  10000000L

void smg_qemu_vtpm_wipe(const char *state_dir, const char *name)
{
	char dir[SMG_QEMU_VALUE_MAX + 64], f[SMG_QEMU_VALUE_MAX + 320];
	struct dirent *e;
	DIR *d;

	if (smg_qemu_path(state_dir, name, "tpm", dir, sizeof(dir)) != SMG_OK ||
	    (d = opendir(dir)) == NULL)
		return;
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		snprintf(f, sizeof(f), "%s/%s", dir, e->d_name);
		if (unlink(f) != 0)
			smg_warn("qemu: vTPM state %s: %s", f, strerror(errno));
	}
	closedir(d);
	if (rmdir(dir) != 0)
		smg_warn("qemu: vTPM state %s: %s", dir, strerror(errno));
}

static int wait_ctrl(const struct smg_qemu_proc *p, const char *sock)
{
	/* the pid file (read by teardown) is written before the socket opens */
	struct timespec nap = {0, SWTPM_POLL_NS};
	uint64_t deadline = smg_now_ms() + SWTPM_START_MS;
	struct stat st;

	while (stat(sock, &st) != 0 || !S_ISSOCK(st.st_mode)) {
		if (smg_qemu_proc_exited(p) || smg_now_ms() > deadline) {
			smg_err("qemu: swtpm did not open %s", sock);
			return SMG_ERR_BACKEND;
		}
		nanosleep(&nap, NULL);
	}
	return SMG_OK;
}

int smg_qemu_vtpm_start(const char *state_dir, const char *name, bool fresh,
			struct smg_qemu_proc *p)
{
	char dir[SMG_QEMU_VALUE_MAX + 64], sock[SMG_QEMU_SUN_MAX],
	    log[SMG_QEMU_VALUE_MAX + 64], a_state[SMG_QEMU_VALUE_MAX + 96],
	    a_ctrl[SMG_QEMU_SUN_MAX + 64], pidf[SMG_QEMU_VALUE_MAX + 64],
	    a_pid[SMG_QEMU_VALUE_MAX + 96];
	int r;

	if ((r = smg_qemu_path(state_dir, name, "tpm", dir, sizeof(dir))) != SMG_OK ||
	    (r = smg_qemu_path(state_dir, name, "tpm.sock", sock, sizeof(sock))) !=
		SMG_OK ||
	    (r = smg_qemu_path(state_dir, name, "swtpm.log", log, sizeof(log))) !=
		SMG_OK ||
	    (r = smg_qemu_path(state_dir, name, "swtpm.pid", pidf, sizeof(pidf))) !=
		SMG_OK)
		return r;
	if (fresh)
		smg_qemu_vtpm_wipe(state_dir, name); /* no stale state leaks in */
	if (mkdir(dir, 0700) != 0 && errno != EEXIST)
		return smg_err_sys(errno);
	unlink(sock);
	snprintf(a_state, sizeof(a_state), "dir=%s,mode=0600", dir);
	snprintf(a_ctrl, sizeof(a_ctrl), "type=unixio,path=%s,mode=0600", sock);
	snprintf(a_pid, sizeof(a_pid), "file=%s", pidf);
	/* --terminate: the instance ends with its QEMU's connection. */
	char *argv[] = {SWTPM_BIN, "socket", "--tpm2", "--tpmstate",  a_state, "--ctrl",
			a_ctrl,	   "--pid",  a_pid,    "--terminate", NULL};
	if ((r = smg_qemu_spawn(argv, log, p)) != SMG_OK)
		return r;
	if ((r = wait_ctrl(p, sock)) != SMG_OK) {
		smg_qemu_proc_end(p, 0);
		return r;
	}
	smg_info("qemu: vTPM of '%s' (swtpm pid %d, %s)", name, (int)p->pid,
		 fresh ? "waiting for the migrated state" : "its own state");
	return SMG_OK;
}
