/* The handshake extension hooks the TPM-bound mode plugs into, driven by a
 * test extension whose secret comes from a per-peer key in the peers file's
 * options ("psk=HEX"): the extra secret must reach the key schedule (a
 * mismatch fails key confirmation), evidence must travel and be checked,
 * a side with an extension refuses a peer without one, and each
 * handshake's state (begin) reaches its own callbacks and is ended once,
 * on success and on every refusal. */
#include <stdatomic.h>

#include "check.h"
#include "tutil.h"

#define TEST_CAP SMG_CAP_TPM

struct tx_ext {
	uint8_t psk[32];       /* "our" secret; the peer's comes from options */
	bool corrupt_evidence; /* produce evidence the peer must refuse */
	unsigned calls;
	atomic_uint begins, ends; /* end may run on the listener's worker */
};

/* Per-handshake state: the hello this handshake sent. */
struct tx_hs {
	uint8_t hello[16];
	bool said;
};

static int x_begin(void *self, void **ctx)
{
	struct tx_ext *x = self;

	if ((*ctx = calloc(1, sizeof(struct tx_hs))) == NULL)
		return SMG_ERR_NOMEM;
	atomic_fetch_add(&x->begins, 1);
	return SMG_OK;
}

static void x_end(void *self, void *ctx)
{
	struct tx_ext *x = self;

	atomic_fetch_add(&x->ends, 1);
	free(ctx); /* ASan: a handshake that never ends leaks this */
}

static int psk_of(const struct smg_peer *peer, uint8_t out[32])
{
	const char *p = strstr(peer->options, "psk=");

	if (p == NULL || sodium_hex2bin(out, 32, p + 4, 64, NULL, NULL, NULL) != 0)
		return SMG_ERR_CONFIG;
	return SMG_OK;
}

static int x_hello(void *self, void *ctx, bool initiator, uint8_t *out, size_t cap,
		   size_t *len)
{
	struct tx_ext *x = self;
	struct tx_hs *h = ctx;

	x->calls++;
	randombytes_buf(out, 16); /* stands in for an ephemeral P-256 key */
	memcpy(h->hello, out, 16);
	h->said = true;
	*len = 16;
	return SMG_OK;
}

/* extra = H(psk_client || ext_client || ext_server): both sides must hold
 * the same psk for the peer pair. */
static int x_secret(void *self, void *ctx, bool initiator, const struct smg_peer *peer,
		    const uint8_t *our, size_t our_len, const uint8_t *theirs,
		    size_t their_len, uint8_t *out, size_t cap, size_t *len)
{
	struct tx_ext *x = self;
	const struct tx_hs *h = ctx;
	crypto_generichash_state st;

	x->calls++;
	/* this handshake's own state: the hello it sent */
	if (!h->said || our_len != 16 || memcmp(h->hello, our, 16) != 0)
		return SMG_ERR_STATE;
	if (their_len != 16)
		return SMG_ERR_ATTEST;
	crypto_generichash_init(&st, x->psk, 32, 32);
	crypto_generichash_update(&st, initiator ? our : theirs, 16);
	crypto_generichash_update(&st, initiator ? theirs : our, 16);
	crypto_generichash_final(&st, out, 32);
	*len = 32;
	return SMG_OK;
}

static int x_evidence(void *self, void *ctx, bool initiator,
		      const uint8_t th[SMG_TRANSCRIPT_LEN], uint8_t *out, size_t cap,
		      size_t *len)
{
	struct tx_ext *x = self;

	x->calls++;
	crypto_auth(out, th, SMG_TRANSCRIPT_LEN, x->psk); /* stands in for a quote */
	if (x->corrupt_evidence)
		out[0] ^= 1;
	*len = crypto_auth_BYTES;
	return SMG_OK;
}

static int x_verify(void *self, void *ctx, bool initiator, const struct smg_peer *peer,
		    const uint8_t th[SMG_TRANSCRIPT_LEN], const uint8_t *ev, size_t len)
{
	struct tx_ext *x = self;
	uint8_t psk[32];

	x->calls++;
	if (psk_of(peer, psk) != 0 || len != crypto_auth_BYTES ||
	    crypto_auth_verify(ev, th, SMG_TRANSCRIPT_LEN, psk) != 0)
		return SMG_ERR_ATTEST;
	return SMG_OK;
}

static struct tkeys k;
static struct smg_peers *peers_psk;
static uint8_t psk_a[32], psk_b[32];

