/* A full TPM-bound session between two swtpm-backed endpoints over loopback
 * (the transport's handshake with attest/ as its extension): success, and
 * every refusal failing closed with its own message and exit code. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "attest/attest.h"
#include "base/base.h"
#include "check.h"
#include "cli/cli.h"
#include "cli/host_tpm.h"
#include "tpm_env.h"
#include "transport/transport.h"

#define MASK ((1u << 0) | (1u << 7) | (1u << 16))
#define PCR16_EXTEND                \
	"tpm2_pcrextend 16:sha256=" \
	"2222222222222222222222222222222222222222222222222222222222222222"

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

/* A peer that lies in its AUTH evidence (it controls its own endpoint). */
enum evil_mode { HONEST, RECORD, REPLAY, TAMPER };
static enum evil_mode evil;
static uint8_t recorded[SMG_EVIDENCE_MAX];
static size_t recorded_len;
static struct smg_handshake_ext *evil_inner;

static int evil_evidence(void *self, void *ctx, bool initiator,
			 const uint8_t th[SMG_TRANSCRIPT_LEN], uint8_t *out, size_t cap,
			 size_t *len)
{
	int r;

	if (evil == REPLAY && recorded_len <= cap) {
		memcpy(out, recorded, recorded_len);
		*len = recorded_len;
		return SMG_OK;
	}
	r = evil_inner->evidence(self, ctx, initiator, th, out, cap, len);
	if (r == 0 && evil == RECORD && *len <= sizeof(recorded)) {
		memcpy(recorded, out, *len);
		recorded_len = *len;
	}
	if (r == 0 && evil == TAMPER)
		out[1 + SMG_P256_POINT_LEN + 2 + 50] ^= 0x01; /* inside TPMS_ATTEST */
	return r;
}

static char dir[64];
static struct smg_peers *peers;
static FILE *log_file;

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

