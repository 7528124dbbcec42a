/* End to end over loopback: handshake, N channels, control and bulk frames
 * both ways, FINAL exchange; on both the io_uring and the poll(2) paths.
 * Bulk frames given back unsent (smg_chan_bulk_abandon) never reach the
 * peer and leave the stream intact. */
#include "check.h"
#include "secmig.pb-c.h"
#include "tutil.h"

#define NFRAMES 200

static void server_echo(struct tserver *t)
{
	struct smg_session *s = t->s;
	struct smg_frame f;
	int r;

	/* Echo the client's frames of every channel back on the same channel,
	 * then close cleanly (which waits for the client's FINAL). */
	for (unsigned c = 0; c < smg_session_channels(s); c++) {
		for (unsigned i = 0; i < NFRAMES + 1; i++) {
			uint8_t *p;

			if ((r = smg_chan_recv(s, c, &f)) != 0 ||
			    (r = smg_chan_bulk_begin(s, c, f.len, &p)) != 0)
				break;
			memcpy(p, f.payload, f.len);
			if ((r = smg_chan_bulk_submit(s, c, f.type, f.len)) != 0)
				break;
		}
		if (r != 0)
			t->rc = r;
	}
	r = smg_session_close(s);
	if (t->rc == 0)
		t->rc = r;
	t->s = NULL;
}

static void run(struct tkeys *k, unsigned channels, bool force_poll)
{
	struct tserver t = {0};
	struct smg_session_opts co = topts(k->src, k->peers, "src", channels);
	struct smg_session *s = NULL;
	uint8_t expect[4096];
	struct smg_frame f;
	int r;

	co.force_poll = force_poll;
	CHECK_EQ(smg_listener_open("127.0.0.1", 0, &t.l), 0);
	t.opts = topts(k->dst, k->peers, "dst", SMG_CHANNELS_MAX);
	t.opts.force_poll = force_poll;
	t.body = server_echo;
	CHECK_EQ(tserver_start(&t), 0);
	co.expect_peer = "dst";
	r = smg_session_connect("127.0.0.1", smg_listener_port(t.l), &co, &s);
	CHECK_EQ(r, 0);
	if (r != 0) {
		tserver_join(&t);
		smg_listener_close(t.l);
		return;
	}
	CHECK_EQ(smg_session_channels(s), channels);
	CHECK(strcmp(smg_session_peer_name(s), "dst") == 0);
	CHECK(smg_session_uses_uring(s) == !force_poll);
	CHECK(smg_session_mem_used(s) <= smg_session_mem_bound(channels));
	for (unsigned c = 0; c < channels; c++) {
		Smg__RoundStart rs = SMG__ROUND_START__INIT;

		rs.round = 7 + c;
		rs.pages = 12345;
		CHECK_EQ(smg_chan_send_msg(s, c, SMG_FT_ROUND_START, &rs.base), 0);
		for (unsigned i = 0; i < NFRAMES; i++) {
			uint8_t *p;
			size_t len = 1 + (i * 97) % sizeof(expect);

			if (i % 10 == 3) { /* a frame begun, filled, given back */
				CHECK_EQ(smg_chan_bulk_begin(s, c, len, &p), 0);
				memset(p, 0xee, len);
				CHECK_EQ(smg_chan_bulk_abandon(s, c), 0);
				CHECK_EQ(smg_chan_bulk_abandon(s, c), SMG_ERR_STATE);
				CHECK_EQ(
				    smg_chan_bulk_submit(s, c, SMG_FT_DISK_CHUNK, len),
				    SMG_ERR_STATE);
			}
			CHECK_EQ(smg_chan_bulk_begin(s, c, len, &p), 0);
			for (size_t j = 0; j < len; j++)
				p[j] = (uint8_t)(i + j + c);
			CHECK_EQ(smg_chan_bulk_submit(s, c, SMG_FT_DISK_CHUNK, len), 0);
		}
		CHECK_EQ(smg_chan_flush(s, c), 0);
	}
	for (unsigned c = 0; c < channels; c++) {
		ProtobufCMessage *m = NULL;

		CHECK_EQ(smg_chan_recv(s, c, &f), 0);
		CHECK_EQ(f.type, SMG_FT_ROUND_START);
		CHECK_EQ(smg_frame_unpack(&f, &smg__round_start__descriptor, &m), 0);
		if (m != NULL) {
			CHECK_EQ(((Smg__RoundStart *)m)->round, 7 + c);
			CHECK_EQ(((Smg__RoundStart *)m)->pages, 12345);
		}
		smg_frame_msg_free(m);
		for (unsigned i = 0; i < NFRAMES; i++) {
			size_t len = 1 + (i * 97) % sizeof(expect);

			for (size_t j = 0; j < len; j++)
				expect[j] = (uint8_t)(i + j + c);
			r = smg_chan_recv(s, c, &f);
			CHECK_EQ(r, 0);
			if (r != 0)
				break;
			CHECK_EQ(f.type, SMG_FT_DISK_CHUNK);
			CHECK_EQ(f.len, len);
			CHECK(memcmp(f.payload, expect, len) == 0);
		}
	}
	CHECK_EQ(smg_session_close(s), 0);
	CHECK_EQ(tserver_join(&t), 0);
	smg_listener_close(t.l);
}

int main(void)
{
	struct tkeys k;

	if (sodium_init() < 0 || tkeys_init(&k) != 0)
		return 1;
	run(&k, 1, false);
	run(&k, 3, false);
	run(&k, 1, true);
	run(&k, 4, true);
	tkeys_fini(&k);
	return check_result("test_transport_session");
}
