/* Handshake attacks, each rejected with its specific reason: wrong key,
 * unknown peer, a man in the middle holding a different key, a downgrade by
 * a middleman, a replayed handshake; and the receiver's pre-auth limits:
 * oversize length, version mismatch, concurrency cap, deadline, bad JOIN. */
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include "check.h"
#include "secmig.pb-c.h"
#include "tutil.h"

static int tcp_to(uint16_t port)
{
	struct sockaddr_in a = {0};
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	a.sin_family = AF_INET;
	a.sin_port = htons(port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static int tcp_listen(uint16_t *port)
{
	struct sockaddr_in a = {0};
	socklen_t sl = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(fd, 4) != 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &sl) != 0)
		return -1;
	*port = ntohs(a.sin_port);
	return fd;
}

/* Read one handshake frame; return its REJECT reason, 0 for another type,
 * -1 for EOF/timeout. */
static int read_reject(int fd)
{
	uint8_t buf[HS_WIRE_MAX];
	ProtobufCMessage *m;
	size_t len;
	int reason;

	if (smg_sock_read_hs(fd, buf, sizeof(buf), smg_now_ms() + 5000, &len) != 0)
		return -1;
	if (buf[4] != SMG_FT_REJECT)
		return 0;
	if (smg_proto_unpack(SMG_FT_REJECT, buf + 5, len - 5, &m) != 0)
		return -2;
	reason = ((Smg__Reject *)m)->reason;
	smg_proto_free(m);
	return reason;
}

/* ---- a middleman on loopback ---------------------------------------------- */
enum { PX_DOWNGRADE, PX_RECORD };

struct proxy {
	int lfd, mode;
	uint16_t port, target;
	uint8_t rec[2][HS_WIRE_MAX];
	size_t rec_len[2];
	pthread_t th;
};

static int fwd_frame(int from, int to, uint8_t *buf, size_t *len)
{
	uint64_t dl = smg_now_ms() + 5000;

	if (smg_sock_read_hs(from, buf, HS_WIRE_MAX, dl, len) != 0)
		return -1;
	return smg_sock_write_all(to, buf, *len, dl);
}

/* Copy both ways, passing a half-close on (a clean close is FINAL, then
 * shutdown(SHUT_WR), then the peer's FINAL back). */
