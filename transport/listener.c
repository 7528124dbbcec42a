/* The server side: one poll(2) loop runs up to max_preauth handshakes at
 * once, each with its own deadline and two handshake-sized buffers; nothing
 * larger is allocated for a peer before it is authenticated. A connection
 * over the cap is refused at once (REJECT busy). Authenticated sessions wait
 * here until their data channels have joined with a valid JOIN. */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "secmig.pb-c.h"
#include "transport/internal.h"

#define PENDING_MAX 4 /* authenticated sessions waiting for their channels */

enum pc_stage { PC_READ_FIRST, PC_WRITE, PC_READ_AUTH };

struct pconn {
	int fd;
	enum pc_stage stage;
	uint64_t deadline;
	uint8_t *in; /* HS_WIRE_MAX */
	size_t have;
	uint8_t *out; /* HS_WIRE_MAX */
	size_t out_len, out_off;
	struct hs *hs;
	int reject; /* Reject reason when no handshake state says better */
	char addr[64];
};

struct pending {
	struct smg_session *s;
	unsigned joined; /* bit per channel */
	uint64_t deadline;
};

struct smg_listener {
	int fd;
	uint16_t port;
	struct smg_session_opts opts; /* copy the handshakes point into */
	struct pconn *pc;	      /* max_preauth entries */
	unsigned npc;
	struct pending pend[PENDING_MAX];
};

int smg_listener_open(const char *host, uint16_t port, struct smg_listener **out)
{
	struct addrinfo hints = {0}, *res = NULL;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	struct smg_listener *l;
	char portstr[8];
	int one = 1, r;

	*out = NULL;
	if ((r = smg_sodium_ready()) != 0)
		return r;
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE;
	snprintf(portstr, sizeof(portstr), "%u", port);
	if ((r = getaddrinfo(host, portstr, &hints, &res)) != 0) {
		smg_err("cannot resolve listen address %s: %s", host ? host : "*",
			gai_strerror(r));
		return SMG_ERR_CONFIG;
	}
	if ((l = calloc(1, sizeof(*l))) == NULL) {
		freeaddrinfo(res);
		return SMG_ERR_NOMEM;
	}
	l->fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (l->fd < 0 ||
	    setsockopt(l->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	    bind(l->fd, res->ai_addr, res->ai_addrlen) != 0 || listen(l->fd, 64) != 0 ||
	    getsockname(l->fd, (struct sockaddr *)&ss, &sl) != 0) {
		r = smg_err_sys(errno);
		smg_err("cannot listen on %s port %u: %s", host ? host : "*", port,
			strerror(errno));
		freeaddrinfo(res);
		smg_listener_close(l);
		return r;
	}
	freeaddrinfo(res);
	l->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
						 : ((struct sockaddr_in *)&ss)->sin_port);
	*out = l;
	return SMG_OK;
}

uint16_t smg_listener_port(const struct smg_listener *l)
{
	return l->port;
}

int smg_listener_fd(const struct smg_listener *l)
{
	return l->fd;
}

/* Suspicious activity goes to the caller (audit/), with the address. */
static void refused(struct smg_listener *l, const struct pconn *p, int err)
{
	if (l->opts.on_refused != NULL)
		l->opts.on_refused(l->opts.refused_arg, p->addr,
				   p->hs != NULL ? p->hs->peer_name : "", err);
}

static void pc_drop(struct smg_listener *l, unsigned i, int err)
{
	struct pconn *p = &l->pc[i];

	if (err != 0 && p->fd >= 0) {
		int why = smg_hs_reject_from_err(err);

		if (p->reject != 0)
			why = p->reject;
		if (p->hs != NULL && p->hs->reject != 0)
			why = p->hs->reject;
		smg_send_reject(p->fd, why, NULL);
	}
	if (p->fd >= 0)
		close(p->fd);
	free(p->in);
	free(p->out);
	if (p->hs != NULL) {
		smg_hs_wipe(p->hs);
		sodium_free(p->hs);
	}
	l->pc[i] = l->pc[--l->npc];
}

