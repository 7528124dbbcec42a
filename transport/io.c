/* Channel socket I/O: io_uring with several frames in flight per channel
 * (one SENDMSG covers every queued frame; partial sends advance through the
 * queue and resubmit), or poll(2) when io_uring is unavailable. Memory per
 * channel is fixed: TX_SLOTS frame buffers and one RX_BUF_BYTES buffer. */
#include <errno.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "transport/internal.h"

#define UD_SEND	     1
#define UD_RECV	     2
#define FINI_REAP_MS 1000 /* after shutdown(2) the kernel ends them at once */

int smg_chan_io_init(struct chan *c, int fd, bool force_poll, struct live *live)
{
	static atomic_bool warned;
	int r;

	c->fd = fd;
	c->live = live;
	if ((c->rbuf = malloc(RX_BUF_BYTES)) == NULL)
		return SMG_ERR_NOMEM;
	c->mem += RX_BUF_BYTES;
	if (force_poll)
		return SMG_OK;
	if ((r = io_uring_queue_init(URING_DEPTH, &c->ring, 0)) < 0) {
		if (!atomic_exchange(&warned, true))
			smg_warn(
			    "io_uring unavailable (%s): using poll(2) for socket I/O",
			    strerror(-r));
		return SMG_OK;
	}
	c->ring_ok = true;
	return SMG_OK;
}

/* n bytes went to the kernel: the peer is reading, the session lives;
 * a whole frame other than a PING is progress. */
static void tx_advance(struct chan *c, size_t n)
{
	bool progress = false;

	while (n > 0 && c->queued > 0) {
		struct tx_slot *s = &c->slots[c->head];
		size_t take = s->len - s->sent < n ? s->len - s->sent : n;

		s->sent += take;
		n -= take;
		if (s->sent == s->len) {
			progress |= !s->ping; /* a whole frame went out */
			s->len = s->sent = 0;
			c->head = (c->head + 1) % TX_SLOTS;
			c->queued--;
		}
	}
	smg_live_moved(c->live, progress);
}

/* Bytes arrived: the session lives. Progress waits for a whole frame
 * (chan.c), so a peer trickling one frame byte by byte is not making any. */
static void rx_advance(struct chan *c, size_t n)
{
	c->rend += n;
	smg_live_moved(c->live, false);
}

static unsigned build_iov(struct chan *c)
{
	unsigned i;

	for (i = 0; i < c->queued; i++) {
		struct tx_slot *s = &c->slots[(c->head + i) % TX_SLOTS];

		c->iov[i].iov_base = s->buf + s->sent;
		c->iov[i].iov_len = s->len - s->sent;
	}
	memset(&c->msg, 0, sizeof(c->msg));
	c->msg.msg_iov = c->iov;
	c->msg.msg_iovlen = i;
	return i;
}

/* The next slice of a wait that began at since, or the reason it ends:
 * the session's liveness rule, or (receive waits) an interrupt. */
static int wait_slice(struct chan *c, uint64_t since, bool rx, int *ms)
{
	enum live_verdict v;

	if (rx && atomic_exchange(&c->intr, false))
		return SMG_ERR_INTERRUPTED;
	if ((v = smg_live_check(c->live, since, ms)) != LIVE_OK) {
		char what[48];

		snprintf(what, sizeof(what), "channel %u %s", c->index,
			 rx ? "receive" : "send");
		return smg_live_fail(c->live, v, what);
	}
	return SMG_OK;
}

/* The peer's end went away (reset, or closed while we were sending): the
 * stream is cut, not a failure of this host. */
static int sock_err(int e)
{
	return e == ECONNRESET || e == EPIPE ? SMG_ERR_CUT : smg_err_sys(e);
}

/* ---- poll(2) path -------------------------------------------------------- */
static int poll_wait(struct chan *c, short ev, uint64_t since)
{
	struct pollfd p = {c->fd, ev, 0};
	int n, ms, r;

	for (;;) {
		if ((r = wait_slice(c, since, ev == POLLIN, &ms)) != 0)
			return r;
		n = poll(&p, 1, ms);
		if (n > 0)
			return SMG_OK;
		if (n < 0 && errno != EINTR)
			return smg_err_sys(errno);
	}
}

