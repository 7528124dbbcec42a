/* The evidence encodings and signatures on their own: the manifest claim
 * digest covers every field and both identities; the receipt round-trips
 * through its bounded decoder, which refuses every malformed variant; the
 * signatures fail for another key, another message, a flipped bit; the
 * TPM's AK countersigns a receipt (real swtpm) but cannot be made to sign
 * anything that starts like a TPM attestation structure. */
#include <string.h>

#include <sodium.h>

#include "attest/tpm_env.h"
#include "audit/audit.h"
#include "base/base.h"
#include "check.h"

static void claim_fixture(struct smg_audit_claim *c)
{
	memset(c, 0, sizeof(*c));
	snprintf(c->id, sizeof(c->id), "0123456789abcdef0123456789abcdef");
	randombytes_buf(c->memory_root, sizeof(c->memory_root));
	c->n_disks = 2;
	randombytes_buf(c->disk_roots, sizeof(c->disk_roots));
	randombytes_buf(c->config_hash, sizeof(c->config_hash));
	randombytes_buf(c->device_hash, sizeof(c->device_hash));
	randombytes_buf(c->transcript, sizeof(c->transcript));
	snprintf(c->src, sizeof(c->src), "src");
	snprintf(c->dst, sizeof(c->dst), "dst");
	randombytes_buf(c->src_key, sizeof(c->src_key));
	randombytes_buf(c->dst_key, sizeof(c->dst_key));
}

/* Changing any one field changes the digest. */
static void test_claim_digest(void)
{
	struct smg_audit_claim c, d;
	uint8_t a[SMG_AUDIT_DIGEST_LEN], b[SMG_AUDIT_DIGEST_LEN];

	claim_fixture(&c);
	smg_audit_claim_digest(&c, a);
	d = c;
	smg_audit_claim_digest(&d, b);
	CHECK(memcmp(a, b, sizeof(a)) == 0);
#define DIFFERS(mut)                                 \
	do {                                         \
		d = c;                               \
		mut;                                 \
		smg_audit_claim_digest(&d, b);       \
		CHECK(memcmp(a, b, sizeof(a)) != 0); \
	} while (0)
	DIFFERS(d.id[0] = '1');
	DIFFERS(d.memory_root[5] ^= 1);
	DIFFERS(d.disk_roots[1][0] ^= 1);
	DIFFERS(d.n_disks = 1);
	DIFFERS(d.config_hash[0] ^= 1);
	DIFFERS(d.device_hash[31] ^= 1);
	DIFFERS(d.has_vtpm = true);
	DIFFERS(d.transcript[0] ^= 1);
	DIFFERS(snprintf(d.src, sizeof(d.src), "src2"));
	DIFFERS(snprintf(d.dst, sizeof(d.dst), "dsu"));
	DIFFERS(d.src_key[0] ^= 1);
	DIFFERS(d.dst_key[0] ^= 1);
	/* names swapped with keys swapped is another claim too */
	DIFFERS((snprintf(d.src, sizeof(d.src), "dst"),
		 snprintf(d.dst, sizeof(d.dst), "src")));
#undef DIFFERS
}

static void test_manifest_sig(void)
{
	uint8_t pk[32], sk[64], pk2[32], sk2[64], sig[64], msg[64], dg[32];
	struct smg_audit_claim c;

	crypto_sign_keypair(pk, sk);
	crypto_sign_keypair(pk2, sk2);
	claim_fixture(&c);
	smg_audit_claim_digest(&c, dg);
	memcpy(msg, SMG_AUDIT_MANIFEST_CTX, sizeof(SMG_AUDIT_MANIFEST_CTX));
	memcpy(msg + sizeof(SMG_AUDIT_MANIFEST_CTX), dg, 32);
	crypto_sign_detached(sig, NULL, msg, sizeof(SMG_AUDIT_MANIFEST_CTX) + 32, sk);
	CHECK(smg_audit_manifest_sig_ok(&c, pk, sig));
	CHECK(!smg_audit_manifest_sig_ok(&c, pk2, sig)); /* wrong key */
	sig[10] ^= 4;
	CHECK(!smg_audit_manifest_sig_ok(&c, pk, sig)); /* tampered signature */
	sig[10] ^= 4;
	c.memory_root[0] ^= 1;
	CHECK(!smg_audit_manifest_sig_ok(&c, pk, sig)); /* another manifest */
}

static void receipt_fixture(struct smg_audit_receipt *r)
{
	memset(r, 0, sizeof(*r));
	snprintf(r->id, sizeof(r->id), "00112233445566778899aabbccddeeff");
	randombytes_buf(r->manifest, 32);
	randombytes_buf(r->transcript, 32);
	snprintf(r->src, sizeof(r->src), "src");
	snprintf(r->dst, sizeof(r->dst), "dst.example");
	randombytes_buf(r->src_key, 32);
	randombytes_buf(r->dst_key, 32);
	r->result = SMG_RECEIPT_RESULT_VERIFIED;
	r->outcome = SMG_RECEIPT_OUTCOME_READY;
	r->plan_at_ms = 1700000000000ull;
	r->verified_at_ms = 1700000001234ull;
	r->has_ticket = true;
	randombytes_buf(r->ticket, 32);
	r->tpm = true;
	r->ak[0] = 0x04;
	randombytes_buf(r->ak + 1, 64);
}