/* self's policy enrolling peer, optionally with doctored keys. */
static int policy_for(struct host *self, const struct host *peer,
		      const struct smg_tpm_keys *k)
{
	char text[8192], block[4096], err[256];
	int n;

	smg_attest_free(self->at);
	self->at = NULL;
	smg_policy_free(self->pol);
	self->pol = NULL;
	if (smg_policy_format_peer(peer->name, k ? k : &peer->keys, NULL, 0, block,
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
	o.handshake_timeout_ms = 5000;
	o.io_timeout_ms = 5000;
	o.accept_timeout_ms = 700; /* a refused client leaves the server waiting */
	return o;
}

static bool log_has(const char *needle)
{
	char buf[16384];
	size_t n;

	fflush(log_file);
	rewind(log_file);
	n = fread(buf, 1, sizeof(buf) - 1, log_file);
	buf[n] = '\0';
	return strstr(buf, needle) != NULL;
}

static void log_reset(void)
{
	fflush(log_file);
	if (ftruncate(fileno(log_file), 0) != 0)
		perror("ftruncate");
	rewind(log_file);
}

/* One session src -> dst; returns the client's result, *srv the server's. */
static int session(struct host *src, const struct smg_handshake_ext *src_ext,
		   struct host *dst, const struct smg_handshake_ext *dst_ext, int *srv)
{
	struct server sv = {0};
	struct smg_session_opts co = opts_for(src, src_ext);
	struct smg_session *s = NULL;
	int rc;

	log_reset();
	sv.opts = opts_for(dst, dst_ext);
	co.expect_peer = dst->name;
	if (smg_listener_open("127.0.0.1", 0, &sv.l) != 0)
		return -1000;
	pthread_create(&sv.th, NULL, server_main, &sv);
	rc = smg_session_connect("127.0.0.1", smg_listener_port(sv.l), &co, &s);
	if (rc == 0)
		rc = smg_session_close(s);
	pthread_join(sv.th, NULL);
	smg_listener_close(sv.l);
	*srv = sv.rc;
	return rc;
}

#define EXPECT_REFUSED(crc, want, msg)                                     \
	do {                                                               \
		CHECK_EQ(crc, want);                                       \
		CHECK_EQ(smg_exit_from_err(crc), smg_exit_from_err(want)); \
		CHECK(log_has(msg));                                       \
		if (!log_has(msg))                                         \
			fprintf(stderr, "  missing log: %s\n", msg);       \
	} while (0)

/* Counting wrappers around the server's TPM work (ZGen, quote). */
static const struct smg_handshake_ext *cnt_inner;
static int n_secret, n_evidence;

static int cnt_secret(void *self, void *ctx, bool initiator, const struct smg_peer *peer,
		      const uint8_t *our_ext, size_t our_len, const uint8_t *peer_ext,
		      size_t peer_len, uint8_t *out, size_t cap, size_t *len)
{
	(void)self;
	n_secret++;
	return cnt_inner->extra_secret(cnt_inner->self, ctx, initiator, peer, our_ext,
				       our_len, peer_ext, peer_len, out, cap, len);
}

static int cnt_evidence(void *self, void *ctx, bool initiator,
			const uint8_t th[SMG_TRANSCRIPT_LEN], uint8_t *out, size_t cap,
			size_t *len)
{
	(void)self;
	n_evidence++;
	return cnt_inner->evidence(cnt_inner->self, ctx, initiator, th, out, cap, len);
}

/* Issue 13: a HELLO from a peer that cannot sign for the name it claims
 * costs the server no TPM operation and gets no quote back; TPM work
 * starts only after the client's signature verified. */
static void no_tpm_before_signature(struct host *src, struct host *dst)
{
	struct smg_handshake_ext counted = dst->ext;
	struct server sv = {0};
	struct smg_session_opts co = opts_for(src, &src->ext);
	struct smg_session *s = NULL;
	int rc;

	cnt_inner = &dst->ext;
	counted.extra_secret = cnt_secret;
	counted.evidence = cnt_evidence;
	n_secret = n_evidence = 0;
	co.identity = dst->id; /* claims "src", signs with another key */
	co.expect_peer = dst->name;
	sv.opts = opts_for(dst, &counted);
	if (smg_listener_open("127.0.0.1", 0, &sv.l) != 0)
		return;
	pthread_create(&sv.th, NULL, server_main, &sv);
	rc = smg_session_connect("127.0.0.1", smg_listener_port(sv.l), &co, &s);
	pthread_join(sv.th, NULL);
	smg_listener_close(sv.l);
	CHECK_EQ(rc, SMG_ERR_BAD_SIG);
	printf("forged client: server TPM ECDH %d, quotes %d\n", n_secret, n_evidence);
	CHECK_EQ(n_secret, 0);
	CHECK_EQ(n_evidence, 0);
	/* the genuine client: one of each */
	rc = session(src, &src->ext, dst, &counted, &(int){0});
	CHECK_EQ(rc, 0);
	printf("genuine client: server TPM ECDH %d, quotes %d\n", n_secret, n_evidence);
	CHECK_EQ(n_secret, 1);
	CHECK_EQ(n_evidence, 1);
}

static void cases(struct host *src, struct host *dst)
{
	struct smg_handshake_ext evil_ext;
	struct smg_tpm_keys bad;
	int srv, rc;

	/* success, and the evidence recorded for the replay below */
	evil_inner = &dst->ext;
	evil_ext = dst->ext;
	evil_ext.evidence = evil_evidence;
	evil = RECORD;
	rc = session(src, &src->ext, dst, &evil_ext, &srv);
	CHECK_EQ(rc, 0);
	CHECK_EQ(srv, 0);
	CHECK(recorded_len > 0);

	/* a quote replayed from that earlier session */
	evil = REPLAY;
	rc = session(src, &src->ext, dst, &evil_ext, &srv);
	EXPECT_REFUSED(rc, SMG_ERR_ATTEST, "qualifying data mismatch");
	CHECK_EQ(smg_exit_from_err(rc), SMG_EXIT_ATTEST);
	/* a tampered quote */
	evil = TAMPER;
	rc = session(src, &src->ext, dst, &evil_ext, &srv);
	EXPECT_REFUSED(rc, SMG_ERR_ATTEST, "quote signature invalid");
	evil = HONEST;

	/* wrong golden PCRs enrolled for dst at src */
	bad = dst->keys;
	bad.pcr[0][0] ^= 1;
	CHECK_EQ(policy_for(src, dst, &bad), 0);
	rc = session(src, &src->ext, dst, &dst->ext, &srv);
	EXPECT_REFUSED(rc, SMG_ERR_ATTEST,
		       "PCR digest does not match the enrolled golden values");
	/* unknown AK */
	bad = dst->keys;
	memcpy(bad.ak_pub, src->keys.ak_pub, SMG_P256_POINT_LEN);
	CHECK_EQ(policy_for(src, dst, &bad), 0);
	rc = session(src, &src->ext, dst, &dst->ext, &srv);
	EXPECT_REFUSED(rc, SMG_ERR_ATTEST, "unknown AK");
	CHECK_EQ(policy_for(src, dst, NULL), 0);

	/* TPM required but the peer runs in software mode, both directions */
	rc = session(src, &src->ext, dst, NULL, &srv);
	EXPECT_REFUSED(rc, SMG_ERR_ATTEST, "does not offer tpm mode");
	rc = session(src, NULL, dst, &dst->ext, &srv);
	CHECK(rc != 0);
	CHECK(srv != 0);
	CHECK(log_has("does not offer tpm mode"));

	/* PCRs changed after enrolment: the client's own TPM refuses its key */
	CHECK_EQ(tenv_tool(&src->env, PCR16_EXTEND " >/dev/null"), 0);
	rc = session(src, &src->ext, dst, &dst->ext, &srv);
	EXPECT_REFUSED(rc, SMG_ERR_TPM, "PCRs changed since enrolment");
	CHECK(srv != 0);
	CHECK_EQ(tenv_tool(&src->env, "tpm2_pcrreset 16"), 0);
	rc = session(src, &src->ext, dst, &dst->ext, &srv);
	CHECK_EQ(rc, 0); /* back in its enrolled state: works again */
	/* ... and the server's: the session never completes */
	CHECK_EQ(tenv_tool(&dst->env, PCR16_EXTEND " >/dev/null"), 0);
	rc = session(src, &src->ext, dst, &dst->ext, &srv);
	CHECK(rc != 0);
	CHECK(srv != 0);
	CHECK(log_has("PCRs changed since enrolment"));
}

int main(void)
{
	struct host src = {0}, dst = {0};
	char text[512], cmd[128];

	if (!tenv_have_swtpm() || !tenv_have_tools())
		return T_SKIP;
	snprintf(dir, sizeof(dir), "/tmp/smg-sess-XXXXXX");
	if (sodium_init() < 0 || mkdtemp(dir) == NULL || (log_file = tmpfile()) == NULL)
		return 1;
	if (host_up(&src, "src") != 0 || host_up(&dst, "dst") != 0) {
		fprintf(stderr, "cannot bring up the two hosts\n");
		CHECK(0);
		goto out;
	}
	snprintf(text, sizeof(text), "src %s\ndst %s\n", src.pub, dst.pub);
	if (smg_peers_parse(text, strlen(text), &peers) != 0 ||
	    policy_for(&src, &dst, NULL) != 0 || policy_for(&dst, &src, NULL) != 0) {
		CHECK(0);
		goto out;
	}
	smg_log_set_stream(log_file);
	no_tpm_before_signature(&src, &dst); /* before cases() moves the PCRs */
	cases(&src, &dst);
	smg_log_set_stream(NULL);
out:
	smg_log_set_stream(NULL);
	smg_peers_free(peers);
	for (struct host *h = &src; h != NULL; h = h == &src ? &dst : NULL) {
		smg_attest_free(h->at);
		smg_policy_free(h->pol);
		smg_tpm_close(h->tpm);
		smg_identity_free(h->id);
		tenv_stop(&h->env);
	}
	fclose(log_file);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cleanup failed\n");
	return check_result("test_attest_session");
}
