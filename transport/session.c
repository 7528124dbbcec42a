/* Sessions: the client's connect (handshake, then data channels joined with
 * a MAC bound to the session), the per-channel frame API and clean close. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "secmig.pb-c.h"
#include "transport/internal.h"

static unsigned hs_timeout(const struct smg_session_opts *o)
{
	return o->handshake_timeout_ms ? o->handshake_timeout_ms
				       : SMG_HANDSHAKE_TIMEOUT_MS;
}

int smg_sock_tune(int fd, int sock_buf)
{
	int one = 1;

	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) != 0)
		return smg_err_sys(errno);
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (sock_buf > 0) {
		/* Tiny buffers (tests): also shrink the segment size, else a
		 * 64 KiB loopback MSS against a few-KiB window leaves the
		 * sender on the persist timer (silly-window avoidance). Only
		 * takes effect before connect. */
		int mss = sock_buf / 4 > 536 ? sock_buf / 4 : 536;

		setsockopt(fd, IPPROTO_TCP, TCP_MAXSEG, &mss, sizeof(mss));
		if (setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sock_buf, sizeof(int)) != 0 ||
		    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sock_buf, sizeof(int)) != 0)
			return smg_err_sys(errno);
	}
	return SMG_OK;
}

static int wait_fd(int fd, short ev, uint64_t deadline)
{
	struct pollfd p = {fd, ev, 0};
	uint64_t now;
	int n;

	for (;;) {
		now = smg_now_ms();
		if (now >= deadline)
			return SMG_ERR_TIMEOUT;
		n = poll(&p, 1, (int)(deadline - now));
		if (n > 0)
			return SMG_OK;
		if (n < 0 && errno != EINTR)
			return smg_err_sys(errno);
	}
}

int smg_sock_write_all(int fd, const void *buf, size_t len, uint64_t deadline_ms)
{
	const uint8_t *p = buf;
	ssize_t n;
	int r;

	while (len > 0) {
		n = send(fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0) {
			p += n;
			len -= (size_t)n;
		} else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if ((r = wait_fd(fd, POLLOUT, deadline_ms)) != 0)
				return r;
		} else if (n < 0 && errno != EINTR) {
			return errno == EPIPE || errno == ECONNRESET ? SMG_ERR_EOF
								     : smg_err_sys(errno);
		}
	}
	return SMG_OK;
}

/* Exactly n bytes: the handshake never reads past its own frame, so what
 * follows stays in the socket for the channel's stream. */
static int read_exact(int fd, uint8_t *buf, size_t n, uint64_t deadline)
{
	ssize_t got;
	int r;

	while (n > 0) {
		got = recv(fd, buf, n, MSG_DONTWAIT);
		if (got > 0) {
			buf += got;
			n -= (size_t)got;
		} else if (got == 0) {
			return SMG_ERR_EOF;
		} else if (errno == EAGAIN || errno == EWOULDBLOCK) {
			if ((r = wait_fd(fd, POLLIN, deadline)) != 0)
				return r;
		} else if (errno != EINTR) {
			return errno == ECONNRESET ? SMG_ERR_EOF : smg_err_sys(errno);
		}
	}
	return SMG_OK;
}

int smg_sock_read_hs(int fd, uint8_t *buf, size_t cap, uint64_t deadline_ms, size_t *len)
{
	uint32_t n;
	int r;

	if ((r = read_exact(fd, buf, 4, deadline_ms)) != 0)
		return r;
	n = smg_load_be32(buf);
	if (n > SMG_HS_FRAME_MAX || (size_t)n + 4 > cap)
		return SMG_ERR_TOO_LONG; /* before reading (or buffering) it */
	if (n < 1)
		return SMG_ERR_PROTO;
	if ((r = read_exact(fd, buf + 4, n, deadline_ms)) != 0)
		return r;
	*len = 4 + (size_t)n;
	return SMG_OK;
}

