/* The TPM-bound handshake extension between two swtpm-backed hosts, driven
 * the way the transport drives it (hello, secret, evidence, verify), with
 * the transcript hash over both hellos: success and every refusal. */
#include <string.h>

#include <sodium.h>

#include "attest/attest.h"
#include "base/base.h"
#include "check.h"
#include "tpm_env.h"

#define MASK ((1u << 0) | (1u << 7) | (1u << 16))

struct host {
	const char *name;
	struct tenv env;
	struct smg_tpm *tpm;
	struct smg_tpm_keys keys;
	struct smg_policy *pol;
	struct smg_attest *at;
};

static int host_up(struct host *h, const char *name)
{
	h->name = name;
	if (tenv_start(&h->env, true) != 0 ||
	    smg_tpm_open(h->env.sw.tcti, &h->tpm) != 0 ||
	    smg_tpm_enroll(h->tpm, MASK, false, &h->keys) != 0)
		return -1;
	return 0;
}

/* Policy of `self` enrolling `peer` (with optional edits to the block). */
static int policy_for(struct host *self, const struct host *peer,
		      const char *extra_peer_lines, const struct smg_tpm_keys *override)
{
	char text[8192], block[4096], err[256];
	int n;

	smg_policy_free(self->pol);
	self->pol = NULL;
	smg_attest_free(self->at);
	self->at = NULL;
	if (smg_policy_format_peer(peer->name, override ? override : &peer->keys, NULL, 0,
				   block, sizeof(block)) != 0)
		return -1;
	n = snprintf(text, sizeof(text), "host %s\npcrs 0,7,16\n%s  send *\n%s",
		     self->name, block, extra_peer_lines);
	if (smg_policy_parse(text, (size_t)n, "test", &self->pol, err, sizeof(err)) !=
	    0) {
		fprintf(stderr, "policy: %s\n", err);
		return -1;
	}
	return smg_attest_new(self->pol, self->tpm, &self->at);
}

struct run {
	int secret_i, secret_r, verify_at_i, verify_at_r;
	bool same_secret;
	uint8_t th[32];
	uint8_t ev_i[SMG_EVIDENCE_MAX], ev_r[SMG_EVIDENCE_MAX];
	size_t ev_i_len, ev_r_len;
};

/* One handshake: i initiates to r. peer_soft: r behaves as a software-mode
 * host (no hello, no evidence). replay_ev_i: i's evidence replaced. */
static void handshake(struct host *i, struct host *r, struct run *o, bool peer_soft,
		      const uint8_t *replay_ev_i, size_t replay_len)
{
	uint8_t hi[SMG_ATTEST_HELLO_MAX], hr[SMG_ATTEST_HELLO_MAX], si[32], sr[32];
	struct smg_attest_hs *hsi = NULL, *hsr = NULL;
	size_t li = 0, lr = 0;
	crypto_generichash_state h;

	memset(o, 0, sizeof(*o));
	CHECK_EQ(smg_attest_hs_new(i->at, &hsi), 0);
	CHECK_EQ(smg_attest_hs_new(r->at, &hsr), 0);
	if (hsi == NULL || hsr == NULL)
		goto out;
	CHECK_EQ(smg_attest_hello(hsi, hi, sizeof(hi), &li), 0);
	if (!peer_soft)
		CHECK_EQ(smg_attest_hello(hsr, hr, sizeof(hr), &lr), 0);
	crypto_generichash_init(&h, NULL, 0, 32);
	crypto_generichash_update(&h, hi, li);
	crypto_generichash_update(&h, hr, lr);
	crypto_generichash_final(&h, o->th, 32);
	o->secret_i = smg_attest_secret(hsi, true, r->name, hi, li, hr, lr, si);
	o->secret_r =
	    peer_soft ? 0 : smg_attest_secret(hsr, false, i->name, hr, lr, hi, li, sr);
	o->same_secret = o->secret_i == 0 && o->secret_r == 0 && memcmp(si, sr, 32) == 0;
	CHECK_EQ(smg_attest_evidence(i->at, true, o->th, 32, o->ev_i, sizeof(o->ev_i),
				     &o->ev_i_len),
		 0);
	if (!peer_soft)
		CHECK_EQ(smg_attest_evidence(r->at, false, o->th, 32, o->ev_r,
					     sizeof(o->ev_r), &o->ev_r_len),
			 0);
	o->verify_at_r = peer_soft
			     ? 0
			     : smg_attest_verify(r->at, false, i->name, o->th, 32,
						 replay_ev_i ? replay_ev_i : o->ev_i,
						 replay_ev_i ? replay_len : o->ev_i_len);
	o->verify_at_i =
	    smg_attest_verify(i->at, true, r->name, o->th, 32, o->ev_r, o->ev_r_len);
	/* a handshake's ephemeral key serves one secret */
	if (o->secret_i == 0)
		CHECK_EQ(smg_attest_secret(hsi, true, r->name, hi, li, hr, lr, si),
			 SMG_ERR_STATE);
out:
	smg_attest_hs_free(hsi);
	smg_attest_hs_free(hsr);
}

