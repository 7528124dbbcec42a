/* handshake: the TPM-bound mode as the transport's handshake extension.
 *
 * Each side sends a fresh ephemeral P-256 point. Two ephemeral-static ECDHs
 * follow: Z_i = ECDH(initiator's TPM key, responder's ephemeral) and
 * Z_r = ECDH(responder's TPM key, initiator's ephemeral). Each host computes
 * the Z of its own static key inside its TPM (Esys_ECDH_ZGen, which the TPM
 * only allows while the host's PCRs equal their enrolled values) and the
 * other Z in software against the peer's enrolled public key. Only the two
 * genuine, unmodified hosts can both arrive at the same secret; it is never
 * used raw, only as KDF input next to the X25519 secret and the transcript.
 * The quote then proves the PCR state itself, fresh for this transcript. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <sodium.h>

#include "attest/internal.h"
#include "base/base.h"
#include "proto/proto.h"

#define SECRET_PERSONAL "secmig tpm-ecdh v1"
#define QUOTE_PERSONAL	"secmig quote v1"

struct smg_attest {
	const struct smg_policy *pol;
	struct smg_tpm *tpm;
	pthread_mutex_t lock; /* the (single-threaded) ESAPI */
};

/* One handshake's ephemeral key: made by hello, used once by secret, gone
 * with the handshake. Nothing is shared between handshakes but the TPM. */
struct smg_attest_hs {
	struct smg_attest *a;
	EVP_PKEY *key; /* NULL: no hello yet, or secret used it */
	uint8_t point[SMG_P256_POINT_LEN];
};

int smg_attest_new(const struct smg_policy *policy, struct smg_tpm *tpm,
		   struct smg_attest **out)
{
	struct smg_attest *a;

	*out = NULL;
	if (policy == NULL || tpm == NULL)
		return SMG_ERR_INVAL;
	if (policy->software_mode) {
		smg_err("attest: the policy says 'mode software'; TPM mode is off");
		return SMG_ERR_CONFIG;
	}
	if ((a = calloc(1, sizeof(*a))) == NULL)
		return SMG_ERR_NOMEM;
	a->pol = policy;
	a->tpm = tpm;
	pthread_mutex_init(&a->lock, NULL);
	*out = a;
	return SMG_OK;
}

int smg_attest_sign(struct smg_attest *a, const uint8_t *msg, size_t len,
		    uint8_t sig_r[SMG_P256_COORD_LEN], uint8_t sig_s[SMG_P256_COORD_LEN])
{
	int r;

	pthread_mutex_lock(&a->lock);
	r = smg_tpm_sign(a->tpm, msg, len, sig_r, sig_s);
	pthread_mutex_unlock(&a->lock);
	return r;
}

int smg_attest_ak_public(struct smg_attest *a, uint8_t ak[SMG_P256_POINT_LEN])
{
	int r;

	pthread_mutex_lock(&a->lock);
	r = smg_tpm_ak_public(a->tpm, ak);
	pthread_mutex_unlock(&a->lock);
	return r;
}

void smg_attest_free(struct smg_attest *a)
{
	if (a == NULL)
		return;
	pthread_mutex_destroy(&a->lock);
	free(a);
}

int smg_attest_hello_decode(const uint8_t *buf, size_t len, struct smg_attest_hello *out)
{
	const uint8_t *name;
	struct smg_rd rd;
	uint8_t nlen;
	int r;

	memset(out, 0, sizeof(*out));
	if (len > SMG_ATTEST_HELLO_MAX)
		return SMG_ERR_TOO_LONG;
	smg_rd_init(&rd, buf, len);
	if ((r = smg_rd_u8(&rd, &out->version)) != 0 ||
	    (r = smg_rd_u8(&rd, &out->mode)) != 0 || (r = smg_rd_u8(&rd, &nlen)) != 0)
		return r;
	if (out->version != SMG_ATTEST_HELLO_VERSION)
		return SMG_ERR_VERSION;
	if (nlen == 0 || nlen >= SMG_POLICY_NAME_MAX)
		return SMG_ERR_TOO_LONG;
	if ((r = smg_rd_ptr(&rd, nlen, &name)) != 0)
		return r;
	if (memchr(name, '\0', nlen) != NULL)
		return SMG_ERR_PROTO;
	memcpy(out->name, name, nlen);
	if (out->mode == SMG_ATTEST_MODE_TPM) {
		if ((r = smg_rd_bytes(&rd, out->point, SMG_P256_POINT_LEN)) != 0)
			return r;
		if (out->point[0] != 0x04)
			return SMG_ERR_PROTO;
	} else if (out->mode != SMG_ATTEST_MODE_SOFTWARE) {
		return SMG_ERR_PROTO;
	}
	return smg_rd_end(&rd);
}