void smg_send_reject(int fd, int reason, const char *detail)
{
	Smg__Reject rj = SMG__REJECT__INIT;
	uint8_t buf[512];
	size_t len;

	rj.reason = reason;
	rj.detail = (char *)(detail != NULL ? detail : "");
	if (smg_hs_frame_put(buf, sizeof(buf), SMG_FT_REJECT, &rj.base, &len) == 0)
		(void)!send(fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
}

/* If frame is a REJECT, return the error it stands for (logged). */
static int check_reject(const uint8_t *frame, size_t len)
{
	const uint8_t *body;
	ProtobufCMessage *m;
	size_t blen, used;
	uint8_t type;
	int r;

	if (smg_hs_frame_get(frame, len, &type, &body, &blen, &used) != 0 ||
	    type != SMG_FT_REJECT)
		return SMG_OK;
	if (smg_proto_unpack(SMG_FT_REJECT, body, blen, &m) != 0) {
		smg_err("handshake: server rejected us (unreadable reason)");
		return SMG_ERR_PROTO;
	}
	r = smg_hs_err_from_reject(((Smg__Reject *)m)->reason);
	smg_err("handshake: server rejected us: %s", smg_strerror(r));
	smg_proto_free(m);
	return r;
}

int smg_session_new(const struct hs *hs, struct smg_session **out)
{
	struct smg_session *s;

	*out = NULL;
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return SMG_ERR_NOMEM;
	if ((s->session_key = sodium_malloc(HS_KEY_LEN)) == NULL) {
		free(s);
		return SMG_ERR_NOMEM;
	}
	memcpy(s->session_key, hs->session_key, HS_KEY_LEN);
	memcpy(s->transcript, hs->transcript, SMG_TRANSCRIPT_LEN);
	memcpy(s->peer_name, hs->peer_name, sizeof(s->peer_name));
	memcpy(s->our_name, hs->our_name, sizeof(s->our_name));
	if (hs->peer != NULL)
		memcpy(s->peer_key, hs->peer->pubkey, SMG_PUBKEY_LEN);
	s->identity = hs->opts->identity;
	smg_hs_session_id(s->session_key, s->session_id);
	s->nchan = hs->channels;
	s->caps = hs->caps;
	s->initiator = hs->initiator;
	for (unsigned i = 0; i < SMG_CHANNELS_MAX; i++)
		s->ch[i].fd = -1;
	*out = s;
	return SMG_OK;
}

int smg_session_attach(struct smg_session *s, unsigned idx, int fd,
		       const struct smg_session_opts *opts)
{
	struct chan *c = &s->ch[idx];

	c->index = idx;
	c->tx.rekey_bytes = opts->rekey_bytes ? opts->rekey_bytes : SMG_REKEY_BYTES;
	c->tx.rekey_at_ms = smg_now_ms() + SMG_REKEY_INTERVAL_MS;
	if (idx == 0) /* the session's clock starts with its first channel */
		smg_live_init(&s->live, opts, s->peer_name);
	return smg_chan_io_init(c, fd, opts->force_poll, &s->live);
}

void smg_session_stream_offer(struct smg_session *s, unsigned idx,
			      uint8_t frame[SMG_STREAM_FRAME_LEN])
{
	struct chan *c = &s->ch[idx];
	uint8_t key[SS_KEY];

	smg_hs_chan_key(s->session_key, idx, s->initiator ? 0 : 1, key);
	smg_store_be32(frame, 1 + SS_HEADER);
	frame[4] = SMG_FT_STREAM;
	randombytes_buf(frame + 5, SS_HEADER); /* our nonce salt (docs/protocol.md §5) */
	smg_frame_tx_key(&c->tx, key, frame + 5);
	sodium_memzero(key, sizeof(key));
}

int smg_session_stream_accept(struct smg_session *s, unsigned idx, const uint8_t *in,
			      size_t len)
{
	struct chan *c = &s->ch[idx];
	uint8_t key[SS_KEY];
	int r;

	if ((r = check_reject(in, len)) != 0)
		return r;
	if (len != SMG_STREAM_FRAME_LEN || in[4] != SMG_FT_STREAM)
		return SMG_ERR_PROTO;
	smg_hs_chan_key(s->session_key, idx, s->initiator ? 1 : 0, key);
	smg_frame_rx_key(&c->rx, key, in + 5);
	r = SMG_OK;
	sodium_memzero(key, sizeof(key));
	return r;
}

int smg_session_stream_start(struct smg_session *s, unsigned idx, uint64_t deadline_ms)
{
	struct chan *c = &s->ch[idx];
	uint8_t frame[SMG_STREAM_FRAME_LEN], in[HS_WIRE_MAX];
	size_t len;
	int r;

	smg_session_stream_offer(s, idx, frame);
	if ((r = smg_sock_write_all(c->fd, frame, sizeof(frame), deadline_ms)) != 0 ||
	    (r = smg_sock_read_hs(c->fd, in, sizeof(in), deadline_ms, &len)) != 0)
		return r;
	return smg_session_stream_accept(s, idx, in, len);
}

static int tcp_connect(const char *host, uint16_t port, uint64_t deadline, int sock_buf,
		       int *out)
{
	struct addrinfo hints = {0}, *res = NULL, *ai;
	char portstr[8];
	int fd = -1, r, err = 0;
	socklen_t elen = sizeof(err);

	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	snprintf(portstr, sizeof(portstr), "%u", port);
	if ((r = getaddrinfo(host, portstr, &hints, &res)) != 0) {
		smg_err("cannot resolve %s: %s", host, gai_strerror(r));
		return SMG_ERR_NOT_FOUND;
	}
	r = SMG_ERR_SYS;
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
			    ai->ai_protocol);
		if (fd < 0)
			continue;
		if ((r = smg_sock_tune(fd, sock_buf)) != 0)
			goto next;
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0 &&
		    errno != EINPROGRESS) {
			r = smg_err_sys(errno);
			goto next;
		}
		if ((r = wait_fd(fd, POLLOUT, deadline)) != 0)
			goto next;
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) != 0 || err != 0) {
			r = smg_err_sys(err);
			goto next;
		}
		*out = fd;
		freeaddrinfo(res);
		return SMG_OK;
	next:
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	smg_err("cannot connect to %s port %u: %s", host, port,
		r == SMG_ERR_TIMEOUT ? "timed out" : strerror(smg_err_errno()));
	return r;
}

