/* The send/receive pipeline under pressure: tiny SO_SNDBUF/SO_RCVBUF and
 * thousands of frames on several channels at once (io_uring and poll(2));
 * a peer that never reads (back-pressure, bounded memory, timeout); a cut
 * stream, an oversize length and data after FINAL on a live session. */
#include <stdatomic.h>

#include "check.h"
#include "tutil.h"

#define FRAMES	 2000
#define MAXFRAME 3000

static struct tkeys k;
static atomic_int errors;

static size_t frame_len(unsigned i)
{
	return 1 + (i * 7919u) % MAXFRAME;
}

struct worker {
	struct smg_session *s;
	unsigned chan;
	pthread_t th;
};

static void *sender(void *a)
{
	struct worker *w = a;

	for (unsigned i = 0; i < FRAMES; i++) {
		size_t len = frame_len(i);
		uint8_t *p;

		if (smg_chan_bulk_begin(w->s, w->chan, len, &p) != 0) {
			errors++;
			return NULL;
		}
		smg_store_be32(p, i);
		memset(p + (len >= 4 ? 4 : len), (int)(i + w->chan),
		       len >= 4 ? len - 4 : 0);
		if (smg_chan_bulk_submit(w->s, w->chan, SMG_FT_DISK_CHUNK, len) != 0) {
			errors++;
			return NULL;
		}
	}
	if (smg_chan_flush(w->s, w->chan) != 0)
		errors++;
	return NULL;
}

static void *receiver(void *a)
{
	struct worker *w = a;
	struct smg_frame f;

	for (unsigned i = 0; i < FRAMES; i++) {
		size_t len = frame_len(i);

		if (smg_chan_recv(w->s, w->chan, &f) != 0 || f.len != len) {
			errors++;
			return NULL;
		}
		if (len >= 4 && smg_load_be32(f.payload) != i) {
			errors++;
			return NULL;
		}
		for (size_t j = 4; j < len; j++)
			if (f.payload[j] != (uint8_t)(i + w->chan)) {
				errors++;
				return NULL;
			}
	}
	return NULL;
}

static void run_workers(struct smg_session *s, void *(*fn)(void *))
{
	struct worker w[SMG_CHANNELS_MAX];
	unsigned n = smg_session_channels(s);

	for (unsigned c = 0; c < n; c++) {
		w[c].s = s;
		w[c].chan = c;
		pthread_create(&w[c].th, NULL, fn, &w[c]);
	}
	for (unsigned c = 0; c < n; c++)
		pthread_join(w[c].th, NULL);
}

static void server_receive(struct tserver *t)
{
	run_workers(t->s, receiver);
	t->rc = smg_session_close(t->s);
	t->s = NULL;
}

static void stream(bool force_poll)
{
	struct tserver t = {0};
	struct smg_session_opts co = topts(k.src, k.peers, "src", 3);
	struct smg_session *s = NULL;

	errors = 0;
	co.force_poll = force_poll;
	co.sock_buf = 4096;
	co.rekey_bytes = 1 << 20; /* several rekeys along the way */
	CHECK_EQ(smg_listener_open("127.0.0.1", 0, &t.l), 0);
	t.opts = topts(k.dst, k.peers, "dst", 4);
	t.opts.force_poll = force_poll;
	t.opts.sock_buf = 4096;
	t.body = server_receive;
	tserver_start(&t);
	CHECK_EQ(smg_session_connect("127.0.0.1", smg_listener_port(t.l), &co, &s), 0);
	if (s != NULL) {
		CHECK(smg_session_uses_uring(s) == !force_poll);
		run_workers(s, sender);
		CHECK(smg_session_mem_used(s) <= smg_session_mem_bound(3));
		CHECK_EQ(smg_session_close(s), 0);
	}
	CHECK_EQ(tserver_join(&t), 0);
	CHECK_EQ(errors, 0);
	smg_listener_close(t.l);
}

/* ---- a peer that never reads ------------------------------------------------ */
static atomic_int client_done;
static size_t server_mem_before, server_mem_after;

static void server_idle(struct tserver *t)
{
	server_mem_before = smg_session_mem_used(t->s);
	while (!client_done)
		usleep(10 * 1000);
	server_mem_after = smg_session_mem_used(t->s);
	smg_session_free(t->s);
	t->s = NULL;
}

