/* The Merkle digests of DESIGN §6: SHA-256 (OpenSSL, which uses the CPU's
 * SHA extensions: about 2.7x libsodium's BLAKE2b per core on 4 KiB pages
 * here), with a one-byte domain tag per kind of node:
 *   leaf = SHA-256(0x00 || data)          a page (or a disk chunk)
 *   node = SHA-256(0x01 || left || right)  an odd last node moves up as is
 *   root = SHA-256(0x02 || be64 bytes || be32 leaf size || top)
 * the shape of the disk tree in storage/record.c. Why a collision-resistant
 * hash and not a faster keyed one: docs/engine.md, "Integrity". */
#include <pthread.h>
#include <string.h>

#include <openssl/evp.h>

#include "base/base.h"
#include "engine/engine.h"

#define TAG_LEAF 0x00
#define TAG_NODE 0x01
#define TAG_ROOT 0x02

static EVP_MD *sha256;
static pthread_once_t md_once = PTHREAD_ONCE_INIT;
static pthread_key_t ctx_key;
/* One digest context per thread (the channel threads hash in parallel). */
static _Thread_local EVP_MD_CTX *tctx;

static void ctx_free(void *p)
{
	EVP_MD_CTX_free(p);
}

static void md_init(void)
{
	sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
	if (pthread_key_create(&ctx_key, ctx_free) != 0) {
		EVP_MD_free(sha256);
		sha256 = NULL;
	}
}

static EVP_MD_CTX *thread_ctx(void)
{
	if (tctx != NULL)
		return tctx;
	if (pthread_once(&md_once, md_init) != 0 || sha256 == NULL)
		return NULL;
	if ((tctx = EVP_MD_CTX_new()) != NULL &&
	    pthread_setspecific(ctx_key, tctx) != 0) {
		EVP_MD_CTX_free(tctx);
		tctx = NULL;
	}
	return tctx;
}

/* SHA-256 of tag || a || b. Without a context (out of memory) the digest
 * is all ones: it matches no honest root, so verification fails closed. */
static void tagged(uint8_t tag, const void *a, size_t alen, const void *b, size_t blen,
		   uint8_t out[SMG_DIGEST_LEN])
{
	EVP_MD_CTX *c = thread_ctx();
	unsigned int n = 0;

	if (c == NULL || EVP_DigestInit_ex2(c, sha256, NULL) != 1 ||
	    EVP_DigestUpdate(c, &tag, 1) != 1 || EVP_DigestUpdate(c, a, alen) != 1 ||
	    (blen > 0 && EVP_DigestUpdate(c, b, blen) != 1) ||
	    EVP_DigestFinal_ex(c, out, &n) != 1 || n != SMG_DIGEST_LEN)
		memset(out, 0xff, SMG_DIGEST_LEN);
}

void smg_digest_leaf(const uint8_t *p, size_t len, uint8_t out[SMG_DIGEST_LEN])
{
	tagged(TAG_LEAF, p, len, NULL, 0, out);
}

void smg_digest_node(const uint8_t l[SMG_DIGEST_LEN], const uint8_t r[SMG_DIGEST_LEN],
		     uint8_t out[SMG_DIGEST_LEN])
{
	tagged(TAG_NODE, l, SMG_DIGEST_LEN, r, SMG_DIGEST_LEN, out);
}

void smg_digest_root(const uint8_t top[SMG_DIGEST_LEN], uint64_t bytes,
		     uint32_t leaf_size, uint8_t out[SMG_DIGEST_LEN])
{
	uint8_t hdr[12];

	smg_store_be64(hdr, bytes);
	smg_store_be32(hdr + 8, leaf_size);
	tagged(TAG_ROOT, hdr, sizeof(hdr), top, SMG_DIGEST_LEN, out);
}
