/* Client side of the disk service's control socket (send, recv, `secmig
 * disk`): one request, one reply, length-prefixed both ways. The reply is
 * parsed with the same bounded rules the service applies to requests.
 * A caller may ask and collect the answer later (at most one request in
 * flight per connection): the engine's channel threads overlap the
 * service's disk work with their memory pages that way. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/base.h"
#include "storage/storage.h"

struct smg_dsvc_conn {
	int fd;
	bool asked;   /* a request is in flight: its answer comes first */
	bool dead;    /* the stream failed mid-message: nothing more on it */
	uint8_t *buf; /* SMG_DSVC_MSG_MAX: the last reply */
	char msg[SMG_DSVC_LINE_MAX];
};

int smg_dsvc_connect(const char *sock_or_dir, struct smg_dsvc_conn **out)
{
	struct smg_dsvc_conn *c;
	int r;

	*out = NULL;
	if ((c = calloc(1, sizeof(*c))) == NULL ||
	    (c->buf = malloc(SMG_DSVC_MSG_MAX)) == NULL) {
		free(c);
		return SMG_ERR_NOMEM;
	}
	if ((r = smg_unix_connect(sock_or_dir, SMG_DSVC_SOCK_NAME, SOCK_STREAM,
				  &c->fd)) != SMG_OK) {
		free(c->buf);
		free(c);
		return r;
	}
	*out = c;
	return SMG_OK;
}

void smg_dsvc_close(struct smg_dsvc_conn *c)
{
	if (c == NULL)
		return;
	close(c->fd);
	free(c->buf);
	free(c);
}

const char *smg_dsvc_errmsg(const struct smg_dsvc_conn *c)
{
	return c->msg;
}

static int send_req(int fd, const char *line, const void *payload, size_t plen, int pass)
{
	size_t ll = strlen(line);
	uint8_t hdr[4];
	char nl = '\n';
	struct iovec iov[4] = {
	    {hdr, 4}, {(void *)line, ll}, {&nl, 1}, {(void *)payload, plen}};
	struct msghdr mh = {.msg_iov = iov, .msg_iovlen = 4};
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	size_t total = 4 + ll + 1 + plen, done = 0;

	if (ll + 1 > SMG_DSVC_LINE_MAX || plen > SMG_DSVC_FRAME_MAX)
		return SMG_ERR_TOO_LONG;
	smg_store_be32(hdr, (uint32_t)(total - 4));
	if (pass >= 0) {
		memset(&u, 0, sizeof(u));
		mh.msg_control = u.buf;
		mh.msg_controllen = sizeof(u.buf);
		struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &pass, sizeof(int));
	}
	while (done < total) {
		ssize_t k = sendmsg(fd, &mh, MSG_NOSIGNAL);

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return smg_err_sys(errno);
		done += (size_t)k;
		mh.msg_control = NULL; /* the descriptor went with the first bytes */
		mh.msg_controllen = 0;
		while (mh.msg_iovlen > 0 && (size_t)k >= mh.msg_iov[0].iov_len) {
			k -= (ssize_t)mh.msg_iov[0].iov_len;
			mh.msg_iov++;
			mh.msg_iovlen--;
		}
		if (mh.msg_iovlen > 0) {
			mh.msg_iov[0].iov_base = (uint8_t *)mh.msg_iov[0].iov_base + k;
			mh.msg_iov[0].iov_len -= (size_t)k;
		}
	}
	return SMG_OK;
}

static int recv_full(int fd, uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t k = recv(fd, p, n, 0);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return k == 0 ? SMG_ERR_EOF : smg_err_sys(errno);
		p += k;
		n -= (size_t)k;
	}
	return SMG_OK;
}

int smg_dsvc_ask(struct smg_dsvc_conn *c, const char *line, const void *payload,
		 size_t plen, int fd)
{
	struct smg_dsvc_reply rep;
	int r;

	/* A request in flight is answered first: its failure is this call's. */
	if (c->asked && (r = smg_dsvc_answer(c, &rep)) != SMG_OK)
		return r;
	c->msg[0] = '\0';
	if (c->dead)
		r = SMG_ERR_EOF;
	else if ((r = send_req(c->fd, line, payload, plen, fd)) != SMG_OK)
		c->dead = true;
	if (r != SMG_OK) {
		snprintf(c->msg, sizeof(c->msg), "disk service: %s", smg_strerror(r));
		return r;
	}
	c->asked = true;
	return SMG_OK;
}

