/* Host TPM against a real swtpm: enrolment is idempotent, the TPM's ECDH
 * half equals the software half against the enrolled key, quotes verify,
 * every tampering is caught by its named check, and a host whose PCRs moved
 * after enrolment cannot use its key at all. */
#include <string.h>

#include <openssl/evp.h>
#include <sodium.h>

#include "attest/attest.h"
#include "attest/internal.h"
#include "base/base.h"
#include "check.h"
#include "tpm_env.h"

#define MASK ((1u << 0) | (1u << 7) | (1u << 16))

static void test_verify(struct smg_tpm *t, const struct smg_tpm_keys *k)
{
	uint8_t ev[SMG_EVIDENCE_MAX], bad[SMG_EVIDENCE_MAX], qual[32], other[32];
	uint8_t golden[SMG_PCR_COUNT][SMG_PCR_LEN];
	struct smg_evidence_expect exp = {0};
	uint8_t wrong_ak[SMG_P256_POINT_LEN];
	char why[128];
	size_t n = 0;

	randombytes_buf(qual, sizeof(qual));
	randombytes_buf(other, sizeof(other));
	memcpy(golden, k->pcr, sizeof(golden));
	CHECK_EQ(smg_tpm_quote(t, MASK, qual, sizeof(qual), ev, sizeof(ev), &n), 0);
	exp.peer = "hostA";
	exp.ak_pub = k->ak_pub;
	exp.pcr_mask = MASK;
	exp.golden = golden;
	exp.qual = qual;
	exp.qual_len = sizeof(qual);
	CHECK_EQ(smg_evidence_verify(ev, n, &exp, why, sizeof(why)), 0);

	/* replay: same quote, another session's transcript */
	exp.qual = other;
	CHECK_EQ(smg_evidence_verify(ev, n, &exp, why, sizeof(why)), SMG_ERR_ATTEST);
	CHECK(strstr(why, "qualifying data") != NULL);
	exp.qual = qual;

	/* wrong golden PCRs */
	golden[7][0] ^= 1;
	CHECK_EQ(smg_evidence_verify(ev, n, &exp, why, sizeof(why)), SMG_ERR_ATTEST);
	CHECK(strstr(why, "golden") != NULL);
	golden[7][0] ^= 1;

	/* PCR selection differs from the enrolled one */
	exp.pcr_mask = MASK | (1u << 1);
	CHECK_EQ(smg_evidence_verify(ev, n, &exp, why, sizeof(why)), SMG_ERR_ATTEST);
	CHECK(strstr(why, "selection") != NULL);
	exp.pcr_mask = MASK;

	/* unknown AK */
	memcpy(wrong_ak, k->ecdh_pub, sizeof(wrong_ak));
	exp.ak_pub = wrong_ak;
	CHECK_EQ(smg_evidence_verify(ev, n, &exp, why, sizeof(why)), SMG_ERR_ATTEST);
	CHECK(strstr(why, "unknown AK") != NULL);
	exp.ak_pub = k->ak_pub;

	/* tampered quote: flip one byte in each position of the attest blob */
	for (size_t i = 1 + SMG_P256_POINT_LEN + 2; i < n - 64; i += 7) {
		memcpy(bad, ev, n);
		bad[i] ^= 0x40;
		CHECK_EQ(smg_evidence_verify(bad, n, &exp, why, sizeof(why)),
			 SMG_ERR_ATTEST);
		CHECK(strstr(why, "signature") != NULL);
	}
	/* tampered signature */
	memcpy(bad, ev, n);
	bad[n - 1] ^= 1;
	CHECK_EQ(smg_evidence_verify(bad, n, &exp, why, sizeof(why)), SMG_ERR_ATTEST);
	/* truncated / trailing */
	CHECK_EQ(smg_evidence_verify(ev, n - 1, &exp, why, sizeof(why)), SMG_ERR_ATTEST);
	CHECK(strstr(why, "malformed") != NULL);
	memcpy(bad, ev, n);
	bad[n] = 0;
	CHECK_EQ(smg_evidence_verify(bad, n + 1, &exp, why, sizeof(why)), SMG_ERR_ATTEST);
}

