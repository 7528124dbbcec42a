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
#include "tpm_hosts.h"
#include "transport/transport.h"

#define PCR16_EXTEND                \
	"tpm2_pcrextend 16:sha256=" \
	"2222222222222222222222222222222222222222222222222222222222222222"

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
static int session(struct thost *src, const struct smg_handshake_ext *src_ext,
		   struct thost *dst, const struct smg_handshake_ext *dst_ext, int *srv)
{
	struct tserver1 sv = {0};
	struct smg_session_opts co = thost_opts(src, peers, src_ext);
	struct smg_session *s = NULL;
	int rc;

	log_reset();
	sv.opts = thost_opts(dst, peers, dst_ext);
	co.expect_peer = dst->name;
	if (smg_listener_open("127.0.0.1", 0, &sv.l) != 0)
		return -1000;
	pthread_create(&sv.th, NULL, tserver1_main, &sv);
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
static void no_tpm_before_signature(struct thost *src, struct thost *dst)
{
	struct smg_handshake_ext counted = dst->ext;
	struct tserver1 sv = {0};
	struct smg_session_opts co = thost_opts(src, peers, &src->ext);
	struct smg_session *s = NULL;
	int rc;

	cnt_inner = &dst->ext;
	counted.extra_secret = cnt_secret;
	counted.evidence = cnt_evidence;
	n_secret = n_evidence = 0;
	co.identity = dst->id; /* claims "src", signs with another key */
	co.expect_peer = dst->name;
	sv.opts = thost_opts(dst, peers, &counted);
	if (smg_listener_open("127.0.0.1", 0, &sv.l) != 0)
		return;
	pthread_create(&sv.th, NULL, tserver1_main, &sv);
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

static void cases(struct thost *src, struct thost *dst)
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
	CHECK_EQ(thost_policy(src, dst, &bad), 0);
	rc = session(src, &src->ext, dst, &dst->ext, &srv);
	EXPECT_REFUSED(rc, SMG_ERR_ATTEST,
		       "PCR digest does not match the enrolled golden values");
	/* unknown AK */
	bad = dst->keys;
	memcpy(bad.ak_pub, src->keys.ak_pub, SMG_P256_POINT_LEN);
	CHECK_EQ(thost_policy(src, dst, &bad), 0);
	rc = session(src, &src->ext, dst, &dst->ext, &srv);
	EXPECT_REFUSED(rc, SMG_ERR_ATTEST, "unknown AK");
	CHECK_EQ(thost_policy(src, dst, NULL), 0);

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
	struct thost src = {0}, dst = {0};
	char cmd[128];

	if (!tenv_have_swtpm() || !tenv_have_tools())
		return T_SKIP;
	snprintf(dir, sizeof(dir), "/tmp/smg-sess-XXXXXX");
	if (sodium_init() < 0 || mkdtemp(dir) == NULL || (log_file = tmpfile()) == NULL)
		return 1;
	if (thost_pair_up(&src, &dst, dir, &peers) != 0) {
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
	thost_down(&src);
	thost_down(&dst);
	fclose(log_file);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cleanup failed\n");
	return check_result("test_attest_session");
}