static int client_handshake(int fd, struct hs *hs, const struct smg_session_opts *opts,
			    uint64_t deadline)
{
	uint8_t *out = NULL, *hello = NULL, *auth = NULL;
	size_t olen, hlen, alen;
	int r = SMG_ERR_NOMEM;

	if ((out = malloc(HS_WIRE_MAX)) == NULL ||
	    (hello = malloc(HS_WIRE_MAX)) == NULL || (auth = malloc(HS_WIRE_MAX)) == NULL)
		goto out;
	if ((r = smg_hs_client_hello(hs, out, HS_WIRE_MAX, &olen)) != 0 ||
	    (r = smg_sock_write_all(fd, out, olen, deadline)) != 0)
		goto out;
	if ((r = smg_sock_read_hs(fd, hello, HS_WIRE_MAX, deadline, &hlen)) != 0 ||
	    (r = check_reject(hello, hlen)) != 0)
		goto out;
	if ((r = smg_sock_read_hs(fd, auth, HS_WIRE_MAX, deadline, &alen)) != 0 ||
	    (r = check_reject(auth, alen)) != 0)
		goto out;
	if ((r = smg_hs_client_on_server(hs, hello, hlen, auth, alen, out, HS_WIRE_MAX,
					 &olen)) != 0)
		goto out;
	r = smg_sock_write_all(fd, out, olen, deadline);
	/* A mode extension: the server's TPM-bound confirmation and evidence
	 * come after it verified our signature (docs/protocol.md, FINISH). */
	if (r == 0 && hs->state == HS_WAIT_FINISH &&
	    (r = smg_sock_read_hs(fd, auth, HS_WIRE_MAX, deadline, &alen)) == 0 &&
	    (r = check_reject(auth, alen)) == 0)
		r = smg_hs_client_on_finish(hs, auth, alen);
out:
	free(out);
	free(hello);
	free(auth);
	return r;
}

static int join_channel(struct smg_session *s, const char *host, uint16_t port,
			unsigned idx, const struct smg_session_opts *opts,
			uint64_t deadline)
{
	Smg__Join j = SMG__JOIN__INIT;
	uint8_t mac[crypto_auth_BYTES], buf[256];
	size_t len;
	int fd, r;

	if ((r = tcp_connect(host, port, deadline, opts->sock_buf, &fd)) != 0)
		return r;
	smg_hs_join_mac(s->session_key, s->session_id, idx, mac);
	j.session_id.data = s->session_id;
	j.session_id.len = sizeof(s->session_id);
	j.index = idx;
	j.mac.data = mac;
	j.mac.len = sizeof(mac);
	if ((r = smg_hs_frame_put(buf, sizeof(buf), SMG_FT_JOIN, &j.base, &len)) != 0 ||
	    (r = smg_sock_write_all(fd, buf, len, deadline)) != 0) {
		close(fd);
		return r;
	}
	if ((r = smg_session_attach(s, idx, fd, opts)) != 0)
		return r; /* fd is owned by the channel now */
	return smg_session_stream_start(s, idx, deadline);
}

static int opts_check(const struct smg_session_opts *o)
{
	if (o == NULL || o->identity == NULL || o->peers == NULL ||
	    o->channels > SMG_CHANNELS_MAX)
		return SMG_ERR_INVAL;
	return SMG_OK;
}