static void relay(int a, int b)
{
	struct pollfd p[2] = {{a, POLLIN, 0}, {b, POLLIN, 0}};
	uint8_t buf[65536];
	int open = 2;

	while (open > 0 && poll(p, 2, 5000) > 0) {
		for (int i = 0; i < 2; i++) {
			ssize_t n;

			if (p[i].fd < 0 || !(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			n = recv(p[i].fd, buf, sizeof(buf), MSG_DONTWAIT);
			if (n <= 0) {
				shutdown(i ? a : b, SHUT_WR);
				p[i].fd = -1;
				open--;
				continue;
			}
			if (smg_sock_write_all(i ? a : b, buf, (size_t)n,
					       smg_now_ms() + 5000) != 0)
				return;
		}
	}
}

static void *proxy_main(void *arg)
{
	struct proxy *px = arg;
	uint8_t buf[HS_WIRE_MAX], out[HS_WIRE_MAX];
	int c = accept(px->lfd, NULL, NULL), s = tcp_to(px->target);
	size_t len, olen;

	if (c < 0 || s < 0)
		goto out;
	if (px->mode == PX_DOWNGRADE) {
		ProtobufCMessage *m;
		uint64_t dl = smg_now_ms() + 5000;

		if (smg_sock_read_hs(c, buf, sizeof(buf), dl, &len) != 0 ||
		    smg_proto_unpack(SMG_FT_HELLO, buf + 5, len - 5, &m) != 0)
			goto out;
		/* strip the multi-channel capability from the client's offer */
		((Smg__Hello *)m)->capabilities &= ~SMG_CAP_CHANNELS;
		smg_hs_frame_put(out, sizeof(out), SMG_FT_HELLO, m, &olen);
		smg_proto_free(m);
		if (smg_sock_write_all(s, out, olen, dl) != 0)
			goto out;
	} else {
		if (fwd_frame(c, s, px->rec[0], &px->rec_len[0]) != 0 ||
		    fwd_frame(s, c, buf, &len) != 0 || fwd_frame(s, c, buf, &len) != 0 ||
		    fwd_frame(c, s, px->rec[1], &px->rec_len[1]) != 0)
			goto out;
	}
	relay(c, s);
out:
	if (c >= 0)
		close(c);
	if (s >= 0)
		close(s);
	return NULL;
}

static void proxy_start(struct proxy *px, int mode, uint16_t target)
{
	memset(px, 0, sizeof(*px));
	px->mode = mode;
	px->target = target;
	px->lfd = tcp_listen(&px->port);
	pthread_create(&px->th, NULL, proxy_main, px);
}

static void proxy_stop(struct proxy *px)
{
	pthread_join(px->th, NULL);
	close(px->lfd);
}

/* ---- cases ------------------------------------------------------------------ */
static struct tkeys k;

static int client(const struct smg_identity *id, const char *name, uint16_t port,
		  unsigned channels)
{
	struct smg_session_opts o = topts(id, k.peers, name, channels);
	struct smg_session *s = NULL;
	int r;

	o.expect_peer = "dst";
	r = smg_session_connect("127.0.0.1", port, &o, &s);
	if (r == 0)
		r = smg_session_close(s);
	return r;
}

static void raw_version(uint16_t port)
{
	Smg__Hello h = SMG__HELLO__INIT;
	uint8_t eph[32] = {9}, nonce[32] = {0}, buf[512];
	size_t len;
	int fd = tcp_to(port);

	h.version_min = 5;
	h.version_max = 9;
	h.channels = 1;
	h.ephemeral.data = eph;
	h.ephemeral.len = 32;
	h.nonce.data = nonce;
	h.nonce.len = 32;
	h.name = "src";
	h.initiator = true;
	smg_hs_frame_put(buf, sizeof(buf), SMG_FT_HELLO, &h.base, &len);
	CHECK(send(fd, buf, len, 0) == (ssize_t)len);
	CHECK_EQ(read_reject(fd), SMG__REJECT_REASON__REJECT_VERSION);
	close(fd);
}

static void raw_oversize(uint16_t port)
{
	uint8_t huge[4] = {0xff, 0xff, 0xff, 0xff};
	int fd = tcp_to(port);

	/* Refused on the 4 length bytes alone: nothing of the claimed 4 GiB
	 * is waited for or buffered. */
	CHECK(send(fd, huge, 4, 0) == 4);
	CHECK_EQ(read_reject(fd), SMG__REJECT_REASON__REJECT_MALFORMED);
	close(fd);
}

static void raw_bad_join(uint16_t port)
{
	Smg__Join j = SMG__JOIN__INIT;
	uint8_t id[32] = {1}, mac[crypto_auth_BYTES] = {2}, buf[256];
	size_t len;
	int fd = tcp_to(port);

	j.session_id.data = id;
	j.session_id.len = 32;
	j.index = 1;
	j.mac.data = mac;
	j.mac.len = sizeof(mac);
	smg_hs_frame_put(buf, sizeof(buf), SMG_FT_JOIN, &j.base, &len);
	CHECK(send(fd, buf, len, 0) == (ssize_t)len);
	CHECK_EQ(read_reject(fd), SMG__REJECT_REASON__REJECT_BAD_JOIN);
	close(fd);
}

static void replay(uint16_t port, struct proxy *rec)
{
	uint8_t buf[HS_WIRE_MAX];
	size_t len;
	int fd = tcp_to(port);
	uint64_t dl = smg_now_ms() + 5000;

	CHECK(rec->rec_len[0] > 0 && rec->rec_len[1] > 0);
	CHECK_EQ(smg_sock_write_all(fd, rec->rec[0], rec->rec_len[0], dl), 0);
	CHECK_EQ(smg_sock_read_hs(fd, buf, sizeof(buf), dl, &len), 0); /* fresh HELLO */
	CHECK_EQ(buf[4], SMG_FT_HELLO);
	CHECK_EQ(smg_sock_read_hs(fd, buf, sizeof(buf), dl, &len), 0);
	CHECK_EQ(buf[4], SMG_FT_AUTH);
	CHECK_EQ(smg_sock_write_all(fd, rec->rec[1], rec->rec_len[1], dl), 0);
	/* the recorded signature covers the old server ephemeral: refused */
	CHECK_EQ(read_reject(fd), SMG__REJECT_REASON__REJECT_BAD_SIG);
	close(fd);
}

static void preauth_cap(uint16_t port)
{
	int idle1 = tcp_to(port), idle2 = tcp_to(port), third;

	usleep(200 * 1000); /* let the server take both into its handshake slots */
	third = tcp_to(port);
	/* Slots full of connections that sent nothing: the newcomer takes the
	 * oldest one's slot (issue 13: idle connections starved every
	 * legitimate sender), the others hit the first-frame deadline. */
	CHECK_EQ(read_reject(idle1), SMG__REJECT_REASON__REJECT_BUSY);
	CHECK_EQ(read_reject(idle2), SMG__REJECT_REASON__REJECT_TIMEOUT);
	CHECK_EQ(read_reject(third), SMG__REJECT_REASON__REJECT_TIMEOUT);
	close(idle1);
	close(idle2);
	close(third);
}

/* A server that accepts and never answers: the client's deadline fires. */
static void silent_server(void)
{
	struct smg_session_opts o = topts(k.src, k.peers, "src", 1);
	struct smg_session *s = NULL;
	uint16_t port;
	int l = tcp_listen(&port);

	o.handshake_timeout_ms = 300;
	CHECK_EQ(smg_session_connect("127.0.0.1", port, &o, &s), SMG_ERR_TIMEOUT);
	close(l);
}

/* The server is enrolled, but not under the name the client expects. */
static void wrong_server_name(void)
{
	struct tserver t = {0};
	struct smg_session_opts o = topts(k.src, k.peers, "src", 1);
	struct smg_session *s = NULL;

	CHECK_EQ(smg_listener_open("127.0.0.1", 0, &t.l), 0);
	t.opts = topts(k.src, k.peers, "src", 1); /* claims "src", with src's key */
	t.opts.accept_timeout_ms = 500;
	tserver_start(&t);
	o.expect_peer = "dst";
	CHECK_EQ(smg_session_connect("127.0.0.1", smg_listener_port(t.l), &o, &s),
		 SMG_ERR_UNKNOWN_PEER);
	CHECK_EQ(tserver_join(&t), SMG_ERR_TIMEOUT);
	smg_listener_close(t.l);
}

/* Several clients at once: handshakes run side by side on one listener. */
struct cl {
	uint16_t port;
	int rc;
	pthread_t th;
};

static void *client_main(void *a)
{
	struct cl *c = a;

	c->rc = client(k.src, "src", c->port, 2);
	return NULL;
}

static void concurrent(void)
{
	struct smg_listener *l;
	struct smg_session_opts so = topts(k.dst, k.peers, "dst", 2);
	struct cl c[3];

	CHECK_EQ(smg_listener_open("127.0.0.1", 0, &l), 0);
	for (int i = 0; i < 3; i++) {
		c[i].port = smg_listener_port(l);
		pthread_create(&c[i].th, NULL, client_main, &c[i]);
	}
	for (int i = 0; i < 3; i++) {
		struct smg_session *s = NULL;

		CHECK_EQ(smg_listener_accept(l, &so, &s), 0);
		if (s != NULL)
			CHECK_EQ(smg_session_close(s), 0);
	}
	for (int i = 0; i < 3; i++) {
		pthread_join(c[i].th, NULL);
		CHECK_EQ(c[i].rc, 0);
	}
	smg_listener_close(l);
}

int main(void)
{
	struct tserver t = {0}, evil = {0};
	static struct proxy px, dg;

	if (sodium_init() < 0 || tkeys_init(&k) != 0)
		return 1;
	/* The real destination survives every attack, then serves a client. */
	CHECK_EQ(smg_listener_open("127.0.0.1", 0, &t.l), 0);
	t.opts = topts(k.dst, k.peers, "dst", 4);
	t.opts.max_preauth = 2;
	t.opts.handshake_timeout_ms = 1500;
	t.opts.accept_timeout_ms = 30000;
	t.body = tserver_close_body;
	uint16_t port = smg_listener_port(t.l);

	/* a recorded, successful session through a middleman */
	tserver_start(&t);
	proxy_start(&px, PX_RECORD, port);
	CHECK_EQ(client(k.src, "src", px.port, 1), 0);
	proxy_stop(&px);
	CHECK_EQ(tserver_join(&t), 0);

	tserver_start(&t);
	CHECK_EQ(client(k.evil, "src", port, 1), SMG_ERR_BAD_SIG); /* wrong key */
	CHECK_EQ(client(k.src, "mallory", port, 1), SMG_ERR_UNKNOWN_PEER);
	proxy_start(&dg, PX_DOWNGRADE, port);
	CHECK_EQ(client(k.src, "src", dg.port, 2), SMG_ERR_BAD_SIG); /* downgrade */
	proxy_stop(&dg);
	replay(port, &px);
	raw_version(port);
	raw_oversize(port);
	raw_bad_join(port);
	preauth_cap(port);
	CHECK_EQ(client(k.src, "src", port, 3), 0); /* still serving */
	CHECK_EQ(tserver_join(&t), 0);
	smg_listener_close(t.l);

	/* a middleman holding a different key, claiming to be "dst" */
	CHECK_EQ(smg_listener_open("127.0.0.1", 0, &evil.l), 0);
	evil.opts = topts(k.evil, k.peers, "dst", 1);
	evil.opts.accept_timeout_ms = 500;
	tserver_start(&evil);
	CHECK_EQ(client(k.src, "src", smg_listener_port(evil.l), 1), SMG_ERR_BAD_SIG);
	CHECK_EQ(tserver_join(&evil), SMG_ERR_TIMEOUT);
	smg_listener_close(evil.l);
	silent_server();
	wrong_server_name();
	concurrent();
	tkeys_fini(&k);
	return check_result("test_transport_handshake");
}