int main(void)
{
	struct host a = {0}, b = {0};
	struct smg_tpm_keys bad;
	struct run s1, s2;
	uint8_t tampered[SMG_EVIDENCE_MAX];

	if (!tenv_have_swtpm() || !tenv_have_tools())
		return T_SKIP;
	if (sodium_init() < 0 || host_up(&a, "hostA") != 0 || host_up(&b, "hostB") != 0) {
		fprintf(stderr, "cannot bring up two swtpm hosts\n");
		goto out;
	}
	CHECK_EQ(policy_for(&a, &b, "", NULL), 0);
	CHECK_EQ(policy_for(&b, &a, "", NULL), 0);

	/* success, both ways, and a second session gets a different secret */
	handshake(&a, &b, &s1, false, NULL, 0);
	CHECK_EQ(s1.secret_i, 0);
	CHECK_EQ(s1.secret_r, 0);
	CHECK(s1.same_secret);
	CHECK_EQ(s1.verify_at_r, 0);
	CHECK_EQ(s1.verify_at_i, 0);
	handshake(&b, &a, &s2, false, NULL, 0);
	CHECK(s2.same_secret);
	CHECK_EQ(s2.verify_at_r, 0);
	CHECK_EQ(s2.verify_at_i, 0);

	/* a quote replayed from an earlier session */
	handshake(&a, &b, &s2, false, s1.ev_i, s1.ev_i_len);
	CHECK_EQ(s2.verify_at_r, SMG_ERR_ATTEST);
	/* a tampered quote */
	memcpy(tampered, s1.ev_i, s1.ev_i_len);
	tampered[1 + SMG_P256_POINT_LEN + 2 + 40] ^= 1;
	handshake(&a, &b, &s2, false, tampered, s1.ev_i_len);
	CHECK_EQ(s2.verify_at_r, SMG_ERR_ATTEST);
	/* reflection: B's own quote handed back as A's */
	handshake(&a, &b, &s2, false, NULL, 0);
	CHECK_EQ(smg_attest_verify(a.at, true, "hostB", s2.th, 32, s2.ev_i, s2.ev_i_len),
		 SMG_ERR_ATTEST);

	/* TPM required but peer in software mode */
	handshake(&a, &b, &s2, true, NULL, 0);
	CHECK_EQ(s2.secret_i, SMG_ERR_ATTEST);
	CHECK_EQ(s2.verify_at_i, SMG_ERR_ATTEST);

	/* unknown peer: A's hello reaches a B that never enrolled it */
	handshake(&a, &b, &s2, false, NULL, 0);
	CHECK_EQ(smg_attest_verify(b.at, false, "hostZ", s2.th, 32, s2.ev_i, s2.ev_i_len),
		 SMG_ERR_UNKNOWN_PEER);

	/* wrong golden PCRs enrolled for A at B */
	bad = a.keys;
	bad.pcr[7][3] ^= 0x10;
	CHECK_EQ(policy_for(&b, &a, "", &bad), 0);
	handshake(&a, &b, &s2, false, NULL, 0);
	CHECK(s2.same_secret);			  /* keys are genuine ... */
	CHECK_EQ(s2.verify_at_r, SMG_ERR_ATTEST); /* ... the measured state is not */
	/* unknown AK: B enrolled some other key as A's AK */
	bad = a.keys;
	memcpy(bad.ak_pub, b.keys.ak_pub, SMG_P256_POINT_LEN);
	CHECK_EQ(policy_for(&b, &a, "", &bad), 0);
	handshake(&a, &b, &s2, false, NULL, 0);
	CHECK_EQ(s2.verify_at_r, SMG_ERR_ATTEST);
	/* a wrong ECDH key enrolled: the secrets differ (transport: key confirmation) */
	bad = a.keys;
	memcpy(bad.ecdh_pub, b.keys.ecdh_pub, SMG_P256_POINT_LEN);
	CHECK_EQ(policy_for(&b, &a, "", &bad), 0);
	handshake(&a, &b, &s2, false, NULL, 0);
	CHECK_EQ(s2.secret_i, 0);
	CHECK_EQ(s2.secret_r, 0);
	CHECK(!s2.same_secret);
	CHECK_EQ(policy_for(&b, &a, "", NULL), 0);

	/* A's PCRs change after enrolment: its TPM refuses the key */
	CHECK_EQ(
	    tenv_tool(&a.env,
		      "tpm2_pcrextend 16:sha256="
		      "1111111111111111111111111111111111111111111111111111111111111111"),
	    0);
	handshake(&a, &b, &s2, false, NULL, 0);
	CHECK_EQ(s2.secret_i, SMG_ERR_TPM);
	CHECK(!s2.same_secret);
	CHECK_EQ(s2.verify_at_r, SMG_ERR_ATTEST); /* and its quote shows it */
out:
	smg_attest_free(a.at);
	smg_attest_free(b.at);
	smg_policy_free(a.pol);
	smg_policy_free(b.pol);
	smg_tpm_close(a.tpm);
	smg_tpm_close(b.tpm);
	tenv_stop(&a.env);
	tenv_stop(&b.env);
	return check_result("test_attest_handshake");
}