bool smg_dsvc_asked(const struct smg_dsvc_conn *c)
{
	return c->asked;
}

bool smg_dsvc_ready(const struct smg_dsvc_conn *c)
{
	struct pollfd p = {.fd = c->fd, .events = POLLIN};

	return !c->asked || poll(&p, 1, 0) != 0;
}

/* The rest of an answer whose first head bytes are in c->buf, all of it
 * into c->buf, parsed. */
static int answer_rest(struct smg_dsvc_conn *c, size_t head, size_t len,
		       struct smg_dsvc_reply *rep)
{
	int r;

	if ((r = recv_full(c->fd, c->buf + head, len - head)) != 0 ||
	    (r = smg_dsvc_parse_reply(c->buf, len, rep)) != 0)
		return r;
	if (rep->err != 0)
		snprintf(c->msg, sizeof(c->msg), "%.*s", (int)rep->text_len, rep->text);
	return rep->err;
}

int smg_dsvc_answer_into(struct smg_dsvc_conn *c, struct smg_dsvc_reply *rep,
			 uint8_t *(*room)(void *arg, size_t len), void *arg)
{
	uint8_t hdr[4], *dst, *nl;
	size_t len, head, llen, plen;
	int r;

	memset(rep, 0, sizeof(*rep));
	if (!c->asked)
		return SMG_ERR_STATE;
	c->asked = false;
	if ((r = recv_full(c->fd, hdr, 4)) != 0)
		goto fail;
	len = smg_load_be32(hdr);
	r = len > SMG_DSVC_MSG_MAX ? SMG_ERR_TOO_LONG : SMG_OK;
	/* The reply line ends within its first SMG_DSVC_LINE_MAX bytes. */
	head = len < SMG_DSVC_LINE_MAX ? len : SMG_DSVC_LINE_MAX;
	if (r != SMG_OK || (r = recv_full(c->fd, c->buf, head)) != 0)
		goto fail;
	nl = memchr(c->buf, '\n', head);
	llen = nl != NULL ? (size_t)(nl - c->buf) + 1 : 0;
	plen = len - llen;
	if (room == NULL || nl == NULL || plen == 0 || plen > SMG_DSVC_FRAME_MAX ||
	    (r = smg_dsvc_parse_reply(c->buf, llen, rep)) != 0 || rep->err != 0) {
		/* an error, an empty answer or a bad one: as answer() does */
		if ((r = answer_rest(c, head, len, rep)) < 0 && rep->err == 0)
			goto fail;
		return r;
	}
	if ((dst = room(arg, plen)) == NULL) {
		r = SMG_ERR_NOMEM;
		goto fail;
	}
	memcpy(dst, c->buf + llen, head - llen); /* at most a line's worth */
	if ((r = recv_full(c->fd, dst + (head - llen), plen - (head - llen))) != 0)
		goto fail;
	rep->payload = dst;
	rep->payload_len = plen;
	rep->text = (const char *)dst;
	rep->text_len = plen;
	return SMG_OK;
fail:
	c->dead = true;
	snprintf(c->msg, sizeof(c->msg), "disk service: %s", smg_strerror(r));
	rep->err = r;
	return r;
}

int smg_dsvc_answer(struct smg_dsvc_conn *c, struct smg_dsvc_reply *rep)
{
	return smg_dsvc_answer_into(c, rep, NULL, NULL); /* all into c->buf */
}

int smg_dsvc_call(struct smg_dsvc_conn *c, const char *line, const void *payload,
		  size_t plen, int fd, struct smg_dsvc_reply *rep)
{
	int r;

	/* An answer nobody collected belongs to a request its caller gave up
	 * on (a channel thread that failed): a service error in it is not this
	 * call's; a broken stream is. */
	if (c->asked)
		(void)smg_dsvc_answer(c, rep);
	if ((r = smg_dsvc_ask(c, line, payload, plen, fd)) != SMG_OK) {
		memset(rep, 0, sizeof(*rep));
		rep->err = r;
		return r;
	}
	return smg_dsvc_answer(c, rep);
}