int smg_attest_hs_new(struct smg_attest *a, struct smg_attest_hs **out)
{
	struct smg_attest_hs *hs;

	*out = NULL;
	if (a == NULL)
		return SMG_ERR_INVAL;
	if ((hs = calloc(1, sizeof(*hs))) == NULL)
		return SMG_ERR_NOMEM;
	hs->a = a;
	*out = hs;
	return SMG_OK;
}

void smg_attest_hs_free(struct smg_attest_hs *hs)
{
	if (hs == NULL)
		return;
	EVP_PKEY_free(hs->key);
	free(hs);
}

int smg_attest_hello(struct smg_attest_hs *hs, uint8_t *out, size_t cap, size_t *len)
{
	const struct smg_policy *pol = hs->a->pol;
	uint8_t point[SMG_P256_POINT_LEN];
	size_t nlen = strlen(pol->host);
	EVP_PKEY *key;
	struct smg_wr wr;
	int r;

	*len = 0;
	if ((r = attest_p256_keygen(&key, point)) != 0)
		return r;
	smg_wr_init(&wr, out, cap);
	if ((r = smg_wr_u8(&wr, SMG_ATTEST_HELLO_VERSION)) != 0 ||
	    (r = smg_wr_u8(&wr, SMG_ATTEST_MODE_TPM)) != 0 ||
	    (r = smg_wr_u8(&wr, (uint8_t)nlen)) != 0 ||
	    (r = smg_wr_bytes(&wr, pol->host, nlen)) != 0 ||
	    (r = smg_wr_bytes(&wr, point, sizeof(point))) != 0) {
		EVP_PKEY_free(key);
		return r;
	}
	EVP_PKEY_free(hs->key);
	hs->key = key;
	memcpy(hs->point, point, sizeof(point));
	*len = wr.off;
	return SMG_OK;
}

/* The ephemeral key of the hello our_ext carries, taken out of hs: a
 * handshake's key serves one secret. */
static EVP_PKEY *take_key(struct smg_attest_hs *hs, const struct smg_attest_hello *ours)
{
	EVP_PKEY *key = hs->key;

	if (key == NULL || sodium_memcmp(hs->point, ours->point, SMG_P256_POINT_LEN) != 0)
		return NULL;
	hs->key = NULL;
	return key;
}

static const struct smg_policy_peer *tpm_peer(struct smg_attest *a, const char *peer)
{
	const struct smg_policy_peer *pe = smg_policy_find_peer(a->pol, peer);

	if (pe == NULL || !pe->has_ecdh || !pe->has_ak) {
		smg_peer_log(
		    SMG_LOG_ERROR,
		    "attest: peer '%s' has no TPM enrolment in this host's policy "
		    "(add the block `secmig tpm-enroll` printed on that host)",
		    peer != NULL ? peer : "?");
		return NULL;
	}
	return pe;
}