static void pc_accept(struct smg_listener *l, unsigned cap)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	struct pconn *p;
	char host[INET6_ADDRSTRLEN] = "?";
	int fd;

	while ((fd = accept4(l->fd, (struct sockaddr *)&ss, &sl, SOCK_CLOEXEC)) >= 0) {
		if (ss.ss_family == AF_INET)
			inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, host,
				  sizeof(host));
		else if (ss.ss_family == AF_INET6)
			inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr,
				  host, sizeof(host));
		if (l->npc >= cap || smg_sock_tune(fd, l->opts.sock_buf) != 0) {
			smg_peer_log(SMG_LOG_WARN,
				     "refusing %s: %u handshakes already in progress",
				     host, l->npc);
			smg_send_reject(fd, SMG__REJECT_REASON__REJECT_BUSY, NULL);
			close(fd);
			if (l->opts.on_refused != NULL)
				l->opts.on_refused(l->opts.refused_arg, host, "",
						   SMG_ERR_BUSY);
			continue;
		}
		p = &l->pc[l->npc];
		memset(p, 0, sizeof(*p));
		p->fd = fd;
		p->deadline = smg_now_ms() + (l->opts.handshake_timeout_ms
						  ? l->opts.handshake_timeout_ms
						  : SMG_HANDSHAKE_TIMEOUT_MS);
		snprintf(p->addr, sizeof(p->addr), "%s", host);
		if ((p->in = malloc(HS_WIRE_MAX)) == NULL) {
			close(fd);
			continue;
		}
		l->npc++;
		sl = sizeof(ss);
	}
}

/* Read toward one whole frame without reading past it. 1: complete. */
static int pc_read(struct pconn *p)
{
	size_t want;
	ssize_t n;

	for (;;) {
		if (p->have < 4) {
			want = 4 - p->have;
		} else {
			uint32_t len = smg_load_be32(p->in);

			if (len > SMG_HS_FRAME_MAX)
				return SMG_ERR_TOO_LONG; /* before buffering any of it */
			if (len < 1)
				return SMG_ERR_PROTO;
			if (p->have == 4 + (size_t)len)
				return 1;
			want = 4 + (size_t)len - p->have;
		}
		n = recv(p->fd, p->in + p->have, want, MSG_DONTWAIT);
		if (n > 0)
			p->have += (size_t)n;
		else if (n == 0)
			return SMG_ERR_EOF;
		else if (errno == EAGAIN || errno == EWOULDBLOCK)
			return 0;
		else if (errno != EINTR)
			return SMG_ERR_EOF;
	}
}

static int pc_write(struct pconn *p)
{
	ssize_t n;

	while (p->out_off < p->out_len) {
		n = send(p->fd, p->out + p->out_off, p->out_len - p->out_off,
			 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0)
			p->out_off += (size_t)n;
		else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		else if (n < 0 && errno != EINTR)
			return SMG_ERR_EOF;
	}
	return 1;
}

static struct pending *find_pending(struct smg_listener *l, const uint8_t *id)
{
	for (unsigned i = 0; i < PENDING_MAX; i++)
		if (l->pend[i].s != NULL &&
		    sodium_memcmp(l->pend[i].s->session_id, id, 32) == 0)
			return &l->pend[i];
	return NULL;
}

/* A JOIN names its session and proves knowledge of its key. */
static int on_join(struct smg_listener *l, struct pconn *p, struct pending **done)
{
	const uint8_t *body;
	size_t blen, used;
	uint8_t type, mac[crypto_auth_BYTES];
	ProtobufCMessage *m = NULL;
	struct pending *pd;
	Smg__Join *j;
	int r;

	if ((r = smg_hs_frame_get(p->in, p->have, &type, &body, &blen, &used)) != 0 ||
	    (r = smg_hs_parse_join(body, blen)) != 0 ||
	    (r = smg_proto_unpack(SMG_FT_JOIN, body, blen, &m)) != 0)
		goto out;
	j = (Smg__Join *)m;
	r = SMG_ERR_AUTH;
	if ((pd = find_pending(l, j->session_id.data)) == NULL ||
	    j->index >= pd->s->nchan || (pd->joined & (1u << j->index)) != 0)
		goto out;
	smg_hs_join_mac(pd->s->session_key, pd->s->session_id, j->index, mac);
	if (sodium_memcmp(mac, j->mac.data, sizeof(mac)) != 0)
		goto out;
	r = smg_session_attach(pd->s, j->index, p->fd, &l->opts);
	p->fd = -1; /* owned by the channel now */
	if (r != 0 || (r = smg_session_stream_start(pd->s, j->index, p->deadline)) != 0) {
		smg_session_free(pd->s);
		memset(pd, 0, sizeof(*pd));
		goto out;
	}
	pd->joined |= 1u << j->index;
	if (pd->joined == (1u << pd->s->nchan) - 1)
		*done = pd;
out:
	smg_proto_free(m);
	if (r != 0)
		p->reject = SMG__REJECT_REASON__REJECT_BAD_JOIN;
	if (r == SMG_ERR_AUTH)
		smg_peer_log(SMG_LOG_WARN,
			     "%s: JOIN names no waiting session or a bad MAC", p->addr);
	return r;
}

