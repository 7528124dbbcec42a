/* Known answers: the frame AEAD (HChaCha20 from libsodium + ChaCha20-Poly1305
 * from OpenSSL, counter nonces) must be byte for byte libsodium's
 * crypto_aead_xchacha20poly1305_ietf with the nonce smg_aead_nonce names,
 * at every length boundary, with and without associated data, across the
 * counter's byte boundaries and across rekeys; each side opens what the
 * other sealed; a wrong counter, key, salt, MAC or byte is refused. The
 * frame layer on top: a whole frame is that AEAD over [flags][type][payload]. */
#include <pthread.h>

#include "check.h"
#include "tutil.h"

#define XC_ABYTES crypto_aead_xchacha20poly1305_ietf_ABYTES

static uint8_t *buf, *ref, *msg;

static void fill(uint8_t *p, size_t n, uint8_t seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(seed * 31 + i * 7 + (i >> 8));
}

/* Seal msg[0..len) with k (whose ctr is the frame number) and compare with
 * libsodium's one-shot XChaCha20-Poly1305 under the epoch key. */
static void one(struct aead_key *k, size_t len, const uint8_t *ad, size_t adlen)
{
	uint8_t nonce[AEAD_NONCE_LEN], mac[AEAD_MAC_LEN];
	unsigned long long clen = 0, mlen = 0;
	struct aead_key opener = *k;
	uint64_t ctr = k->ctr;

	smg_aead_nonce(k, ctr, nonce);
	CHECK_EQ(crypto_aead_xchacha20poly1305_ietf_encrypt(ref, &clen, msg, len, ad,
							    adlen, NULL, nonce, k->key),
		 0);
	CHECK_EQ(clen, len + XC_ABYTES);
	memcpy(buf, msg, len);
	CHECK_EQ(smg_aead_seal(k, buf, len, ad, adlen, mac), 0);
	CHECK_EQ(k->ctr, ctr + 1);
	CHECK(memcmp(buf, ref, len) == 0);
	CHECK(memcmp(mac, ref + len, AEAD_MAC_LEN) == 0);
	/* ours opens libsodium's output in place ... */
	memcpy(buf, ref, len);
	CHECK_EQ(smg_aead_open(&opener, buf, len, ad, adlen, ref + len), 0);
	CHECK(memcmp(buf, msg, len) == 0);
	CHECK_EQ(opener.ctr, ctr + 1);
	/* ... and libsodium opens ours */
	CHECK_EQ(crypto_aead_xchacha20poly1305_ietf_decrypt(buf, &mlen, NULL, ref, clen,
							    ad, adlen, nonce, k->key),
		 0);
	CHECK_EQ(mlen, len);
}

static void lengths(void)
{
	static const size_t sz[] = {0,
				    1,
				    15,
				    16,
				    17,
				    63,
				    64,
				    65,
				    255,
				    256,
				    4095,
				    4096,
				    4097,
				    16383,
				    16384,
				    16385,
				    65536,
				    65672,
				    (1u << 20) + 1,
				    (1u << 20) + 2};
	uint8_t key[AEAD_KEY_LEN], salt[AEAD_SALT_LEN], ad[21];
	struct aead_key k;

	randombytes_buf(key, sizeof(key));
	randombytes_buf(salt, sizeof(salt));
	fill(ad, sizeof(ad), 9);
	smg_aead_init(&k, key, salt);
	for (size_t i = 0; i < SMG_ARRAY_LEN(sz); i++) {
		fill(msg, sz[i], (uint8_t)i);
		one(&k, sz[i], NULL, 0);
		one(&k, sz[i], ad, sizeof(ad));
	}
}

/* Counter bytes: each of the 8 nonce bytes it touches, and wrap refusal. */
static void counters(void)
{
	static const uint64_t at[] = {0xff,
				      0x100,
				      0xffff,
				      0xffffffffull,
				      0x100000000ull,
				      0xffffffffffffull,
				      0x00ff00ff00ff00ffull,
				      UINT64_MAX - 1};
	uint8_t key[AEAD_KEY_LEN], salt[AEAD_SALT_LEN], n1[AEAD_NONCE_LEN],
	    n2[AEAD_NONCE_LEN], mac[AEAD_MAC_LEN];
	struct aead_key k;

	randombytes_buf(key, sizeof(key));
	randombytes_buf(salt, sizeof(salt));
	smg_aead_init(&k, key, salt);
	fill(msg, 1000, 3);
	for (size_t i = 0; i < SMG_ARRAY_LEN(at); i++) {
		k.ctr = at[i];
		one(&k, 1000, NULL, 0);
	}
	/* The nonce is the salt with the counter folded into its last 8 bytes. */
	smg_aead_nonce(&k, 0, n1);
	CHECK(memcmp(n1, salt, AEAD_NONCE_LEN) == 0);
	smg_aead_nonce(&k, 0x0102030405060708ull, n2);
	CHECK(memcmp(n2, salt, 16) == 0);
	for (unsigned b = 0; b < 8; b++)
		CHECK_EQ(n2[16 + b] ^ salt[16 + b], 8 - b);
	/* The last counter value is never used: no wrap to 0. */
	CHECK_EQ(k.ctr, UINT64_MAX);
	CHECK(smg_aead_seal(&k, buf, 10, NULL, 0, mac) != 0);
}