static struct smg_handshake_ext make_ext(struct tx_ext *x)
{
	struct smg_handshake_ext e = {.self = x,
				      .name = "test",
				      .capability = TEST_CAP,
				      .begin = x_begin,
				      .end = x_end,
				      .hello_ext = x_hello,
				      .extra_secret = x_secret,
				      .evidence = x_evidence,
				      .verify = x_verify};
	return e;
}

static int run(struct tx_ext *cx, struct tx_ext *sx, int *server_rc, uint8_t th_c[32],
	       uint8_t th_s[32])
{
	struct smg_handshake_ext ce = make_ext(cx), se = make_ext(sx);
	struct tserver t = {0};
	struct smg_session_opts co = topts(k.src, peers_psk, "src", 2);
	struct smg_session *s = NULL;
	int r;

	co.ext = cx != NULL ? &ce : NULL;
	CHECK_EQ(smg_listener_open("127.0.0.1", 0, &t.l), 0);
	t.opts = topts(k.dst, peers_psk, "dst", 2);
	t.opts.ext = sx != NULL ? &se : NULL;
	t.opts.accept_timeout_ms = 600;
	tserver_start(&t);
	r = smg_session_connect("127.0.0.1", smg_listener_port(t.l), &co, &s);
	if (r == 0) {
		memcpy(th_c, smg_session_transcript(s), 32);
		CHECK_EQ(smg_session_capabilities(s) & TEST_CAP,
			 cx != NULL ? TEST_CAP : 0);
	}
	smg_session_free(s);
	*server_rc = tserver_join(&t);
	if (t.s != NULL) {
		memcpy(th_s, smg_session_transcript(t.s), 32);
		smg_session_free(t.s);
	}
	smg_listener_close(t.l);
	/* every handshake that began has ended, whatever its outcome */
	for (struct tx_ext *x = cx; x != NULL; x = x == cx ? sx : NULL) {
		CHECK(atomic_load(&x->begins) > 0);
		CHECK_EQ(atomic_load(&x->begins), atomic_load(&x->ends));
	}
	if (sx != NULL && cx == NULL)
		CHECK_EQ(atomic_load(&sx->begins), atomic_load(&sx->ends));
	return r;
}

int main(void)
{
	struct tx_ext cx = {0}, sx = {0};
	char text[1024], hex[65];
	uint8_t thc[32] = {0}, ths[32] = {1};
	int src;

	if (sodium_init() < 0 || tkeys_init(&k) != 0)
		return 1;
	randombytes_buf(psk_a, 32);
	randombytes_buf(psk_b, 32);
	sodium_bin2hex(hex, sizeof(hex), psk_a, 32);
	snprintf(text, sizeof(text), "src %s psk=%s\ndst %s psk=%s\n", k.src_pub, hex,
		 k.dst_pub, hex);
	CHECK_EQ(smg_peers_parse(text, strlen(text), &peers_psk), 0);

	/* same secret on both sides: session up, all hooks called, same th */
	memcpy(cx.psk, psk_a, 32);
	memcpy(sx.psk, psk_a, 32);
	CHECK_EQ(run(&cx, &sx, &src, thc, ths), 0);
	CHECK_EQ(src, 0);
	CHECK(memcmp(thc, ths, 32) == 0);
	CHECK_EQ(cx.calls, 4);
	CHECK_EQ(sx.calls, 4);

	/* the server derives another extra secret: key confirmation fails */
	memcpy(sx.psk, psk_b, 32);
	sx.calls = cx.calls = 0;
	CHECK_EQ(run(&cx, &sx, &src, thc, ths), SMG_ERR_AUTH);
	memcpy(sx.psk, psk_a, 32);

	/* the client's evidence is refused by the server */
	cx.corrupt_evidence = true;
	CHECK_EQ(run(&cx, &sx, &src, thc, ths), SMG_ERR_ATTEST);
	cx.corrupt_evidence = false;
	/* the server's evidence is refused by the client */
	sx.corrupt_evidence = true;
	CHECK_EQ(run(&cx, &sx, &src, thc, ths), SMG_ERR_ATTEST);
	sx.corrupt_evidence = false;

	/* no silent fallback: either side without the extension is refused */
	CHECK_EQ(run(NULL, &sx, &src, thc, ths), SMG_ERR_ATTEST);
	CHECK_EQ(run(&cx, NULL, &src, thc, ths), SMG_ERR_ATTEST);

	smg_peers_free(peers_psk);
	tkeys_fini(&k);
	return check_result("test_transport_ext");
}