static void never_reads(bool force_poll)
{
	struct tserver t = {0};
	struct smg_session_opts co = topts(k.src, k.peers, "src", 1);
	struct smg_session *s = NULL;
	unsigned sent = 0;
	int r = 0;

	client_done = 0;
	co.force_poll = force_poll;
	co.sock_buf = 8192;
	co.io_timeout_ms = 300;
	CHECK_EQ(smg_listener_open("127.0.0.1", 0, &t.l), 0);
	t.opts = topts(k.dst, k.peers, "dst", 1);
	t.opts.sock_buf = 8192;
	t.opts.force_poll = force_poll;
	t.body = server_idle;
	tserver_start(&t);
	CHECK_EQ(smg_session_connect("127.0.0.1", smg_listener_port(t.l), &co, &s), 0);
	while (s != NULL && sent < 100000) {
		uint8_t *p;

		if ((r = smg_chan_bulk_begin(s, 0, 65536, &p)) != 0)
			break;
		memset(p, 0x5a, 65536);
		if ((r = smg_chan_bulk_submit(s, 0, SMG_FT_DISK_CHUNK, 65536)) != 0)
			break;
		sent++;
	}
	/* The window fills, then the sender waits and gives up at the I/O
	 * timeout instead of buffering without bound. */
	CHECK_EQ(r, SMG_ERR_TIMEOUT);
	CHECK(sent < 1000);
	if (s != NULL) {
		CHECK(smg_session_mem_used(s) <= smg_session_mem_bound(1));
		smg_session_free(s);
	}
	client_done = 1;
	CHECK_EQ(tserver_join(&t), 0);
	/* The receiving side that never called recv holds the same fixed
	 * buffers however much the peer pushed. */
	CHECK_EQ(server_mem_after, server_mem_before);
	CHECK(server_mem_after <= smg_session_mem_bound(1));
	smg_listener_close(t.l);
}

/* ---- attacks on a live session -------------------------------------------- */
static int expect_rc;
static unsigned expect_frames;

static void server_expect(struct tserver *t)
{
	struct smg_frame f;
	size_t mem = smg_session_mem_used(t->s);
	int r = 0;

	for (unsigned i = 0; i < expect_frames && r == 0; i++)
		r = smg_chan_recv(t->s, 0, &f);
	if (r == 0)
		r = smg_chan_recv(t->s, 0, &f);
	if (r == SMG_ERR_EOF) /* then what follows FINAL */
		r = smg_chan_recv(t->s, 0, &f);
	t->rc = r == expect_rc && smg_session_mem_used(t->s) == mem ? 0 : r;
	if (t->rc != 0)
		fprintf(stderr, "server got %d (%s), wanted %d\n", r, smg_strerror(r),
			expect_rc);
	smg_session_free(t->s);
	t->s = NULL;
}

enum attack { CUT, OVERSIZE, AFTER_FINAL };

static void attack(enum attack a)
{
	struct tserver t = {0};
	struct smg_session_opts co = topts(k.src, k.peers, "src", 1);
	struct smg_session *s = NULL;

	expect_frames = 5;
	expect_rc = a == CUT	    ? SMG_ERR_CUT
		    : a == OVERSIZE ? SMG_ERR_TOO_LONG
				    : SMG_ERR_AFTER_FINAL;
	CHECK_EQ(smg_listener_open("127.0.0.1", 0, &t.l), 0);
	t.opts = topts(k.dst, k.peers, "dst", 1);
	t.body = server_expect;
	tserver_start(&t);
	CHECK_EQ(smg_session_connect("127.0.0.1", smg_listener_port(t.l), &co, &s), 0);
	for (unsigned i = 0; s != NULL && i < expect_frames; i++)
		CHECK_EQ(smg_chan_send(s, 0, SMG_FT_DISK_CHUNK, "abc", 3), 0);
	if (s != NULL)
		CHECK_EQ(smg_chan_flush(s, 0), 0);
	if (s != NULL && a == OVERSIZE) {
		static const uint8_t huge[4] = {0xff, 0xff, 0xff, 0xf0};

		CHECK_EQ(smg_sock_write_all(s->ch[0].fd, huge, 4, smg_now_ms() + 1000),
			 0);
		usleep(100 * 1000);
	} else if (s != NULL && a == AFTER_FINAL) {
		static uint8_t buf[256];
		struct frame_tx tx = s->ch[0].tx;
		size_t w;

		CHECK_EQ(smg_frame_seal(&tx, buf, SMG_FT_CLOSE, 0, true, &w), 0);
		CHECK_EQ(smg_sock_write_all(s->ch[0].fd, buf, w, smg_now_ms() + 1000), 0);
		tx.final = false;
		CHECK_EQ(smg_frame_seal(&tx, buf, SMG_FT_DONE, 0, false, &w), 0);
		CHECK_EQ(smg_sock_write_all(s->ch[0].fd, buf, w, smg_now_ms() + 1000), 0);
		usleep(100 * 1000);
	}
	smg_session_free(s); /* no FINAL */
	CHECK_EQ(tserver_join(&t), 0);
	smg_listener_close(t.l);
}

int main(void)
{
	if (sodium_init() < 0 || tkeys_init(&k) != 0)
		return 1;
	stream(false);
	stream(true);
	never_reads(false);
	never_reads(true);
	attack(CUT);
	attack(OVERSIZE);
	attack(AFTER_FINAL);
	tkeys_fini(&k);
	return check_result("test_transport_pipeline");
}
