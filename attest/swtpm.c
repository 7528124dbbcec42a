/* swtpm: spawning and stopping `swtpm socket --tpm2` instances -- a host
 * TPM in tests and the demo, and a guest's vTPM on the sim host. Both
 * channels are unix sockets (mode 0600) inside the instance's state
 * directory, which is made 0700: only its owner reaches the TPM. TCP on
 * loopback let any local user read a guest vTPM's whole permanent state
 * (its seeds; issue 13). The child is ours (fork/exec, no daemonising) so
 * it is stopped and reaped by its PID, never by name.
 *
 * For tpm2-tss the TCTI is "swtpm:path=DIR/tpm.sock" (the control channel
 * is DIR/tpm.sock.ctrl); the qemu backend hands the same DIR/tpm.sock to
 * QEMU's -chardev socket (and drives .ctrl for state). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "attest/attest.h"
#include "base/base.h"

#define SWTPM_BIN	       "swtpm"
#define SWTPM_READY_TIMEOUT_MS 3000
#define SWTPM_STOP_TIMEOUT_MS  3000

static bool path_accepts(const char *path)
{
	int fd;

	if (smg_unix_connect(path, NULL, SOCK_STREAM, &fd) != SMG_OK)
		return false;
	close(fd);
	return true;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = {.tv_sec = ms / 1000,
			      .tv_nsec = (long)(ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

static pid_t spawn(const char *dir, bool startup, const struct smg_swtpm *sw)
{
	char server[SMG_SWTPM_PATH_MAX + 64], ctrl[SMG_SWTPM_PATH_MAX + 64];
	char state[SMG_SWTPM_PATH_MAX + 8], log[SMG_SWTPM_PATH_MAX + 32];
	pid_t pid;

	snprintf(server, sizeof(server), "type=unixio,path=%s,mode=0600", sw->sock);
	snprintf(ctrl, sizeof(ctrl), "type=unixio,path=%s,mode=0600", sw->ctrl);
	snprintf(state, sizeof(state), "dir=%s", dir);
	snprintf(log, sizeof(log), "file=%s/swtpm.log", dir);
	pid = fork();
	if (pid != 0)
		return pid;
	/* A parent that blocks SIGTERM for its signalfd (the sim host) must
	 * not hand that mask on: smg_swtpm_stop stops the child with it. */
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	umask(077);
	if (startup)
		execlp(SWTPM_BIN, SWTPM_BIN, "socket", "--tpm2", "--server", server,
		       "--ctrl", ctrl, "--tpmstate", state, "--log", log, "--flags",
		       "startup-clear", (char *)NULL);
	else
		execlp(SWTPM_BIN, SWTPM_BIN, "socket", "--tpm2", "--server", server,
		       "--ctrl", ctrl, "--tpmstate", state, "--log", log, (char *)NULL);
	_exit(127);
}

/* The state directory: ours, 0700, not a symlink. */
static int private_dir(const char *dir)
{
	struct stat st;

	if (mkdir(dir, 0700) != 0 && errno != EEXIST)
		return smg_err_sys(errno);
	if (lstat(dir, &st) != 0)
		return smg_err_sys(errno);
	if (!S_ISDIR(st.st_mode) || (st.st_uid != geteuid() && st.st_uid != 0)) {
		smg_err("swtpm: %s is not a directory of ours", dir);
		return SMG_ERR_PERM;
	}
	if ((st.st_mode & 077) != 0 && chmod(dir, 0700) != 0)
		return smg_err_sys(errno);
	return SMG_OK;
}

int smg_swtpm_start(const char *dir, bool startup, struct smg_swtpm *out)
{
	int status, r;
	pid_t pid;

	memset(out, 0, sizeof(*out));
	out->pid = -1;
	if (dir == NULL || dir[0] != '/') {
		smg_err("swtpm: state directory must be an absolute path");
		return SMG_ERR_INVAL;
	}
	if ((size_t)snprintf(out->sock, sizeof(out->sock), "%s/tpm.sock", dir) >=
		sizeof(out->sock) - 5 ||
	    (size_t)snprintf(out->ctrl, sizeof(out->ctrl), "%s/tpm.sock.ctrl", dir) >=
		sizeof(out->ctrl)) {
		smg_err("swtpm: %s is too long for a unix socket path", dir);
		return SMG_ERR_TOO_LONG;
	}
	snprintf(out->tcti, sizeof(out->tcti), "swtpm:path=%s", out->sock);
	if ((r = private_dir(dir)) != SMG_OK)
		return r;
	unlink(out->sock);
	unlink(out->ctrl);
	if ((pid = spawn(dir, startup, out)) < 0)
		return smg_err_sys(errno);
	for (unsigned waited = 0; waited < SWTPM_READY_TIMEOUT_MS; waited += 5) {
		if (waitpid(pid, &status, WNOHANG) == pid) {
			if (WIFEXITED(status) && WEXITSTATUS(status) == 127) {
				smg_err("swtpm: cannot run '%s' (apt-get install swtpm)",
					SWTPM_BIN);
				return SMG_ERR_NOT_FOUND;
			}
			smg_err("swtpm: exited at start (see %s/swtpm.log)", dir);
			return SMG_ERR_BACKEND;
		}
		if (path_accepts(out->ctrl) && path_accepts(out->sock)) {
			out->pid = pid;
			return SMG_OK;
		}
		sleep_ms(5);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	smg_err("swtpm: did not come up within %u ms", SWTPM_READY_TIMEOUT_MS);
	return SMG_ERR_TIMEOUT;
}

int smg_swtpm_wait_exit(struct smg_swtpm *s, unsigned timeout_ms)
{
	int status;

	if (s->pid <= 0)
		return SMG_OK;
	for (unsigned waited = 0;; waited += 5) {
		pid_t w = waitpid(s->pid, &status, WNOHANG);
		if (w == s->pid || (w < 0 && errno == ECHILD)) {
			s->pid = -1;
			return SMG_OK;
		}
		if (waited >= timeout_ms)
			return SMG_ERR_BUSY;
		sleep_ms(5);
	}
}

int smg_swtpm_stop(struct smg_swtpm *s)
{
	int status;

	if (s->pid <= 0)
		return SMG_OK;
	kill(s->pid, SIGTERM);
	if (smg_swtpm_wait_exit(s, SWTPM_STOP_TIMEOUT_MS) == SMG_OK)
		return SMG_OK;
	kill(s->pid, SIGKILL);
	waitpid(s->pid, &status, 0);
	s->pid = -1;
	return SMG_OK;
}