static int pc_on_first(struct smg_listener *l, struct pconn *p, struct pending **done)
{
	int r;

	if (p->have > 4 && p->in[4] == SMG_FT_JOIN) {
		r = on_join(l, p, done);
		return r != 0 ? r : 1; /* 1: finished with this connection */
	}
	if ((p->hs = sodium_malloc(sizeof(*p->hs))) == NULL ||
	    (p->out = malloc(HS_WIRE_MAX)) == NULL)
		return SMG_ERR_NOMEM;
	smg_hs_init(p->hs, false, &l->opts);
	if ((r = smg_hs_server_on_hello(p->hs, p->in, p->have, p->out, HS_WIRE_MAX,
					&p->out_len)) != 0)
		return r;
	p->have = 0;
	p->stage = PC_WRITE;
	return 0;
}

static int pc_on_auth(struct smg_listener *l, struct pconn *p, struct pending **done)
{
	struct smg_session *s = NULL;
	struct pending *pd = NULL;
	int r;

	if ((r = smg_hs_server_on_auth(p->hs, p->in, p->have)) != 0)
		return r;
	for (unsigned i = 0; i < PENDING_MAX && pd == NULL; i++)
		if (l->pend[i].s == NULL)
			pd = &l->pend[i];
	if (pd == NULL)
		return SMG_ERR_BUSY;
	if ((r = smg_session_new(p->hs, &s)) != 0)
		return r;
	r = smg_session_attach(s, 0, p->fd, &l->opts);
	p->fd = -1;
	if (r != 0 || (r = smg_session_stream_start(s, 0, p->deadline)) != 0) {
		smg_session_free(s);
		return r;
	}
	snprintf(s->peer_addr, sizeof(s->peer_addr), "%s", p->addr);
	pd->s = s;
	pd->joined = 1;
	pd->deadline = p->deadline;
	smg_info("peer '%s' authenticated from %s; %u channel%s", s->peer_name, p->addr,
		 s->nchan, s->nchan == 1 ? "" : "s");
	if (s->nchan == 1)
		*done = pd;
	return 1;
}

/* Advance one connection; 1: finished (handed over), <0: drop it. */
static int pc_step(struct smg_listener *l, struct pconn *p, struct pending **done)
{
	int r;

	if (p->stage == PC_WRITE) {
		if ((r = pc_write(p)) <= 0)
			return r;
		p->stage = PC_READ_AUTH;
	}
	if ((r = pc_read(p)) <= 0)
		return r;
	if (p->stage == PC_READ_FIRST) {
		if ((r = pc_on_first(l, p, done)) != 0)
			return r;
		return pc_step(l, p, done);
	}
	return pc_on_auth(l, p, done);
}

static void expire(struct smg_listener *l, uint64_t now)
{
	for (unsigned i = 0; i < l->npc;) {
		if (now >= l->pc[i].deadline) {
			smg_peer_log(SMG_LOG_WARN, "%s: handshake deadline passed",
				     l->pc[i].addr);
			refused(l, &l->pc[i], SMG_ERR_TIMEOUT);
			pc_drop(l, i, SMG_ERR_TIMEOUT);
		} else {
			i++;
		}
	}
	for (unsigned i = 0; i < PENDING_MAX; i++) {
		if (l->pend[i].s != NULL && now >= l->pend[i].deadline) {
			smg_peer_log(
			    SMG_LOG_WARN,
			    "session with '%s': data channels did not join in time",
			    l->pend[i].s->peer_name);
			smg_session_free(l->pend[i].s);
			memset(&l->pend[i], 0, sizeof(l->pend[i]));
		}
	}
}