static int poll_send(struct chan *c, bool wait, bool all)
{
	ssize_t n;
	int r;

	for (;;) {
		while (c->queued > 0) {
			build_iov(c);
			n = sendmsg(c->fd, &c->msg, MSG_NOSIGNAL | MSG_DONTWAIT);
			if (n > 0) {
				tx_advance(c, (size_t)n);
				continue;
			}
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
				break;
			return sock_err(errno);
		}
		if (!wait || c->queued == 0 || (!all && c->queued < TX_SLOTS))
			return SMG_OK;
		if ((r = poll_wait(c, POLLOUT, c->tx_since)) != 0)
			return r;
	}
}

static int poll_recv(struct chan *c)
{
	ssize_t n;
	int r;

	for (;;) {
		n = recv(c->fd, c->rbuf + c->rend, RX_BUF_BYTES - c->rend, MSG_DONTWAIT);
		if (n > 0) {
			rx_advance(c, (size_t)n);
			return SMG_OK;
		}
		if (n == 0) {
			c->rx_eof = true;
			return SMG_OK;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return sock_err(errno);
		if ((r = poll_wait(c, POLLIN, c->rx_since)) != 0)
			return r;
	}
}

/* ---- io_uring path ------------------------------------------------------- */
static int ring_submit(struct chan *c)
{
	int r = io_uring_submit(&c->ring);

	return r < 0 ? smg_err_sys(-r) : SMG_OK;
}

static int ring_kick_send(struct chan *c)
{
	struct io_uring_sqe *sqe;

	if (c->send_inflight || c->queued == 0)
		return SMG_OK;
	if ((sqe = io_uring_get_sqe(&c->ring)) == NULL)
		return SMG_ERR_INTERNAL;
	build_iov(c);
	io_uring_prep_sendmsg(sqe, c->fd, &c->msg, MSG_NOSIGNAL);
	io_uring_sqe_set_data64(sqe, UD_SEND);
	c->send_inflight = true;
	return ring_submit(c);
}

/* A request that ends without its bytes: the caller simply submits again.
 * ECANCELED: the thread that submitted it exited (the kernel cancels a
 * task's requests then), e.g. a receive left in flight by an interrupted
 * wait, the channel then driven by another thread. */
static bool retry_res(int res)
{
	return res == -EAGAIN || res == -EINTR || res == -ECANCELED;
}

static int ring_handle(struct chan *c, struct io_uring_cqe *cqe)
{
	uint64_t ud = io_uring_cqe_get_data64(cqe);
	int res = cqe->res;

	io_uring_cqe_seen(&c->ring, cqe);
	if (ud == UD_SEND) {
		c->send_inflight = false;
		if (res < 0 && !retry_res(res))
			return sock_err(-res);
		if (res > 0)
			tx_advance(c, (size_t)res);
	} else if (ud == UD_RECV) {
		c->recv_inflight = false;
		if (res < 0 && !retry_res(res))
			return sock_err(-res);
		if (res > 0)
			rx_advance(c, (size_t)res);
		else if (res == 0)
			c->rx_eof = true;
	}
	return SMG_OK;
}

static int ring_wait_one(struct chan *c, int ms)
{
	struct __kernel_timespec ts = {ms / 1000, (long long)(ms % 1000) * 1000000};
	struct io_uring_cqe *cqe;
	int r;

	do
		r = io_uring_wait_cqe_timeout(&c->ring, &cqe, &ts);
	while (r == -EINTR);
	if (r == -ETIME)
		return SMG_ERR_TIMEOUT;
	if (r < 0)
		return smg_err_sys(-r);
	return ring_handle(c, cqe);
}

/* Reap every completion that is ready; with wait, first block for one
 * (the wait that began at since; rx: a receive wait). */
static int ring_reap(struct chan *c, bool wait, uint64_t since, bool rx)
{
	struct io_uring_cqe *cqe;
	int ms, r;

	while (wait) {
		if ((r = wait_slice(c, since, rx, &ms)) != 0)
			return r;
		if ((r = ring_wait_one(c, ms)) == SMG_OK)
			break;
		if (r != SMG_ERR_TIMEOUT)
			return r;
	}
	while (io_uring_peek_cqe(&c->ring, &cqe) == 0)
		if ((r = ring_handle(c, cqe)) != 0)
			return r;
	return SMG_OK;
}

static int ring_send(struct chan *c, bool wait, bool all)
{
	int r;

	if ((r = ring_reap(c, false, 0, false)) != 0 || (r = ring_kick_send(c)) != 0)
		return r;
	while (wait && (all ? c->queued > 0 : c->queued >= TX_SLOTS)) {
		if ((r = ring_reap(c, true, c->tx_since, false)) != 0 ||
		    (r = ring_kick_send(c)) != 0)
			return r;
	}
	return SMG_OK;
}

static int ring_recv(struct chan *c)
{
	struct io_uring_sqe *sqe;
	int r;

	if (!c->recv_inflight) {
		if ((sqe = io_uring_get_sqe(&c->ring)) == NULL)
			return SMG_ERR_INTERNAL;
		io_uring_prep_recv(sqe, c->fd, c->rbuf + c->rend, RX_BUF_BYTES - c->rend,
				   0);
		io_uring_sqe_set_data64(sqe, UD_RECV);
		c->recv_inflight = true;
		if ((r = ring_submit(c)) != 0)
			return r;
	}
	while (c->recv_inflight) {
		if ((r = ring_reap(c, true, c->rx_since, true)) != 0)
			return r;
		/* a send completion may have freed room: keep the pipe full */
		if ((r = ring_kick_send(c)) != 0)
			return r;
	}
	return SMG_OK;
}

int smg_chan_io_send(struct chan *c, bool wait, bool all)
{
	int r;

	if (c->dead || c->tx_dead)
		return c->dead ?: c->tx_dead;
	c->tx_since = smg_now_ms();
	r = c->ring_ok ? ring_send(c, wait, all) : poll_send(c, wait, all);
	/* A failed send ends sending only: what the peer sent before it went
	 * (its ABORT, saying why) can still be read. */
	if (r != 0)
		c->tx_dead = r;
	return r;
}

int smg_chan_io_recv(struct chan *c)
{
	int r;

	if (c->dead)
		return c->dead;
	r = c->ring_ok ? ring_recv(c) : poll_recv(c);
	if (r != 0 && r != SMG_ERR_INTERRUPTED)
		c->dead = r;
	return r;
}

bool smg_chan_io_pending(struct chan *c)
{
	uint8_t b;

	if (c->ring_ok && !c->dead)
		ring_reap(c, false, 0, true);
	if (c->rstart < c->rend)
		return true;
	/* With a receive in flight the kernel hands new bytes to it, and
	 * reaping above collected any it completed. */
	return !c->recv_inflight && c->fd >= 0 &&
	       recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) == 1;
}

void smg_chan_io_fini(struct chan *c)
{
	if (c->ring_ok) {
		/* The kernel may still write into rbuf or read a slot: end the
		 * socket's operations and collect them before freeing. */
		if (c->send_inflight || c->recv_inflight) {
			uint64_t deadline = smg_now_ms() + FINI_REAP_MS;
			struct io_uring_cqe *cqe;

			shutdown(c->fd, SHUT_RDWR);
			while ((c->send_inflight || c->recv_inflight) &&
			       smg_now_ms() < deadline &&
			       ring_wait_one(c, FINI_REAP_MS) != SMG_ERR_TIMEOUT)
				;
			while (io_uring_peek_cqe(&c->ring, &cqe) == 0)
				ring_handle(c, cqe);
		}
		io_uring_queue_exit(&c->ring);
		c->ring_ok = false;
	}
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	for (unsigned i = 0; i < TX_SLOTS; i++) {
		free(c->slots[i].buf);
		c->slots[i].buf = NULL;
	}
	free(c->rbuf);
	c->rbuf = NULL;
	sodium_memzero(&c->tx, sizeof(c->tx));
	sodium_memzero(&c->rx, sizeof(c->rx));
	smg_aead_thread_wipe(); /* this thread's cipher context held a subkey */
}
