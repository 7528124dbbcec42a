/* A guest vTPM is reachable by its owner only (issue 13: an unprivileged
 * user read a guest vTPM's whole permanent state over TCP loopback). The
 * instance's channels are unix sockets (0600) in a 0700 directory and it
 * listens on no TCP port; a process running as nobody cannot connect, so
 * cannot take its state; its owner can. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "attest/attest.h"
#include "base/base.h"
#include "check.h"
#include "tpm_env.h"

#define NOBODY 65534

static bool cmdline_has(pid_t pid, const char *needle)
{
	char path[64], buf[4096];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
	if ((fd = open(path, O_RDONLY)) < 0)
		return false;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	for (ssize_t i = 0; i < n; i++)
		if (buf[i] == '\0')
			buf[i] = ' ';
	buf[n > 0 ? n : 0] = '\0';
	return strstr(buf, needle) != NULL;
}

int main(void)
{
	char dir[] = "/tmp/smg-swtpm-perm.XXXXXX", sub[96];
	struct smg_swtpm sw;
	struct smg_vtpm_state st;
	struct stat s;
	pid_t child;
	int status;

	if (!tenv_have_swtpm()) {
		printf("swtpm missing: skipped\n");
		return T_SKIP;
	}
	if (geteuid() != 0) {
		printf("not root (cannot become nobody): skipped\n");
		return T_SKIP;
	}
	if (mkdtemp(dir) == NULL)
		return 1;
	chmod(dir, 0755); /* the parent is open: the instance's own dir is not */
	snprintf(sub, sizeof(sub), "%s/vtpm", dir);
	CHECK_EQ(smg_swtpm_start(sub, true, &sw), 0);
	CHECK(stat(sub, &s) == 0 && (s.st_mode & 0777) == 0700);
	CHECK(stat(sw.ctrl, &s) == 0 && S_ISSOCK(s.st_mode) && (s.st_mode & 077) == 0);
	CHECK(stat(sw.sock, &s) == 0 && S_ISSOCK(s.st_mode) && (s.st_mode & 077) == 0);
	CHECK(strncmp(sw.tcti, "swtpm:path=", 11) == 0);
	CHECK(!cmdline_has(sw.pid, "type=tcp"));
	/* its owner takes the state */
	CHECK_EQ(smg_vtpm_get_state(sw.ctrl, &st), 0);
	CHECK(st.perm_len > 0);
	smg_vtpm_state_free(&st);
	/* nobody cannot even connect */
	if ((child = fork()) == 0) {
		struct smg_vtpm_state st2;
		int fd;
		if (setgid(NOBODY) != 0 || setuid(NOBODY) != 0)
			_exit(2);
		if (smg_unix_connect(sw.ctrl, NULL, SOCK_STREAM, &fd) == SMG_OK ||
		    smg_err_errno() != EACCES)
			_exit(3);
		if (smg_unix_connect(sw.sock, NULL, SOCK_STREAM, &fd) == SMG_OK)
			_exit(4);
		_exit(smg_vtpm_get_state(sw.ctrl, &st2) == 0 ? 5 : 0);
	}
	CHECK(waitpid(child, &status, 0) == child);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		fprintf(stderr, "as nobody: exit %d\n", WEXITSTATUS(status));
	smg_swtpm_stop(&sw);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		return 1;
	return check_result("test_attest_swtpm_perm");
}