int smg_attest_secret(struct smg_attest_hs *hs, bool initiator, const char *peer,
		      const uint8_t *our_ext, size_t our_len, const uint8_t *peer_ext,
		      size_t peer_len, uint8_t out[SMG_ATTEST_SECRET_LEN])
{
	struct smg_attest *a = hs->a;
	const struct smg_policy_peer *pe;
	struct smg_attest_hello ours, theirs;
	uint8_t z_own[SMG_P256_COORD_LEN], z_peer[SMG_P256_COORD_LEN];
	crypto_generichash_state h;
	EVP_PKEY *eph = NULL;
	int r;

	memset(out, 0, SMG_ATTEST_SECRET_LEN);
	if (smg_attest_hello_decode(our_ext, our_len, &ours) != 0 ||
	    (eph = take_key(hs, &ours)) == NULL) {
		smg_err("attest: no ephemeral key for this handshake's hello");
		return SMG_ERR_STATE;
	}
	if (peer_len == 0 ||
	    (r = smg_attest_hello_decode(peer_ext, peer_len, &theirs)) != 0 ||
	    theirs.mode != SMG_ATTEST_MODE_TPM) {
		smg_peer_log(
		    SMG_LOG_ERROR,
		    "attest: TPM mode required but peer '%s' is in software mode "
		    "(no TPM hello)",
		    peer != NULL ? peer : "?");
		r = SMG_ERR_ATTEST;
		goto out;
	}
	if (peer == NULL || strcmp(theirs.name, peer) != 0) {
		smg_peer_log(SMG_LOG_ERROR,
			     "attest: TPM hello names '%s' but the peer is '%s'",
			     theirs.name, peer != NULL ? peer : "?");
		r = SMG_ERR_AUTH;
		goto out;
	}
	if ((pe = tpm_peer(a, peer)) == NULL) {
		r = SMG_ERR_UNKNOWN_PEER;
		goto out;
	}
	pthread_mutex_lock(&a->lock);
	r = smg_tpm_ecdh_zgen(a->tpm, a->pol->pcr_mask, theirs.point, z_own);
	pthread_mutex_unlock(&a->lock);
	if (r != 0)
		goto out;
	if ((r = attest_p256_ecdh(eph, pe->ecdh_pub, z_peer)) != 0) {
		smg_err("attest: ECDH against peer '%s''s enrolled key failed", peer);
		goto out;
	}
	crypto_generichash_init(&h, NULL, 0, SMG_ATTEST_SECRET_LEN);
	crypto_generichash_update(&h, (const uint8_t *)SECRET_PERSONAL,
				  sizeof(SECRET_PERSONAL));
	/* initiator's static key first, so both sides hash the same order */
	crypto_generichash_update(&h, initiator ? z_own : z_peer, SMG_P256_COORD_LEN);
	crypto_generichash_update(&h, initiator ? z_peer : z_own, SMG_P256_COORD_LEN);
	crypto_generichash_update(&h, initiator ? our_ext : peer_ext,
				  initiator ? our_len : peer_len);
	crypto_generichash_update(&h, initiator ? peer_ext : our_ext,
				  initiator ? peer_len : our_len);
	crypto_generichash_final(&h, out, SMG_ATTEST_SECRET_LEN);
	r = SMG_OK;
out:
	sodium_memzero(z_own, sizeof(z_own));
	sodium_memzero(z_peer, sizeof(z_peer));
	sodium_memzero(&h, sizeof(h));
	EVP_PKEY_free(eph);
	return r;
}

/* Qualifying data: the transcript hash and the quoting side's role, so a
 * quote is valid for one session and one direction only. */
static void quote_qual(bool quoter_initiator, const uint8_t *th, size_t th_len,
		       uint8_t q[32])
{
	crypto_generichash_state h;
	uint8_t role = quoter_initiator ? 'I' : 'R';

	crypto_generichash_init(&h, NULL, 0, 32);
	crypto_generichash_update(&h, (const uint8_t *)QUOTE_PERSONAL,
				  sizeof(QUOTE_PERSONAL));
	crypto_generichash_update(&h, &role, 1);
	crypto_generichash_update(&h, th, th_len);
	crypto_generichash_final(&h, q, 32);
}

int smg_attest_evidence(struct smg_attest *a, bool initiator, const uint8_t *th,
			size_t th_len, uint8_t *out, size_t cap, size_t *len)
{
	uint8_t q[32];
	int r;

	*len = 0;
	if (th_len == 0 || th_len > SMG_TRANSCRIPT_MAX)
		return SMG_ERR_INVAL;
	quote_qual(initiator, th, th_len, q);
	pthread_mutex_lock(&a->lock);
	r = smg_tpm_quote(a->tpm, a->pol->pcr_mask, q, sizeof(q), out, cap, len);
	pthread_mutex_unlock(&a->lock);
	return r;
}

int smg_attest_verify(struct smg_attest *a, bool initiator, const char *peer,
		      const uint8_t *th, size_t th_len, const uint8_t *ev, size_t len)
{
	const struct smg_policy_peer *pe;
	struct smg_evidence_expect exp = {0};
	uint8_t q[32];

	if ((pe = tpm_peer(a, peer)) == NULL)
		return SMG_ERR_UNKNOWN_PEER;
	if (len == 0) {
		smg_peer_log(
		    SMG_LOG_ERROR,
		    "attest: TPM mode required but peer '%s' sent no quote (software "
		    "mode?)",
		    peer);
		return SMG_ERR_ATTEST;
	}
	if (th_len == 0 || th_len > SMG_TRANSCRIPT_MAX)
		return SMG_ERR_INVAL;
	quote_qual(!initiator, th, th_len, q);
	exp.peer = peer;
	exp.ak_pub = pe->ak_pub;
	exp.pcr_mask = pe->pcr_mask;
	exp.golden = pe->golden;
	exp.qual = q;
	exp.qual_len = sizeof(q);
	return smg_evidence_verify(ev, len, &exp, NULL, 0);
}
