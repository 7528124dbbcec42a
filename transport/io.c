/* Channel socket I/O: io_uring with several frames in flight per channel
 * (one SENDMSG covers every queued frame; partial sends advance through the
 * queue and resubmit), or poll(2) when io_uring is unavailable. Memory per
 * channel is fixed: TX_SLOTS frame buffers and one RX_BUF_BYTES buffer. */
#include <errno.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "transport/internal.h"

#define UD_SEND 1
#define UD_RECV 2

int smg_chan_io_init(struct chan *c, int fd, bool force_poll, unsigned timeout_ms)
{
	static atomic_bool warned;
	int r;

	c->fd = fd;
	c->timeout_ms = timeout_ms;
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

static void tx_advance(struct chan *c, size_t n)
{
	while (n > 0 && c->queued > 0) {
		struct tx_slot *s = &c->slots[c->head];
		size_t take = s->len - s->sent < n ? s->len - s->sent : n;

		s->sent += take;
		n -= take;
		if (s->sent == s->len) {
			s->len = s->sent = 0;
			c->head = (c->head + 1) % TX_SLOTS;
			c->queued--;
		}
	}
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

static int remaining_ms(uint64_t deadline)
{
	uint64_t now = smg_now_ms();

	return now >= deadline ? 0 : (int)(deadline - now);
}

/* ---- poll(2) path -------------------------------------------------------- */
static int poll_wait(int fd, short ev, uint64_t deadline)
{
	struct pollfd p = {fd, ev, 0};
	int n;

	for (;;) {
		n = poll(&p, 1, remaining_ms(deadline));
		if (n > 0)
			return SMG_OK;
		if (n == 0)
			return SMG_ERR_TIMEOUT;
		if (errno != EINTR)
			return smg_err_sys(errno);
	}
}

static int poll_send(struct chan *c, bool wait, bool all)
{
	uint64_t deadline = smg_now_ms() + c->timeout_ms;
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
			return smg_err_sys(errno);
		}
		if (!wait || c->queued == 0 || (!all && c->queued < TX_SLOTS))
			return SMG_OK;
		if ((r = poll_wait(c->fd, POLLOUT, deadline)) != 0)
			return r;
	}
}

static int poll_recv(struct chan *c)
{
	uint64_t deadline = smg_now_ms() + c->timeout_ms;
	ssize_t n;
	int r;

	for (;;) {
		n = recv(c->fd, c->rbuf + c->rend, RX_BUF_BYTES - c->rend, MSG_DONTWAIT);
		if (n > 0) {
			c->rend += (size_t)n;
			return SMG_OK;
		}
		if (n == 0) {
			c->rx_eof = true;
			return SMG_OK;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return smg_err_sys(errno);
		if ((r = poll_wait(c->fd, POLLIN, deadline)) != 0)
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

static int ring_handle(struct chan *c, struct io_uring_cqe *cqe)
{
	uint64_t ud = io_uring_cqe_get_data64(cqe);
	int res = cqe->res;

	io_uring_cqe_seen(&c->ring, cqe);
	if (ud == UD_SEND) {
		c->send_inflight = false;
		if (res < 0 && res != -EAGAIN && res != -EINTR)
			return smg_err_sys(-res);
		if (res > 0)
			tx_advance(c, (size_t)res);
	} else if (ud == UD_RECV) {
		c->recv_inflight = false;
		if (res < 0 && res != -EAGAIN && res != -EINTR)
			return smg_err_sys(-res);
		if (res > 0)
			c->rend += (size_t)res;
		else if (res == 0)
			c->rx_eof = true;
	}
	return SMG_OK;
}

/* Reap every completion that is ready; with a deadline, wait for one. */
static int ring_reap(struct chan *c, uint64_t deadline)
{
	struct io_uring_cqe *cqe;
	int r;

	if (deadline != 0) {
		int ms = remaining_ms(deadline);
		struct __kernel_timespec ts = {ms / 1000,
					       (long long)(ms % 1000) * 1000000};

		do
			r = io_uring_wait_cqe_timeout(&c->ring, &cqe, &ts);
		while (r == -EINTR);
		if (r == -ETIME)
			return SMG_ERR_TIMEOUT;
		if (r < 0)
			return smg_err_sys(-r);
		if ((r = ring_handle(c, cqe)) != 0)
			return r;
	}
	while (io_uring_peek_cqe(&c->ring, &cqe) == 0)
		if ((r = ring_handle(c, cqe)) != 0)
			return r;
	return SMG_OK;
}

static int ring_send(struct chan *c, bool wait, bool all)
{
	uint64_t deadline = smg_now_ms() + c->timeout_ms;
	int r;

	if ((r = ring_reap(c, 0)) != 0 || (r = ring_kick_send(c)) != 0)
		return r;
	while (wait && (all ? c->queued > 0 : c->queued >= TX_SLOTS)) {
		if ((r = ring_reap(c, deadline)) != 0 || (r = ring_kick_send(c)) != 0)
			return r;
	}
	return SMG_OK;
}

static int ring_recv(struct chan *c)
{
	uint64_t deadline = smg_now_ms() + c->timeout_ms;
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
		if ((r = ring_reap(c, deadline)) != 0)
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

	if (c->dead)
		return c->dead;
	r = c->ring_ok ? ring_send(c, wait, all) : poll_send(c, wait, all);
	if (r != 0)
		c->dead = r;
	return r;
}

int smg_chan_io_recv(struct chan *c)
{
	int r;

	if (c->dead)
		return c->dead;
	r = c->ring_ok ? ring_recv(c) : poll_recv(c);
	if (r != 0)
		c->dead = r;
	return r;
}

void smg_chan_io_fini(struct chan *c)
{
	if (c->ring_ok) {
		/* The kernel may still write into rbuf or read a slot: end the
		 * socket's operations and collect them before freeing. */
		if (c->send_inflight || c->recv_inflight) {
			uint64_t deadline = smg_now_ms() + 1000;

			shutdown(c->fd, SHUT_RDWR);
			while ((c->send_inflight || c->recv_inflight) &&
			       smg_now_ms() < deadline &&
			       ring_reap(c, deadline) != SMG_ERR_TIMEOUT)
				;
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
