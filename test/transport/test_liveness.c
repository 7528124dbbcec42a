/* Session liveness (docs/protocol.md, "Liveness") on a real loopback
 * session, io_uring and poll(2) alike:
 *  - a channel with nothing to receive outlives the idle limit while
 *    another channel keeps moving frames, and fails once the whole session
 *    is silent;
 *  - a peer that sends nothing but PINGs fails the wait at the progress
 *    limit;
 *  - a deadline (smg_session_set_deadline) ends a wait the peer keeps alive;
 *  - smg_chan_interrupt ends a receive wait without losing what arrives
 *    next (the io_uring receive left in flight fills the buffer in place);
 *  - smg_chan_has_input sees an unread frame without waiting.
 * Every check is on what happened (how many frames moved before a wait
 * ended), never on how long it took. */
#include <stdatomic.h>

#include "check.h"
#include "tutil.h"

#define IDLE_MS		1500 /* idle limit of the waiting side */
#define FEED_GAP_MS	250  /* peer's frames on channel 0: well inside IDLE_MS */
#define FEED_FRAMES	12   /* 3 s of frames: twice the idle limit */
#define PROGRESS_MS	1000 /* progress limit of the PING test */
#define PING_GAP_MS	50
#define DEADLINE_MS	500
#define PATTERN_LEN	3000
#define HAS_INPUT_TRIES 200 /* x 10 ms */

static struct tkeys k;
static atomic_int peer_sent, got_ch0, go;

static void nap(unsigned ms)
{
	usleep(ms * 1000u);
}

/* ---- peer scripts (server side) -------------------------------------------- */
static void peer_feed(struct tserver *t)
{
	struct smg_frame f;

	for (int i = 0; i < FEED_FRAMES; i++) {
		if (smg_chan_send(t->s, 0, SMG_FT_DONE, NULL, 0) != 0 ||
		    smg_chan_flush(t->s, 0) != 0)
			break;
		peer_sent++;
		nap(FEED_GAP_MS);
	}
	/* then silence until the client gives up and hangs up */
	while (smg_chan_recv(t->s, 0, &f) == 0)
		;
	smg_session_free(t->s);
	t->s = NULL;
}

static void peer_pings(struct tserver *t)
{
	while (smg_chan_send(t->s, 0, SMG_FT_PING, NULL, 0) == 0 &&
	       smg_chan_flush(t->s, 0) == 0) {
		peer_sent++;
		nap(PING_GAP_MS);
	}
	smg_session_free(t->s);
	t->s = NULL;
}

static void peer_after_go(struct tserver *t)
{
	uint8_t buf[PATTERN_LEN];
	struct smg_frame f;

	while (!go)
		nap(5);
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)(i * 31 + 7);
	if (smg_chan_send(t->s, 0, SMG_FT_DISK_CHUNK, buf, sizeof(buf)) == 0 &&
	    smg_chan_send(t->s, 1, SMG_FT_DONE, NULL, 0) == 0 &&
	    smg_chan_flush(t->s, 0) == 0 && smg_chan_flush(t->s, 1) == 0)
		peer_sent++;
	while (smg_chan_recv(t->s, 0, &f) == 0)
		;
	smg_session_free(t->s);
	t->s = NULL;
}

/* ---- client side --------------------------------------------------------------- */
struct run {
	struct tserver t;
	struct smg_session *s;
};

static void start(struct run *r, bool force_poll, void (*body)(struct tserver *),
		  unsigned idle, unsigned progress)
{
	struct smg_session_opts co = topts(k.src, k.peers, "src", 2);

	memset(r, 0, sizeof(*r));
	peer_sent = got_ch0 = go = 0;
	co.force_poll = force_poll;
	co.io_timeout_ms = idle;
	co.progress_timeout_ms = progress;
	CHECK_EQ(smg_listener_open("127.0.0.1", 0, &r->t.l), 0);
	r->t.opts = topts(k.dst, k.peers, "dst", 2);
	r->t.opts.force_poll = force_poll;
	r->t.body = body;
	tserver_start(&r->t);
	CHECK_EQ(smg_session_connect("127.0.0.1", smg_listener_port(r->t.l), &co, &r->s),
		 0);
}

static void finish(struct run *r)
{
	smg_session_free(r->s);
	tserver_join(&r->t);
	smg_listener_close(r->t.l);
}

static void *read_ch0(void *a)
{
	struct smg_session *s = a;
	struct smg_frame f;

	while (smg_chan_recv(s, 0, &f) == 0)
		got_ch0++;
	return NULL;
}

/* Channel 1 idles while channel 0 moves: the wait on channel 1 lasts until
 * the session goes silent, after every frame of the feed. */
static void quiet_channel(bool force_poll)
{
	struct run r;
	struct smg_frame f;
	pthread_t th;

	start(&r, force_poll, peer_feed, IDLE_MS, 0);
	if (r.s == NULL)
		return;
	pthread_create(&th, NULL, read_ch0, r.s);
	CHECK_EQ(smg_chan_recv(r.s, 1, &f), SMG_ERR_TIMEOUT);
	CHECK_EQ(got_ch0, FEED_FRAMES); /* the quiet channel outlived the feed */
	CHECK_EQ(peer_sent, FEED_FRAMES);
	pthread_join(th, NULL); /* its own wait times out too: silence */
	finish(&r);
}

