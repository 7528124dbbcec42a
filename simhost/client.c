/* Client side of the sim host socket (used by the sim backend and by
 * `secmig sim`). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "base/base.h"
#include "simhost/simhost.h"

int smg_sim_client_connect(const char *dir_or_sock, int *out)
{
	return smg_unix_connect(dir_or_sock, SMG_SIM_SOCK_NAME, SOCK_SEQPACKET, out);
}

int smg_sim_client_bound(int fd, unsigned ms)
{
	struct timeval tv = {ms / 1000, (long)(ms % 1000) * 1000};

	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) != 0)
		return smg_err_sys(errno);
	return SMG_OK;
}

/* A call that timed out may still be answered later: that reply must not
 * be taken for the next call's, so the connection ends here. */
static int call_failed(int fd, const char *req, int e)
{
	if (e != EAGAIN && e != EWOULDBLOCK)
		return smg_err_sys(e);
	smg_err("sim host did not answer '%.*s' in time: giving up on it",
		(int)strcspn(req, " "), req);
	shutdown(fd, SHUT_RDWR);
	return SMG_ERR_TIMEOUT;
}

static int take_fd(struct msghdr *mh)
{
	for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c != NULL; c = CMSG_NXTHDR(mh, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
		    c->cmsg_len == CMSG_LEN(sizeof(int))) {
			int fd;
			memcpy(&fd, CMSG_DATA(c), sizeof(int));
			return fd;
		}
	return -1;
}

int smg_sim_client_call(int fd, const char *req, const void *payload, size_t plen,
			char *reply, size_t cap, int *rfd)
{
	char nl = '\n';
	struct iovec out[3] = {
	    {(void *)req, strlen(req)}, {&nl, 1}, {(void *)payload, plen}};
	struct msghdr mh = {.msg_iov = out, .msg_iovlen = 3};
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	char *buf;
	ssize_t n;
	int r, got;

	if (rfd != NULL)
		*rfd = -1;
	if (cap > 0)
		reply[0] = '\0';
	if (strlen(req) + 1 + plen > SMG_SIM_MSG_MAX)
		return SMG_ERR_TOO_LONG;
	/* A signal (a handler anywhere in the process: libFuzzer's timer
	 * under fuzz_resolve) must not fail the call: retried, else its
	 * reply, arriving later, is read as the next call's (fuzz_resolve's
	 * "PENDING" answered by the PAUSE before it). */
	while ((n = sendmsg(fd, &mh, MSG_NOSIGNAL)) < 0 && errno == EINTR)
		;
	if (n < 0)
		return call_failed(fd, req, errno);
	if ((buf = malloc(SMG_SIM_MSG_MAX + 1)) == NULL)
		return SMG_ERR_NOMEM;
	struct iovec in = {buf, SMG_SIM_MSG_MAX};
	struct msghdr ih = {.msg_iov = &in,
			    .msg_iovlen = 1,
			    .msg_control = u.buf,
			    .msg_controllen = sizeof(u.buf)};
	while ((n = recvmsg(fd, &ih, MSG_CMSG_CLOEXEC)) < 0 && errno == EINTR)
		;
	if (n <= 0) {
		r = n == 0 ? SMG_ERR_EOF : call_failed(fd, req, errno);
		goto out;
	}
	buf[n] = '\0';
	got = take_fd(&ih);
	char *body = strchr(buf, '\n');
	body = body != NULL ? body + 1 : buf + n;
	if (cap > 0)
		snprintf(reply, cap, "%s", body);
	if (strncmp(buf, "OK\n", 3) == 0) {
		r = SMG_OK;
		if (rfd != NULL)
			*rfd = got;
		else if (got >= 0)
			close(got);
	} else {
		long code = strncmp(buf, "ERR ", 4) == 0 ? strtol(buf + 4, NULL, 10) : 0;
		r = code < 0 && code > SMG_ERR_MAX_ ? (int)code : SMG_ERR_BACKEND;
		if (got >= 0)
			close(got);
	}
out:
	free(buf);
	return r;
}
