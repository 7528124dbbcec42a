/* The TPM-bound handshake's per-handshake state (issue 19): every handshake
 * owns its ephemeral P-256 key from the extension's begin to its end, so
 * handshakes that start and are abandoned -- many more than the old shared
 * key table held -- neither push a live handshake's key out nor leak one
 * (ASan). Two cases:
 *   interleaved: a genuine handshake stops between the HELLOs and its TPM
 *     stage while 3 * 64 others start and are dropped on both hosts, then
 *     completes (with the old table and its "oldest loses its slot" rule it
 *     failed: "no ephemeral key for this handshake");
 *   abandoned: peers that send a HELLO, read the server's answer and hang
 *     up, one after another, then a genuine session over the same listener;
 *     begin and end are counted and must pair up. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <sodium.h>

#include "attest/attest.h"
#include "base/base.h"
#include "check.h"
#include "tpm_hosts.h"
#include "transport/internal.h"

#define OLD_TABLE_MAX 64 /* the shared key table this replaced */
#define N_ABANDONED   (3 * OLD_TABLE_MAX)
#define WIRE_MAX      (64 * 1024)

static char dir[64];
static struct smg_peers *peers;

static struct smg_session_opts opts_for(const struct thost *h,
					const struct smg_handshake_ext *ext)
{
	struct smg_session_opts o = thost_opts(h, peers, ext);

	o.handshake_timeout_ms = 10000;
	o.io_timeout_ms = 10000;
	o.accept_timeout_ms = 60000;
	return o;
}

/* ---- interleaved: the pure handshake functions, no I/O ----------------- */

/* A handshake that starts on both hosts and is dropped after the HELLOs. */
static int start_and_drop(const struct smg_session_opts *co,
			  const struct smg_session_opts *so, uint8_t *a, uint8_t *b)
{
	struct hs *c = sodium_malloc(sizeof(*c)), *s = sodium_malloc(sizeof(*s));
	size_t la = 0, lb = 0;
	int r = SMG_ERR_NOMEM;

	if (c != NULL && s != NULL) {
		smg_hs_init(c, true, co);
		smg_hs_init(s, false, so);
		if ((r = smg_hs_client_hello(c, a, WIRE_MAX, &la)) == 0)
			r = smg_hs_server_on_hello(s, a, la, b, WIRE_MAX, &lb);
		smg_hs_wipe(c);
		smg_hs_wipe(s);
	}
	sodium_free(c);
	sodium_free(s);
	return r;
}

static void interleaved(struct thost *src, struct thost *dst)
{
	struct smg_session_opts co = opts_for(src, &src->ext),
				so = opts_for(dst, &dst->ext);
	uint8_t *a = malloc(WIRE_MAX), *b = malloc(WIRE_MAX), *fin = malloc(WIRE_MAX);
	struct hs *c = sodium_malloc(sizeof(*c)), *s = sodium_malloc(sizeof(*s));
	size_t la = 0, lb = 0, lf = 0, used, blen;
	const uint8_t *body;
	uint8_t type;
	int dropped = 0;

	co.expect_peer = dst->name;
	if (a == NULL || b == NULL || fin == NULL || c == NULL || s == NULL) {
		CHECK(0);
		goto out;
	}
	smg_hs_init(c, true, &co);
	smg_hs_init(s, false, &so);
	CHECK_EQ(smg_hs_client_hello(c, a, WIRE_MAX, &la), 0);
	CHECK_EQ(smg_hs_server_on_hello(s, a, la, b, WIRE_MAX, &lb), 0);
	/* b: the server's HELLO then its AUTH; both hosts now hold the genuine
	 * handshake's ephemeral keys. Others come and go meanwhile. */
	for (int i = 0; i < N_ABANDONED; i++)
		dropped += start_and_drop(&co, &so, a, fin) == 0;
	CHECK_EQ(dropped, N_ABANDONED);
	CHECK_EQ(smg_hs_frame_get(b, lb, &type, &body, &blen, &used), 0);
	CHECK(used < lb);
	if (used >= lb)
		goto wipe;
	CHECK_EQ(
	    smg_hs_client_on_server(c, b, used, b + used, lb - used, a, WIRE_MAX, &la),
	    0);
	CHECK_EQ(smg_hs_server_auth_sig(s, a, la), 0);
	CHECK_EQ(smg_hs_server_finish(s, a, la, fin, WIRE_MAX, &lf), 0);
	CHECK_EQ(smg_hs_client_on_finish(c, fin, lf), 0);
	CHECK_EQ(c->state, HS_DONE);
	CHECK_EQ(s->state, HS_DONE);
	CHECK(sodium_memcmp(c->session_key, s->session_key, HS_KEY_LEN) == 0);
	printf("interleaved: %d handshakes started and dropped on both hosts, "
	       "the genuine one completed: %s\n",
	       dropped, c->state == HS_DONE && s->state == HS_DONE ? "yes" : "no");
wipe:
	smg_hs_wipe(c);
	smg_hs_wipe(s);
out:
	sodium_free(c);
	sodium_free(s);
	free(a);
	free(b);
	free(fin);
}

