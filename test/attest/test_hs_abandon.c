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
#include "cli/host_tpm.h"
#include "tpm_env.h"
#include "transport/internal.h"

#define MASK	      ((1u << 0) | (1u << 7) | (1u << 16))
#define OLD_TABLE_MAX 64 /* the shared key table this replaced */
#define N_ABANDONED   (3 * OLD_TABLE_MAX)
#define WIRE_MAX      (64 * 1024)

struct host {
	const char *name;
	struct tenv env;
	struct smg_tpm *tpm;
	struct smg_tpm_keys keys;
	struct smg_policy *pol;
	struct smg_attest *at;
	struct smg_handshake_ext ext;
	struct smg_identity *id;
	char pub[SMG_PUBKEY_TEXT_LEN];
};

static char dir[64];
static struct smg_peers *peers;

static int host_up(struct host *h, const char *name)
{
	char path[128];

	h->name = name;
	snprintf(path, sizeof(path), "%s/%s.key", dir, name);
	if (smg_identity_generate(path, false, h->pub, sizeof(h->pub)) != 0 ||
	    smg_identity_load(path, &h->id) != 0 || tenv_start(&h->env, true) != 0 ||
	    smg_tpm_open(h->env.sw.tcti, &h->tpm) != 0 ||
	    smg_tpm_enroll(h->tpm, MASK, false, &h->keys) != 0)
		return -1;
	return 0;
}

static int enrol(struct host *self, const struct host *peer)
{
	char text[8192], block[4096], err[256];
	int n;

	if (smg_policy_format_peer(peer->name, &peer->keys, NULL, 0, block,
				   sizeof(block)) != 0)
		return -1;
	n = snprintf(text, sizeof(text), "host %s\npcrs 0,7,16\n%s  send *\n", self->name,
		     block);
	if (smg_policy_parse(text, (size_t)n, "test", &self->pol, err, sizeof(err)) !=
		0 ||
	    smg_attest_new(self->pol, self->tpm, &self->at) != 0)
		return -1;
	smg_cli_tpm_ext(self->at, &self->ext);
	return 0;
}

static struct smg_session_opts opts_for(const struct host *h,
					const struct smg_handshake_ext *ext)
{
	struct smg_session_opts o;

	memset(&o, 0, sizeof(o));
	o.identity = h->id;
	o.peers = peers;
	o.name = h->name;
	o.ext = ext;
	o.channels = 1;
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

static void interleaved(struct host *src, struct host *dst)
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

struct server {
	struct smg_listener *l;
	struct smg_session_opts opts;
	int rc;
	pthread_t th;
};

static void *server_main(void *arg)
{
	struct server *sv = arg;
	struct smg_session *s = NULL;

	sv->rc = smg_listener_accept(sv->l, &sv->opts, &s);
	if (sv->rc == 0)
		sv->rc = smg_session_close(s);
	return NULL;
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

static void abandoned(struct host *src, struct host *dst)
{
	struct smg_handshake_ext counted = dst->ext;
	struct smg_session_opts co = opts_for(src, &src->ext);
	struct server sv = {0};
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
	pthread_create(&sv.th, NULL, server_main, &sv);
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
	struct host src = {0}, dst = {0};
	char text[512], cmd[128];

	if (!tenv_have_swtpm() || !tenv_have_tools())
		return T_SKIP;
	snprintf(dir, sizeof(dir), "/tmp/smg-hsab-XXXXXX");
	if (sodium_init() < 0 || mkdtemp(dir) == NULL)
		return 1;
	if (host_up(&src, "src") != 0 || host_up(&dst, "dst") != 0) {
		fprintf(stderr, "cannot bring up the two hosts\n");
		CHECK(0);
		goto out;
	}
	snprintf(text, sizeof(text), "src %s\ndst %s\n", src.pub, dst.pub);
	if (smg_peers_parse(text, strlen(text), &peers) != 0 || enrol(&src, &dst) != 0 ||
	    enrol(&dst, &src) != 0) {
		CHECK(0);
		goto out;
	}
	interleaved(&src, &dst);
	abandoned(&src, &dst);
out:
	smg_peers_free(peers);
	for (struct host *h = &src; h != NULL; h = h == &src ? &dst : NULL) {
		smg_attest_free(h->at);
		smg_policy_free(h->pol);
		smg_tpm_close(h->tpm);
		smg_identity_free(h->id);
		tenv_stop(&h->env);
	}
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cleanup failed\n");
	return check_result("test_attest_hs_abandon");
}