/* Rekey: the next epoch key is crypto_kdf(key, epoch, "smgrekey"); the
 * counter goes on; the old key no longer opens new frames. */
static void rekeys(void)
{
	uint8_t key[AEAD_KEY_LEN], salt[AEAD_SALT_LEN], want[AEAD_KEY_LEN],
	    mac[AEAD_MAC_LEN];
	struct aead_key k, old;

	randombytes_buf(key, sizeof(key));
	randombytes_buf(salt, sizeof(salt));
	smg_aead_init(&k, key, salt);
	fill(msg, 4096, 5);
	memcpy(want, key, sizeof(want));
	for (uint64_t e = 1; e <= 5; e++) {
		one(&k, 4096, NULL, 0);
		old = k;
		smg_aead_rekey(&k);
		crypto_kdf_derive_from_key(want, sizeof(want), e, "smgrekey", want);
		CHECK(memcmp(k.key, want, sizeof(want)) == 0);
		CHECK_EQ(k.epoch, e);
		CHECK_EQ(k.ctr, old.ctr);
		one(&k, 4096, NULL, 0);
		/* a frame of the new epoch does not open under the old key */
		old.ctr = k.ctr - 1;
		memcpy(buf, msg, 4096);
		k.ctr--;
		CHECK_EQ(smg_aead_seal(&k, buf, 4096, NULL, 0, mac), 0);
		CHECK_EQ(smg_aead_open(&old, buf, 4096, NULL, 0, mac), SMG_ERR_DECRYPT);
	}
}