/* ---- abandoned: real connections to a listener ---------------------- */

static const struct smg_handshake_ext *inner;
static atomic_int n_begin, n_end;

static int cnt_begin(void *self, void **ctx)
{
	int r = inner->begin(self, ctx);

	if (r == 0)
		atomic_fetch_add(&n_begin, 1);
	return r;
}

static void cnt_end(void *self, void *ctx)
{
	atomic_fetch_add(&n_end, 1);
	inner->end(self, ctx);
}

/* Connect, send hello, read until the server answered, hang up. True if
 * the server answered with its HELLO (it began its half), false if it
 * refused the connection (busy: it had not yet reaped our last ones). */
static bool hello_and_hang_up(uint16_t port, const uint8_t *hello, size_t len)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
	uint8_t buf[5];
	size_t got = 0;
	ssize_t n;
	int fd;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return false;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    write(fd, hello, len) != (ssize_t)len) {
		close(fd);
		return false;
	}
	while (got < sizeof(buf) && (n = read(fd, buf + got, sizeof(buf) - got)) > 0)
		got += (size_t)n;
	close(fd);
	return got == sizeof(buf) && buf[4] == SMG_FT_HELLO;
}

static void abandoned(struct thost *src, struct thost *dst)
{
	struct smg_handshake_ext counted = dst->ext;
	struct smg_session_opts co = opts_for(src, &src->ext);
	struct tserver1 sv = {0};
	struct smg_session *s = NULL;
	struct hs *h = sodium_malloc(sizeof(*h));
	uint8_t *hello = malloc(WIRE_MAX);
	size_t hlen = 0;
	int answered = 0, tries = 0, rc;

	inner = &dst->ext;
	counted.begin = cnt_begin;
	counted.end = cnt_end;
	co.expect_peer = dst->name;
	sv.opts = opts_for(dst, &counted);
	if (h == NULL || hello == NULL || smg_listener_open("127.0.0.1", 0, &sv.l) != 0) {
		CHECK(0);
		goto out;
	}
	pthread_create(&sv.th, NULL, tserver1_main, &sv);
	/* progress-based: count the HELLOs the server answered, whatever the
	 * number of busy refusals on the way (bounded) */
	for (; answered < N_ABANDONED && tries < 20 * N_ABANDONED; tries++) {
		smg_hs_init(h, true, &co);
		if (smg_hs_client_hello(h, hello, WIRE_MAX, &hlen) == 0 &&
		    hello_and_hang_up(smg_listener_port(sv.l), hello, hlen))
			answered++;
		smg_hs_wipe(h);
	}
	CHECK_EQ(answered, N_ABANDONED);
	rc = smg_session_connect("127.0.0.1", smg_listener_port(sv.l), &co, &s);
	CHECK_EQ(rc, 0);
	if (rc == 0)
		CHECK_EQ(smg_session_close(s), 0);
	pthread_join(sv.th, NULL);
	CHECK_EQ(sv.rc, 0);
	smg_listener_close(sv.l);
	printf("abandoned: %d HELLOs answered and dropped (%d tries), then a session: "
	       "%s; server begin %d, end %d\n",
	       answered, tries, rc == 0 ? "ok" : smg_strerror(rc), atomic_load(&n_begin),
	       atomic_load(&n_end));
	CHECK(atomic_load(&n_begin) > N_ABANDONED);
	CHECK_EQ(atomic_load(&n_begin), atomic_load(&n_end));
out:
	sodium_free(h);
	free(hello);
}

int main(void)
{
	struct thost src = {0}, dst = {0};
	char cmd[128];

	if (!tenv_have_swtpm() || !tenv_have_tools())
		return T_SKIP;
	snprintf(dir, sizeof(dir), "/tmp/smg-hsab-XXXXXX");
	if (sodium_init() < 0 || mkdtemp(dir) == NULL)
		return 1;
	if (thost_pair_up(&src, &dst, dir, &peers) != 0) {
		CHECK(0);
		goto out;
	}
	interleaved(&src, &dst);
	abandoned(&src, &dst);
out:
	smg_peers_free(peers);
	thost_down(&src);
	thost_down(&dst);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cleanup failed\n");
	return check_result("test_attest_hs_abandon");
}