static void pings_only(bool force_poll)
{
	struct run r;
	struct smg_frame f;

	start(&r, force_poll, peer_pings, 60000, PROGRESS_MS);
	if (r.s == NULL)
		return;
	CHECK_EQ(smg_chan_recv(r.s, 0, &f), SMG_ERR_TIMEOUT);
	/* PINGs flowed (so the session was never silent), and the wait ended
	 * long before the idle limit (60 s) could have had a say */
	CHECK(peer_sent >= 2);
	CHECK(peer_sent < 60000 / PING_GAP_MS / 2);
	finish(&r);
}

static void deadline(bool force_poll)
{
	struct run r;
	struct smg_frame f;
	int before;

	start(&r, force_poll, peer_pings, 60000, 0);
	if (r.s == NULL)
		return;
	while (peer_sent < 3)
		nap(5);
	before = peer_sent;
	smg_session_set_deadline(r.s, DEADLINE_MS);
	CHECK_EQ(smg_chan_recv(r.s, 0, &f), SMG_ERR_TIMEOUT);
	CHECK(peer_sent > before); /* the peer was alive all along */
	CHECK(peer_sent < 60000 / PING_GAP_MS / 2);
	/* past the deadline nothing goes, not even a send that would not wait */
	CHECK_EQ(smg_chan_send(r.s, 1, SMG_FT_DONE, NULL, 0), SMG_ERR_TIMEOUT);
	finish(&r);
}

struct waiter {
	struct smg_session *s;
	atomic_int rc;
	atomic_int waiting;
};

static void *wait_ch0(void *a)
{
	struct waiter *w = a;
	struct smg_frame f;

	w->waiting = 1;
	w->rc = smg_chan_recv(w->s, 0, &f);
	return NULL;
}

static void interrupt_then_frame(bool force_poll)
{
	struct waiter w = {0};
	struct run r;
	struct smg_frame f;
	pthread_t th;
	bool same = true;
	int tries;

	start(&r, force_poll, peer_after_go, 60000, 0);
	if (r.s == NULL)
		return;
	w.s = r.s;
	pthread_create(&th, NULL, wait_ch0, &w);
	while (!w.waiting)
		nap(5);
	nap(50); /* blocked in the wait (a receive in flight on io_uring) */
	smg_chan_interrupt(r.s, 0);
	pthread_join(th, NULL);
	CHECK_EQ(w.rc, SMG_ERR_INTERRUPTED);
	CHECK(!smg_chan_has_input(r.s, 1));
	go = 1;
	/* the frame that arrives now is whole and intact */
	CHECK_EQ(smg_chan_recv(r.s, 0, &f), 0);
	CHECK_EQ(f.type, SMG_FT_DISK_CHUNK);
	CHECK_EQ(f.len, PATTERN_LEN);
	for (size_t i = 0; i < f.len && f.len == PATTERN_LEN; i++)
		same &= f.payload[i] == (uint8_t)(i * 31 + 7);
	CHECK(same);
	/* channel 1: a frame nobody read is seen without waiting */
	for (tries = 0; tries < HAS_INPUT_TRIES && !smg_chan_has_input(r.s, 1); tries++)
		nap(10);
	CHECK(tries < HAS_INPUT_TRIES);
	CHECK_EQ(smg_chan_recv(r.s, 1, &f), 0);
	CHECK_EQ(f.type, SMG_FT_DONE);
	CHECK(!smg_chan_has_input(r.s, 1));
	finish(&r);
}

/* Another thread of this side working locally (a slow backend write) for
 * twice the idle limit: the peer cannot be heard meanwhile, so a wait on
 * another channel does not blame it; once the work ends, silence counts
 * again and the wait ends after the idle limit. */
static void local_busy(bool force_poll)
{
	struct waiter w = {0};
	struct run r;
	pthread_t th;
	int rc_while_busy;

	start(&r, force_poll, peer_after_go, IDLE_MS, 0);
	if (r.s == NULL)
		return;
	w.s = r.s;
	w.rc = 1;
	smg_session_busy(r.s, true);
	pthread_create(&th, NULL, wait_ch0, &w);
	while (!w.waiting)
		nap(5);
	nap(2 * IDLE_MS);
	rc_while_busy = w.rc;
	smg_session_busy(r.s, false);
	pthread_join(th, NULL);
	CHECK_EQ(rc_while_busy, 1); /* still waiting while this side worked */
	CHECK_EQ(w.rc, SMG_ERR_TIMEOUT);
	go = 1;
	finish(&r);
}

int main(void)
{
	if (tkeys_init(&k) != 0) {
		fprintf(stderr, "keys\n");
		return 1;
	}
	for (int poll_path = 0; poll_path < 2; poll_path++) {
		quiet_channel(poll_path);
		pings_only(poll_path);
		deadline(poll_path);
		interrupt_then_frame(poll_path);
		local_busy(poll_path);
	}
	tkeys_fini(&k);
	return check_result("liveness");
}