static int next_timeout(struct smg_listener *l, uint64_t now, uint64_t until)
{
	uint64_t t = until;

	for (unsigned i = 0; i < l->npc; i++)
		if (l->pc[i].deadline < t)
			t = l->pc[i].deadline;
	for (unsigned i = 0; i < PENDING_MAX; i++)
		if (l->pend[i].s != NULL && l->pend[i].deadline < t)
			t = l->pend[i].deadline;
	if (t == UINT64_MAX)
		return -1;
	return t <= now ? 0 : (int)(t - now > 60000 ? 60000 : t - now);
}

int smg_listener_accept(struct smg_listener *l, const struct smg_session_opts *opts,
			struct smg_session **out)
{
	unsigned cap = opts->max_preauth ? opts->max_preauth : SMG_PREAUTH_MAX;
	uint64_t until =
	    opts->accept_timeout_ms ? smg_now_ms() + opts->accept_timeout_ms : UINT64_MAX;
	struct pollfd *pfd;
	struct pending *done = NULL;
	int r = SMG_OK;

	*out = NULL;
	if (opts->identity == NULL || opts->peers == NULL ||
	    opts->channels > SMG_CHANNELS_MAX)
		return SMG_ERR_INVAL;
	if (l->pc == NULL || cap > l->opts.max_preauth) {
		struct pconn *pc = realloc(l->pc, (cap + 1) * sizeof(*pc));

		if (pc == NULL)
			return SMG_ERR_NOMEM;
		l->pc = pc;
	}
	l->opts = *opts;
	l->opts.max_preauth = cap > l->npc ? cap : l->npc;
	if ((pfd = calloc(cap + 1 + l->npc, sizeof(*pfd))) == NULL)
		return SMG_ERR_NOMEM;
	while (done == NULL) {
		uint64_t now = smg_now_ms();
		unsigned n = l->npc;

		expire(l, now);
		if (now >= until) {
			r = SMG_ERR_TIMEOUT;
			break;
		}
		n = l->npc;
		pfd[0] = (struct pollfd){l->fd, POLLIN, 0};
		for (unsigned i = 0; i < n; i++)
			pfd[i + 1] = (struct pollfd){
			    l->pc[i].fd, l->pc[i].stage == PC_WRITE ? POLLOUT : POLLIN,
			    0};
		if (poll(pfd, n + 1, next_timeout(l, now, until)) < 0 && errno != EINTR) {
			r = smg_err_sys(errno);
			break;
		}
		/* Walk backwards: pc_drop moves the last entry into slot i. */
		for (unsigned i = n; i-- > 0 && done == NULL;) {
			if (pfd[i + 1].revents == 0)
				continue;
			r = pc_step(l, &l->pc[i], &done);
			if (r < 0) {
				smg_peer_log(SMG_LOG_WARN, "%s: handshake failed: %s",
					     l->pc[i].addr, smg_strerror(r));
				refused(l, &l->pc[i], r);
			}
			if (r != 0)
				pc_drop(l, i, r < 0 ? r : 0);
		}
		r = SMG_OK;
		if (pfd[0].revents & POLLIN)
			pc_accept(l, cap);
	}
	free(pfd);
	if (done != NULL) {
		*out = done->s;
		memset(done, 0, sizeof(*done));
		smg_info("session with '%s' ready (%s)", (*out)->peer_name,
			 (*out)->ch[0].ring_ok ? "io_uring" : "poll");
	}
	return r;
}

void smg_listener_close(struct smg_listener *l)
{
	if (l == NULL)
		return;
	while (l->npc > 0)
		pc_drop(l, l->npc - 1, 0);
	for (unsigned i = 0; i < PENDING_MAX; i++)
		smg_session_free(l->pend[i].s);
	if (l->fd >= 0)
		close(l->fd);
	free(l->pc);
	free(l);
}
