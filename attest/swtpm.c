/* swtpm: spawning and stopping `swtpm socket --tpm2` instances on loopback —
 * a host TPM in tests and the demo, and a guest's vTPM on the sim host. The
 * child is ours (fork/exec, no daemonising) so it is stopped and reaped by
 * its PID, never by name. */
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "attest/attest.h"
#include "base/base.h"

#define SWTPM_BIN	       "swtpm"
#define SWTPM_PORT_TRIES       16
#define SWTPM_READY_TIMEOUT_MS 3000
#define SWTPM_STOP_TIMEOUT_MS  3000

static int bind_loopback(uint16_t port, uint16_t *got)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
	socklen_t sl = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	*got = 0;
	if (fd < 0)
		return -1;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &sl) != 0) {
		close(fd);
		return -1;
	}
	*got = ntohs(sa.sin_port);
	return fd;
}

/* Two consecutive free ports (the swtpm TCTI expects control at port + 1).
 * They are released before swtpm binds them; a lost race shows up as an
 * early exit and the caller tries another pair. */
static int pick_ports(uint16_t *port)
{
	for (int i = 0; i < 64; i++) {
		uint16_t p = 0, q = 0;
		int a = bind_loopback(0, &p), b;

		if (a < 0)
			return smg_err_sys(errno);
		if (p == 65535) {
			close(a);
			continue;
		}
		b = bind_loopback((uint16_t)(p + 1), &q);
		close(a);
		if (b < 0)
			continue;
		close(b);
		*port = p;
		return SMG_OK;
	}
	return SMG_ERR_BUSY;
}

static bool port_accepts(uint16_t port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool ok;

	if (fd < 0)
		return false;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ok = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	close(fd);
	return ok;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = {.tv_sec = ms / 1000,
			      .tv_nsec = (long)(ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

static pid_t spawn(const char *dir, bool startup, uint16_t port)
{
	char server[64], ctrl[64], state[4200], log[4200];
	pid_t pid;

	snprintf(server, sizeof(server), "type=tcp,port=%u,bindaddr=127.0.0.1", port);
	snprintf(ctrl, sizeof(ctrl), "type=tcp,port=%u,bindaddr=127.0.0.1", port + 1u);
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
	if (startup)
		execlp(SWTPM_BIN, SWTPM_BIN, "socket", "--tpm2", "--server", server,
		       "--ctrl", ctrl, "--tpmstate", state, "--log", log, "--flags",
		       "startup-clear", (char *)NULL);
	else
		execlp(SWTPM_BIN, SWTPM_BIN, "socket", "--tpm2", "--server", server,
		       "--ctrl", ctrl, "--tpmstate", state, "--log", log, (char *)NULL);
	_exit(127);
}

int smg_swtpm_start(const char *dir, bool startup, struct smg_swtpm *out)
{
	int r;

	memset(out, 0, sizeof(*out));
	out->pid = -1;
	if (dir == NULL || dir[0] != '/') {
		smg_err("swtpm: state directory must be an absolute path");
		return SMG_ERR_INVAL;
	}
	for (int attempt = 0; attempt < SWTPM_PORT_TRIES; attempt++) {
		uint16_t port = 0;
		pid_t pid;
		int status;

		if ((r = pick_ports(&port)) != 0)
			return r;
		if ((pid = spawn(dir, startup, port)) < 0)
			return smg_err_sys(errno);
		for (unsigned waited = 0; waited < SWTPM_READY_TIMEOUT_MS; waited += 5) {
			if (waitpid(pid, &status, WNOHANG) == pid) {
				if (WIFEXITED(status) && WEXITSTATUS(status) == 127) {
					smg_err("swtpm: cannot run '%s' (apt-get install "
						"swtpm)",
						SWTPM_BIN);
					return SMG_ERR_NOT_FOUND;
				}
				pid = -1; /* lost the port race: try another pair */
				break;
			}
			if (port_accepts((uint16_t)(port + 1)) && port_accepts(port)) {
				out->pid = pid;
				out->port = port;
				out->ctrl_port = (uint16_t)(port + 1);
				snprintf(out->tcti, sizeof(out->tcti),
					 "swtpm:host=127.0.0.1,port=%u", port);
				return SMG_OK;
			}
			sleep_ms(5);
		}
		if (pid > 0) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			smg_err("swtpm: did not come up within %u ms",
				SWTPM_READY_TIMEOUT_MS);
			return SMG_ERR_TIMEOUT;
		}
	}
	smg_err("swtpm: could not find free loopback ports");
	return SMG_ERR_BUSY;
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
