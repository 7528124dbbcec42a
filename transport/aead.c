/* The frame AEAD: XChaCha20-Poly1305 (IETF), the construction libsodium
 * calls crypto_aead_xchacha20poly1305_ietf, computed in two parts that
 * Debian ships:
 *   subkey = HChaCha20(epoch key, salt[0..16])        libsodium, once per epoch
 *   frame i: ChaCha20-Poly1305 (RFC 8439) under subkey with the 96-bit
 *            nonce 0^32 || (salt[16..24] XOR le64(i))  OpenSSL EVP, per frame
 * which is exactly XChaCha20-Poly1305 with the 192-bit nonce
 * salt[0..16] || (salt[16..24] XOR le64(i)). OpenSSL's ChaCha20 and
 * Poly1305 use the widest vector unit the CPU has (AVX-512 here), about
 * 2.7x libsodium's secretstream per core; test_transport_aead ties every
 * output to libsodium's own XChaCha20-Poly1305.
 *
 * The counter i numbers the frames of one direction of one channel and
 * never repeats or resets, rekeys included; the salt is the sender's random
 * STREAM body; the epoch key comes from the handshake's key schedule
 * (unique per session, channel and direction) and each rekey replaces it
 * by a one-way function of itself. docs/protocol.md §5 argues why no
 * (key, nonce) pair ever repeats. */
#include <pthread.h>
#include <string.h>

#include <openssl/evp.h>

#include "transport/internal.h"

#define REKEY_CTX "smgrekey" /* crypto_kdf context of the epoch ratchet */

/* OpenSSL applies the cipher and the MAC per update call, one after the
 * other: pieces this size keep each piece in L1/L2 between the two. */
#define AEAD_PIECE (16u << 10)

static EVP_CIPHER *cipher;
static pthread_once_t cipher_once = PTHREAD_ONCE_INIT;
static pthread_key_t ctx_key;
/* One EVP context per thread, re-keyed for every frame: the keys live in
 * struct aead_key (plain values a sender or receiver may copy), the context
 * is scratch. It is freed (OpenSSL cleanses it) when the thread ends. */
static _Thread_local EVP_CIPHER_CTX *tctx;

static void ctx_free(void *p)
{
	EVP_CIPHER_CTX_free(p);
}

static void cipher_init(void)
{
	cipher = EVP_CIPHER_fetch(NULL, "ChaCha20-Poly1305", NULL);
	if (pthread_key_create(&ctx_key, ctx_free) != 0) {
		EVP_CIPHER_free(cipher);
		cipher = NULL;
	}
}

static EVP_CIPHER_CTX *thread_ctx(void)
{
	if (tctx != NULL)
		return tctx;
	if (pthread_once(&cipher_once, cipher_init) != 0 || cipher == NULL)
		return NULL;
	if ((tctx = EVP_CIPHER_CTX_new()) == NULL)
		return NULL;
	if (EVP_CipherInit_ex2(tctx, cipher, NULL, NULL, 1, NULL) != 1 ||
	    pthread_setspecific(ctx_key, tctx) != 0) {
		EVP_CIPHER_CTX_free(tctx);
		tctx = NULL;
	}
	return tctx;
}

void smg_aead_thread_wipe(void)
{
	if (tctx == NULL)
		return;
	pthread_setspecific(ctx_key, NULL);
	EVP_CIPHER_CTX_free(tctx);
	tctx = NULL;
}

static void derive_subkey(struct aead_key *k)
{
	crypto_core_hchacha20(k->subkey, k->salt, k->key, NULL);
}

void smg_aead_init(struct aead_key *k, const uint8_t key[AEAD_KEY_LEN],
		   const uint8_t salt[AEAD_SALT_LEN])
{
	memcpy(k->key, key, AEAD_KEY_LEN);
	memcpy(k->salt, salt, AEAD_SALT_LEN);
	k->ctr = 0;
	k->epoch = 0;
	derive_subkey(k);
}

void smg_aead_rekey(struct aead_key *k)
{
	uint8_t next[AEAD_KEY_LEN];

	/* One-way: a key taken later cannot open earlier frames. The frame
	 * counter carries on, so nonces never repeat across epochs either. */
	k->epoch++;
	crypto_kdf_derive_from_key(next, sizeof(next), k->epoch, REKEY_CTX, k->key);
	memcpy(k->key, next, sizeof(next));
	sodium_memzero(next, sizeof(next));
	derive_subkey(k);
}

void smg_aead_nonce(const struct aead_key *k, uint64_t ctr, uint8_t nonce[AEAD_NONCE_LEN])
{
	memcpy(nonce, k->salt, AEAD_NONCE_LEN);
	for (unsigned i = 0; i < 8; i++)
		nonce[16 + i] ^= (uint8_t)(ctr >> (8 * i));
}

static int run(struct aead_key *k, bool enc, uint8_t *p, size_t len, const uint8_t *ad,
	       size_t adlen, uint8_t mac[AEAD_MAC_LEN])
{
	EVP_CIPHER_CTX *ctx = thread_ctx();
	uint8_t nonce[AEAD_NONCE_LEN], iv[12] = {0};
	int n, ok;

	if (ctx == NULL)
		return SMG_ERR_CRYPTO;
	if (k->ctr == UINT64_MAX)
		return SMG_ERR_CRYPTO; /* 2^64 frames: never, but never wrap */
	smg_aead_nonce(k, k->ctr, nonce);
	memcpy(iv + 4, nonce + 16, 8);
	ok = EVP_CipherInit_ex2(ctx, NULL, k->subkey, iv, enc, NULL) == 1;
	if (ok && !enc)
		ok = EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, AEAD_MAC_LEN, mac) ==
		     1;
	if (ok && adlen > 0)
		ok = EVP_CipherUpdate(ctx, NULL, &n, ad, (int)adlen) == 1;
	for (size_t off = 0; ok && off < len; off += AEAD_PIECE) {
		size_t piece = len - off < AEAD_PIECE ? len - off : AEAD_PIECE;

		ok = EVP_CipherUpdate(ctx, p + off, &n, p + off, (int)piece) == 1;
	}
	/* Decrypting: the final call is the tag check. What a failed check
	 * leaves in p is never handed out (the channel is dead). */
	ok = ok && EVP_CipherFinal_ex(ctx, p + len, &n) == 1;
	if (ok && enc)
		ok = EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, AEAD_MAC_LEN, mac) ==
		     1;
	sodium_memzero(nonce, sizeof(nonce));
	if (!ok)
		return enc ? SMG_ERR_CRYPTO : SMG_ERR_DECRYPT;
	k->ctr++;
	return SMG_OK;
}

int smg_aead_seal(struct aead_key *k, uint8_t *p, size_t len, const uint8_t *ad,
		  size_t adlen, uint8_t mac[AEAD_MAC_LEN])
{
	return run(k, true, p, len, ad, adlen, mac);
}

int smg_aead_open(struct aead_key *k, uint8_t *p, size_t len, const uint8_t *ad,
		  size_t adlen, const uint8_t mac[AEAD_MAC_LEN])
{
	uint8_t tag[AEAD_MAC_LEN];

	memcpy(tag, mac, AEAD_MAC_LEN);
	return run(k, false, p, len, ad, adlen, tag);
}
