/* The one Merkle construction of secmig (DESIGN §6), for guest memory and
 * for every disk alike: SHA-256 through OpenSSL (the CPU's SHA extensions)
 * with a one-byte domain tag per kind of node:
 *   leaf = SHA-256(0x00 || data)           a page, or a disk chunk
 *   node = SHA-256(0x01 || left || right)   an odd last node moves up as is
 *   root = SHA-256(0x02 || be64 bytes || be32 leaf size || top)
 * The tags keep a leaf from passing for a node and either from passing for
 * a root; the root header binds the content's length and how it was cut
 * into leaves. Why SHA-256 and not BLAKE2b or a keyed hash:
 * docs/engine.md, "Integrity". The tree that keeps these: merkle_tree.c. */
#include <pthread.h>
#include <string.h>

#include <openssl/evp.h>

#include "base/base.h"

#define TAG_LEAF 0x00
#define TAG_NODE 0x01
#define TAG_ROOT 0x02
#define ROOT_HDR 12 /* be64 bytes || be32 leaf size */

static EVP_MD *sha256;
static pthread_once_t md_once = PTHREAD_ONCE_INIT;
static pthread_key_t ctx_key;
/* One digest context per thread (channel threads hash in parallel). */
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

static const EVP_MD *md(void)
{
	if (pthread_once(&md_once, md_init) != 0)
		return NULL;
	return sha256;
}

static EVP_MD_CTX *thread_ctx(void)
{
	if (tctx != NULL)
		return tctx;
	if (md() == NULL)
		return NULL;
	if ((tctx = EVP_MD_CTX_new()) != NULL &&
	    pthread_setspecific(ctx_key, tctx) != 0) {
		EVP_MD_CTX_free(tctx);
		tctx = NULL;
	}
	return tctx;
}

/* SHA-256 of tag || a || b. Without a context (out of memory) the digest is
 * all ones: it matches no honest root, so a verification fails closed. */
static void tagged(uint8_t tag, const void *a, size_t alen, const void *b, size_t blen,
		   uint8_t out[SMG_MERKLE_LEN])
{
	EVP_MD_CTX *c = thread_ctx();
	unsigned int n = 0;

	if (c == NULL || EVP_DigestInit_ex2(c, md(), NULL) != 1 ||
	    EVP_DigestUpdate(c, &tag, 1) != 1 ||
	    (alen > 0 && EVP_DigestUpdate(c, a, alen) != 1) ||
	    (blen > 0 && EVP_DigestUpdate(c, b, blen) != 1) ||
	    EVP_DigestFinal_ex(c, out, &n) != 1 || n != SMG_MERKLE_LEN)
		memset(out, 0xff, SMG_MERKLE_LEN);
}

void smg_merkle_hash_leaf(const void *p, size_t len, uint8_t out[SMG_MERKLE_LEN])
{
	tagged(TAG_LEAF, p, len, NULL, 0, out);
}

void smg_merkle_hash_node(const uint8_t l[SMG_MERKLE_LEN],
			  const uint8_t r[SMG_MERKLE_LEN], uint8_t out[SMG_MERKLE_LEN])
{
	tagged(TAG_NODE, l, SMG_MERKLE_LEN, r, SMG_MERKLE_LEN, out);
}

void smg_merkle_hash_root(const uint8_t top[SMG_MERKLE_LEN], uint64_t bytes,
			  uint32_t leaf_size, uint8_t out[SMG_MERKLE_LEN])
{
	uint8_t hdr[ROOT_HDR];

	smg_store_be64(hdr, bytes);
	smg_store_be32(hdr + 8, leaf_size);
	tagged(TAG_ROOT, hdr, sizeof(hdr), top, SMG_MERKLE_LEN, out);
}

/* ---- a leaf hashed as its bytes stream in --------------------------------- */
/* Its own context, not the thread's: the tree may hash nodes on the same
 * thread between two updates of a leaf. */
int smg_merkle_leaf_begin(struct smg_merkle_leaf *h)
{
	static const uint8_t tag = TAG_LEAF;

	h->failed = true;
	if (h->ctx == NULL && md() != NULL)
		h->ctx = EVP_MD_CTX_new();
	if (h->ctx == NULL)
		return SMG_ERR_NOMEM;
	if (EVP_DigestInit_ex2(h->ctx, md(), NULL) != 1 ||
	    EVP_DigestUpdate(h->ctx, &tag, 1) != 1)
		return SMG_ERR_CRYPTO;
	h->failed = false;
	return SMG_OK;
}

void smg_merkle_leaf_update(struct smg_merkle_leaf *h, const void *p, size_t len)
{
	if (h->ctx == NULL ||
	    (!h->failed && len > 0 && EVP_DigestUpdate(h->ctx, p, len) != 1))
		h->failed = true;
}

void smg_merkle_leaf_zeros(struct smg_merkle_leaf *h, uint64_t n)
{
	static const uint8_t zeros[64 * 1024];

	while (n > 0 && !h->failed) {
		size_t k = n > sizeof(zeros) ? sizeof(zeros) : (size_t)n;

		smg_merkle_leaf_update(h, zeros, k);
		n -= k;
	}
}

int smg_merkle_leaf_end(struct smg_merkle_leaf *h, uint8_t out[SMG_MERKLE_LEN])
{
	unsigned int n = 0;

	if (h->ctx == NULL || h->failed || EVP_DigestFinal_ex(h->ctx, out, &n) != 1 ||
	    n != SMG_MERKLE_LEN) {
		h->failed = true;
		memset(out, 0xff, SMG_MERKLE_LEN);
		return SMG_ERR_CRYPTO;
	}
	h->failed = true; /* ended: begin again before the next update */
	return SMG_OK;
}

void smg_merkle_leaf_free(struct smg_merkle_leaf *h)
{
	EVP_MD_CTX_free(h->ctx);
	h->ctx = NULL;
	h->failed = true;
}