static void test_receipt_codec(void)
{
	struct smg_audit_receipt r, back;
	uint8_t buf[SMG_RECEIPT_MAX + 8], big[SMG_RECEIPT_MAX + 2];
	size_t len;

	receipt_fixture(&r);
	CHECK_EQ(smg_audit_receipt_encode(&r, buf, sizeof(buf), &len), SMG_OK);
	CHECK_EQ(smg_audit_receipt_decode(buf, len, &back), SMG_OK);
	CHECK(memcmp(&r, &back, sizeof(r)) == 0);
	/* every prefix is truncated, never accepted */
	for (size_t n = 0; n < len; n++)
		CHECK(smg_audit_receipt_decode(buf, n, &back) != SMG_OK);
	buf[len] = 0;
	CHECK_EQ(smg_audit_receipt_decode(buf, len + 1, &back), SMG_ERR_TRAILING);
	buf[0] = 2;
	CHECK_EQ(smg_audit_receipt_decode(buf, len, &back), SMG_ERR_VERSION);
	buf[0] = 1;
	/* a flag byte other than 0/1 (has_ticket sits after the timestamps) */
	size_t flag = len - SMG_AUDIT_AK_LEN - 1 - 32 - 1;
	CHECK_EQ(buf[flag], 1);
	buf[flag] = 2;
	CHECK_EQ(smg_audit_receipt_decode(buf, len, &back), SMG_ERR_PROTO);
	buf[flag] = 1;
	/* a name with a byte outside [A-Za-z0-9._-] */
	buf[3] = '/';
	CHECK_EQ(smg_audit_receipt_decode(buf, len, &back), SMG_ERR_PROTO);
	memset(big, 1, sizeof(big));
	CHECK_EQ(smg_audit_receipt_decode(big, sizeof(big), &back), SMG_ERR_TOO_LONG);
	/* a name length beyond its cap */
	receipt_fixture(&r);
	CHECK_EQ(smg_audit_receipt_encode(&r, buf, sizeof(buf), &len), SMG_OK);
	buf[1] = 0x10;
	CHECK_EQ(smg_audit_receipt_decode(buf, len, &back), SMG_ERR_TOO_LONG);
}

static void test_receipt_sig(void)
{
	struct smg_audit_receipt r;
	uint8_t pk[32], sk[64], pk2[32], sk2[64], buf[SMG_RECEIPT_MAX], sig[64];
	uint8_t msg[sizeof(SMG_RECEIPT_CTX) + SMG_RECEIPT_MAX];
	size_t len;

	crypto_sign_keypair(pk, sk);
	crypto_sign_keypair(pk2, sk2);
	receipt_fixture(&r);
	r.tpm = false;
	CHECK_EQ(smg_audit_receipt_encode(&r, buf, sizeof(buf), &len), SMG_OK);
	memcpy(msg, SMG_RECEIPT_CTX, sizeof(SMG_RECEIPT_CTX));
	memcpy(msg + sizeof(SMG_RECEIPT_CTX), buf, len);
	crypto_sign_detached(sig, NULL, msg, sizeof(SMG_RECEIPT_CTX) + len, sk);
	CHECK_EQ(smg_audit_receipt_sig_check(buf, len, pk, sig, NULL, NULL), SMG_OK);
	CHECK_EQ(smg_audit_receipt_sig_check(buf, len, pk2, sig, NULL, NULL),
		 SMG_ERR_BAD_SIG);
	buf[len - 3] ^= 1;
	CHECK_EQ(smg_audit_receipt_sig_check(buf, len, pk, sig, NULL, NULL),
		 SMG_ERR_BAD_SIG);
}

/* The AK countersigns; a forged-quote-shaped message is refused by the TPM. */
static void test_tpm_sign(void)
{
	struct tenv e;
	struct smg_tpm *t = NULL;
	struct smg_tpm_keys k;
	uint8_t msg[100], sig[64], ak[SMG_AUDIT_AK_LEN];

	if (!tenv_have_swtpm()) {
		printf("swtpm missing: TPM part skipped\n");
		return;
	}
	memset(&e, 0, sizeof(e));
	CHECK_EQ(tenv_start(&e, true), 0);
	CHECK_EQ(smg_tpm_open(e.sw.tcti, &t), SMG_OK);
	if (t == NULL)
		goto out;
	CHECK_EQ(smg_tpm_enroll(t, (1u << 0) | (1u << 7), false, &k), SMG_OK);
	CHECK_EQ(smg_tpm_ak_public(t, ak), SMG_OK);
	CHECK(memcmp(ak, k.ak_pub, sizeof(ak)) == 0);
	memcpy(msg, SMG_RECEIPT_CTX, sizeof(SMG_RECEIPT_CTX));
	randombytes_buf(msg + sizeof(SMG_RECEIPT_CTX),
			sizeof(msg) - sizeof(SMG_RECEIPT_CTX));
	CHECK_EQ(smg_tpm_sign(t, msg, sizeof(msg), sig, sig + 32), SMG_OK);
	CHECK_EQ(smg_p256_verify(ak, msg, sizeof(msg), sig, sig + 32), SMG_OK);
	msg[40] ^= 1;
	CHECK_EQ(smg_p256_verify(ak, msg, sizeof(msg), sig, sig + 32), SMG_ERR_BAD_SIG);
	/* TPM_GENERATED_VALUE first: TPM2_Hash gives no ticket, Sign refuses,
	 * so receipts can never be turned into forged quotes. */
	msg[0] = 0xff, msg[1] = 'T', msg[2] = 'C', msg[3] = 'G';
	CHECK_EQ(smg_tpm_sign(t, msg, sizeof(msg), sig, sig + 32), SMG_ERR_TPM);
	smg_tpm_close(t);
out:
	tenv_stop(&e);
}

int main(void)
{
	if (sodium_init() < 0)
		return 1;
	smg_log_set_level(SMG_LOG_ERROR);
	test_claim_digest();
	test_manifest_sig();
	test_receipt_codec();
	test_receipt_sig();
	test_tpm_sign();
	return check_result("test_audit_evidence");
}