/* Everything that differs fails the MAC, and a failure does not advance. */
static void refusals(void)
{
	uint8_t key[AEAD_KEY_LEN], salt[AEAD_SALT_LEN], mac[AEAD_MAC_LEN], sealed[300],
	    ad[4] = {1, 2, 3, 4};
	struct aead_key tx, rx, bad;

	randombytes_buf(key, sizeof(key));
	randombytes_buf(salt, sizeof(salt));
	smg_aead_init(&tx, key, salt);
	smg_aead_init(&rx, key, salt);
	fill(sealed, sizeof(sealed), 7);
	CHECK_EQ(smg_aead_seal(&tx, sealed, sizeof(sealed), ad, sizeof(ad), mac), 0);
	for (size_t bit = 0; bit < 8 * (sizeof(sealed) + sizeof(mac) + sizeof(ad));
	     bit += 13) {
		uint8_t c[300], m[AEAD_MAC_LEN], a[4];

		memcpy(c, sealed, sizeof(c));
		memcpy(m, mac, sizeof(m));
		memcpy(a, ad, sizeof(a));
		if (bit < 8 * sizeof(c))
			c[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		else if (bit < 8 * (sizeof(c) + sizeof(m)))
			m[bit / 8 - sizeof(c)] ^= (uint8_t)(1u << (bit % 8));
		else
			a[bit / 8 - sizeof(c) - sizeof(m)] ^= (uint8_t)(1u << (bit % 8));
		CHECK_EQ(smg_aead_open(&rx, c, sizeof(c), a, sizeof(a), m),
			 SMG_ERR_DECRYPT);
		CHECK_EQ(rx.ctr, 0);
	}
	bad = rx;
	bad.ctr = 1; /* wrong position: a replayed or reordered frame */
	memcpy(buf, sealed, sizeof(sealed));
	CHECK_EQ(smg_aead_open(&bad, buf, sizeof(sealed), ad, sizeof(ad), mac),
		 SMG_ERR_DECRYPT);
	bad = rx;
	bad.salt[3] ^= 1; /* another stream's salt */
	smg_aead_init(&bad, key, bad.salt);
	memcpy(buf, sealed, sizeof(sealed)); /* a failed open leaves garbage in place */
	CHECK_EQ(smg_aead_open(&bad, buf, sizeof(sealed), ad, sizeof(ad), mac),
		 SMG_ERR_DECRYPT);
	key[0] ^= 1; /* another channel's or direction's key */
	smg_aead_init(&bad, key, salt);
	memcpy(buf, sealed, sizeof(sealed));
	CHECK_EQ(smg_aead_open(&bad, buf, sizeof(sealed), ad, sizeof(ad), mac),
		 SMG_ERR_DECRYPT);
	memcpy(buf, sealed, sizeof(sealed));
	CHECK_EQ(smg_aead_open(&rx, buf, sizeof(sealed), ad, sizeof(ad), mac), 0);
	CHECK_EQ(rx.ctr, 1);
}

/* A wire frame is the AEAD over [flags][type][payload], no associated
 * data, length prefix outside: checked against libsodium directly. */
static void frame_layout(void)
{
	uint8_t key[SS_KEY], salt[SS_HEADER], nonce[AEAD_NONCE_LEN];
	unsigned long long clen;
	struct frame_tx tx = {.rekey_bytes = SMG_REKEY_BYTES};
	size_t wire, len = 5000;

	randombytes_buf(key, sizeof(key));
	randombytes_buf(salt, sizeof(salt));
	smg_frame_tx_key(&tx, key, salt);
	msg[0] = FRAME_FLAG_MESSAGE;
	msg[1] = SMG_FT_PAGES;
	fill(msg + 2, len, 11);
	memcpy(buf + FRAME_PAYLOAD_OFF, msg + 2, len);
	CHECK_EQ(smg_frame_seal(&tx, buf, SMG_FT_PAGES, len, false, &wire), 0);
	CHECK_EQ(wire, FRAME_OVERHEAD + len);
	CHECK_EQ(smg_load_be32(buf), wire - FRAME_LEN_BYTES);
	smg_aead_nonce(&tx.k, 0, nonce);
	crypto_aead_xchacha20poly1305_ietf_encrypt(ref, &clen, msg, len + 2, NULL, 0,
						   NULL, nonce, key);
	CHECK_EQ(clen, wire - FRAME_LEN_BYTES);
	CHECK(memcmp(buf + FRAME_LEN_BYTES, ref, clen) == 0);
}

/* A frame whose MAC holds but whose flags byte is none of MESSAGE, REKEY,
 * FINAL (secretstream's PUSH tag, or anything else) is a protocol error. */
static void flag_values(void)
{
	uint8_t key[SS_KEY], salt[SS_HEADER];
	struct aead_key k;
	struct frame_rx rx;
	struct smg_frame f;
	unsigned refused = 0, accepted = 0;

	randombytes_buf(key, sizeof(key));
	randombytes_buf(salt, sizeof(salt));
	for (unsigned flags = 0; flags < 256; flags++) {
		uint8_t *m = buf + FRAME_LEN_BYTES;
		int r;

		smg_aead_init(&k, key, salt);
		smg_frame_rx_key(&rx, key, salt);
		m[0] = (uint8_t)flags;
		m[1] = SMG_FT_DONE;
		smg_store_be32(buf, FRAME_MSG_MIN);
		CHECK_EQ(
		    smg_aead_seal(&k, m, FRAME_HDR_BYTES, NULL, 0, m + FRAME_HDR_BYTES),
		    0);
		r = smg_frame_open(&rx, buf, FRAME_OVERHEAD, &f);
		if (flags == FRAME_FLAG_MESSAGE || flags == FRAME_FLAG_REKEY) {
			CHECK_EQ(r, 0);
			accepted++;
		} else {
			/* FINAL on ACK, or an unknown value */
			CHECK_EQ(r, SMG_ERR_PROTO);
			refused++;
		}
	}
	CHECK_EQ(accepted, 2);
	CHECK_EQ(refused, 254);
}

/* Two threads seal with their own cipher contexts at once: same answers. */
static void *thread_seal(void *arg)
{
	struct aead_key *k = arg;
	uint8_t *p = malloc(70000), mac[AEAD_MAC_LEN];

	for (int i = 0; i < 50; i++) {
		fill(p, 70000, (uint8_t)i);
		if (smg_aead_seal(k, p, 70000, NULL, 0, mac) != 0)
			k->epoch = 999;
	}
	memcpy(k->subkey, mac, AEAD_MAC_LEN); /* the last MAC, for comparison */
	free(p);
	smg_aead_thread_wipe();
	return NULL;
}

static void threads(void)
{
	uint8_t key[AEAD_KEY_LEN], salt[AEAD_SALT_LEN];
	struct aead_key a, b;
	pthread_t ta, tb;

	randombytes_buf(key, sizeof(key));
	randombytes_buf(salt, sizeof(salt));
	smg_aead_init(&a, key, salt);
	b = a;
	pthread_create(&ta, NULL, thread_seal, &a);
	pthread_create(&tb, NULL, thread_seal, &b);
	pthread_join(ta, NULL);
	pthread_join(tb, NULL);
	CHECK_EQ(a.epoch, 0);
	CHECK_EQ(a.ctr, 50);
	CHECK(memcmp(a.subkey, b.subkey, AEAD_MAC_LEN) == 0);
}

int main(void)
{
	if (sodium_init() < 0)
		return 1;
	buf = malloc(FRAME_WIRE_MAX + 64);
	ref = malloc(FRAME_WIRE_MAX + 64);
	msg = malloc(FRAME_WIRE_MAX + 64);
	lengths();
	counters();
	rekeys();
	refusals();
	frame_layout();
	flag_values();
	threads();
	free(buf);
	free(ref);
	free(msg);
	return check_result("test_transport_aead");
}