int smg_session_connect(const char *host, uint16_t port,
			const struct smg_session_opts *opts, struct smg_session **out)
{
	struct smg_session *s = NULL;
	struct hs *hs = NULL;
	uint64_t deadline;
	int fd = -1, r;

	*out = NULL;
	if ((r = opts_check(opts)) != 0 || (r = smg_sodium_ready()) != 0)
		return r;
	deadline = smg_now_ms() + hs_timeout(opts);
	if ((hs = sodium_malloc(sizeof(*hs))) == NULL)
		return SMG_ERR_NOMEM;
	smg_hs_init(hs, true, opts);
	if ((r = tcp_connect(host, port, deadline, opts->sock_buf, &fd)) != 0)
		goto out;
	if ((r = client_handshake(fd, hs, opts, deadline)) != 0) {
		if (r == SMG_ERR_EOF)
			smg_err("handshake: %s:%u closed the connection", host, port);
		else if (r == SMG_ERR_TIMEOUT)
			smg_err("handshake: %s:%u did not answer in time", host, port);
		goto out;
	}
	if ((r = smg_session_new(hs, &s)) != 0)
		goto out;
	snprintf(s->peer_addr, sizeof(s->peer_addr), "%s:%u", host, port);
	r = smg_session_attach(s, 0, fd, opts);
	fd = -1; /* owned by channel 0 now */
	if (r != 0)
		goto out;
	if ((r = smg_session_stream_start(s, 0, deadline)) != 0)
		goto out;
	for (unsigned i = 1; i < s->nchan; i++)
		if ((r = join_channel(s, host, port, i, opts, deadline)) != 0)
			goto out;
	smg_info("session with '%s': %u channel%s, %s", s->peer_name, s->nchan,
		 s->nchan == 1 ? "" : "s", s->ch[0].ring_ok ? "io_uring" : "poll");
	*out = s;
	s = NULL;
out:
	if (fd >= 0)
		close(fd);
	smg_session_free(s);
	smg_hs_wipe(hs);
	sodium_free(hs);
	return r;
}

const char *smg_session_peer_name(const struct smg_session *s)
{
	return s->peer_name;
}

const uint8_t *smg_session_peer_key(const struct smg_session *s)
{
	return s->peer_key;
}

/* From another thread (a signal, secmig cancel): every receive wait ends
 * within one wait slice (smg_chan_interrupt) and every receive from then on
 * returns SMG_ERR_CANCELLED; sending still works, so the caller can still
 * say ABORT. */
void smg_session_interrupt(struct smg_session *s)
{
	atomic_store(&s->interrupted, true);
	for (unsigned i = 0; i < s->nchan; i++)
		smg_chan_interrupt(s, i);
}

void smg_session_resume(struct smg_session *s)
{
	atomic_store(&s->interrupted, false);
}

unsigned smg_session_channels(const struct smg_session *s)
{
	return s->nchan;
}

uint64_t smg_session_capabilities(const struct smg_session *s)
{
	return s->caps;
}

const uint8_t *smg_session_transcript(const struct smg_session *s)
{
	return s->transcript;
}

const char *smg_session_our_name(const struct smg_session *s)
{
	return s->our_name;
}

const char *smg_session_peer_addr(const struct smg_session *s)
{
	return s->peer_addr;
}

void smg_session_our_key(const struct smg_session *s, uint8_t pub[SMG_PUBKEY_LEN])
{
	smg_identity_public(s->identity, pub);
}

int smg_session_sign(const struct smg_session *s, const void *msg, size_t len,
		     uint8_t sig[SMG_SIG_LEN])
{
	return smg_identity_sign(s->identity, msg, len, sig);
}

bool smg_session_uses_uring(const struct smg_session *s)
{
	return s->ch[0].ring_ok;
}

size_t smg_session_mem_bound(unsigned channels)
{
	return (size_t)channels * (RX_BUF_BYTES + TX_SLOTS * (size_t)FRAME_WIRE_MAX) +
	       sizeof(struct smg_session);
}

size_t smg_session_mem_used(const struct smg_session *s)
{
	size_t n = sizeof(*s);

	for (unsigned i = 0; i < s->nchan; i++)
		n += s->ch[i].mem;
	return n;
}

void smg_session_free(struct smg_session *s)
{
	if (s == NULL)
		return;
	for (unsigned i = 0; i < SMG_CHANNELS_MAX; i++)
		smg_chan_io_fini(&s->ch[i]);
	if (s->session_key != NULL)
		sodium_free(s->session_key);
	sodium_memzero(s, sizeof(*s));
	free(s);
}