static void test_zgen(struct smg_tpm *t, const struct smg_tpm_keys *k)
{
	uint8_t eph[SMG_P256_POINT_LEN], z_tpm[32], z_soft[32], bogus[SMG_P256_POINT_LEN];
	EVP_PKEY *e = NULL;

	CHECK_EQ(attest_p256_keygen(&e, eph), 0);
	CHECK_EQ(smg_tpm_ecdh_zgen(t, MASK, eph, z_tpm), 0);
	CHECK_EQ(attest_p256_ecdh(e, k->ecdh_pub, z_soft), 0);
	CHECK(memcmp(z_tpm, z_soft, 32) == 0);
	/* a point off the curve is refused by the TPM */
	memcpy(bogus, eph, sizeof(bogus));
	bogus[40] ^= 1;
	CHECK(smg_tpm_ecdh_zgen(t, MASK, bogus, z_tpm) != 0);
	/* the policy names the enrolled PCR set: another set cannot unlock it */
	CHECK_EQ(smg_tpm_ecdh_zgen(t, MASK | (1u << 1), eph, z_tpm), SMG_ERR_TPM);
	EVP_PKEY_free(e);
}

int main(void)
{
	struct smg_tpm_keys k, k2, k3;
	struct smg_tpm *t = NULL;
	struct tenv env = {0};
	uint8_t eph[SMG_P256_POINT_LEN], z[32];
	EVP_PKEY *e = NULL;

	if (!tenv_have_swtpm() || !tenv_have_tools())
		return T_SKIP;
	smg_log_set_level(SMG_LOG_DEBUG);
	if (sodium_init() < 0 || tenv_start(&env, true) != 0) {
		tenv_stop(&env);
		return 1;
	}
	CHECK_EQ(smg_tpm_open("bogus-tcti:nothing", &t), SMG_ERR_TPM);
	CHECK(t == NULL);
	CHECK_EQ(smg_tpm_open(env.sw.tcti, &t), 0);
	if (t == NULL)
		goto out;
	CHECK_EQ(smg_tpm_load_keys(t, MASK, &k), SMG_ERR_NOT_FOUND);
	CHECK_EQ(smg_tpm_enroll(t, MASK, false, &k), 0);
	CHECK(k.created);
	CHECK(k.pcrs_match);
	CHECK_EQ(k.ecdh_pub[0], 0x04);
	/* idempotent: the same keys come back */
	CHECK_EQ(smg_tpm_enroll(t, MASK, false, &k2), 0);
	CHECK(!k2.created);
	CHECK(memcmp(k.ecdh_pub, k2.ecdh_pub, SMG_P256_POINT_LEN) == 0);
	CHECK(memcmp(k.ak_pub, k2.ak_pub, SMG_P256_POINT_LEN) == 0);
	test_zgen(t, &k);
	test_verify(t, &k);

	/* the host changes state: PCR 16 is extended after enrolment */
	CHECK_EQ(
	    tenv_tool(&env,
		      "tpm2_pcrextend 16:sha256="
		      "00000000000000000000000000000000000000000000000000000000000000ff"),
	    0);
	CHECK_EQ(attest_p256_keygen(&e, eph), 0);
	CHECK_EQ(smg_tpm_ecdh_zgen(t, MASK, eph, z), SMG_ERR_TPM);
	CHECK_EQ(smg_tpm_load_keys(t, MASK, &k3), 0);
	CHECK(!k3.pcrs_match);
	CHECK(memcmp(k3.pcr[16], k.pcr[16], SMG_PCR_LEN) != 0);
	/* re-enrolment with force binds new keys to the new state */
	CHECK_EQ(smg_tpm_enroll(t, MASK, true, &k3), 0);
	CHECK(k3.created && k3.pcrs_match);
	CHECK(memcmp(k3.ecdh_pub, k.ecdh_pub, SMG_P256_POINT_LEN) != 0);
	CHECK_EQ(smg_tpm_ecdh_zgen(t, MASK, eph, z), 0);
	EVP_PKEY_free(e);
out:
	smg_tpm_close(t);
	tenv_stop(&env);
	return check_result("test_attest_tpm");
}
