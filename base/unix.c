/* unix: the local sockets of this host's root-only services (the sim host,
 * the disk service): a private listening socket, the accept loop that runs
 * until SIGTERM or SIGINT, and their clients' connect. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "base/base.h"

int smg_unix_listen(const char *path, int type, int backlog, int *out)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	mode_t old;
	int fd, rc;

	*out = -1;
	if (strlen(path) >= sizeof(sa.sun_path))
		return SMG_ERR_TOO_LONG;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	/* Something answers there: another instance's, not ours to take
	 * over. A socket file nobody answers on is a stale one. */
	if ((fd = socket(AF_UNIX, type | SOCK_CLOEXEC, 0)) >= 0) {
		rc = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
		close(fd);
		if (rc == 0)
			return SMG_ERR_EXISTS;
	}
	unlink(path);
	if ((fd = socket(AF_UNIX, type | SOCK_CLOEXEC, 0)) < 0)
		return smg_err_sys(errno);
	/* 0600 from birth: a chmod after bind leaves a window in which any
	 * local user may connect. */
	old = umask(077);
	rc = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (rc != 0 || listen(fd, backlog) != 0) {
		int e = smg_err_sys(errno);

		close(fd);
		return e;
	}
	*out = fd;
	return SMG_OK;
}

int smg_unix_connect(const char *dir_or_sock, const char *name, int type, int *out)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct stat st;
	int fd, n;

	*out = -1;
	if (name != NULL && stat(dir_or_sock, &st) == 0 && S_ISDIR(st.st_mode))
		n = snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/%s", dir_or_sock,
			     name);
	else
		n = snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", dir_or_sock);
	if (n < 0 || (size_t)n >= sizeof(sa.sun_path))
		return SMG_ERR_TOO_LONG;
	if ((fd = socket(AF_UNIX, type | SOCK_CLOEXEC, 0)) < 0)
		return smg_err_sys(errno);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		int e = smg_err_sys(errno);

		close(fd);
		return e;
	}
	*out = fd;
	return SMG_OK;
}

int smg_stop_signals(int *sfd)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	if ((*sfd = signalfd(-1, &set, SFD_CLOEXEC)) < 0)
		return smg_err_sys(errno);
	return SMG_OK;
}

void smg_unix_serve(int lfd, int sfd, const char *what,
		    void (*on_conn)(void *arg, int fd), void *arg)
{
	for (;;) {
		struct pollfd p[2] = {{lfd, POLLIN, 0}, {sfd, POLLIN, 0}};
		int c;

		if (poll(p, 2, -1) < 0 && errno != EINTR)
			break;
		if (p[1].revents & POLLIN)
			break;
		if (!(p[0].revents & POLLIN))
			continue;
		if ((c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC)) < 0)
			continue;
		/* The socket is 0600 in a 0700 directory; a peer of another
		 * user got here only through a passed descriptor. */
		if (!smg_peer_is_owner(c)) {
			smg_warn("%s: refusing a client of another user", what);
			close(c);
			continue;
		}
		on_conn(arg, c);
	}
}
