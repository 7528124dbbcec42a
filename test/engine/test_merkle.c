/* The incremental Merkle tree equals one built from scratch, whatever the
 * order of updates; any changed page changes the root; and the root is the
 * construction docs/engine.md states, computed here with OpenSSL's SHA-256
 * directly. */
#include <stdlib.h>
#include <string.h>

#include <openssl/sha.h>

#include "base/base.h"
#include "check.h"
#include "engine/engine.h"

#define PS 4096u

static void full_root(const uint8_t *mem, uint64_t n, uint8_t root[SMG_DIGEST_LEN])
{
	struct smg_merkle *m;

	CHECK(smg_merkle_new(n, PS, &m) == 0);
	for (uint64_t i = 0; i < n; i++)
		smg_merkle_set_page(m, i, mem + i * PS, PS);
	smg_merkle_root(m, root);
	smg_merkle_free(m);
}

static void sha(uint8_t tag, const uint8_t *a, size_t alen, const uint8_t *b, size_t blen,
		uint8_t out[32])
{
	uint8_t buf[1 + PS + 64];

	buf[0] = tag;
	memcpy(buf + 1, a, alen);
	if (blen > 0)
		memcpy(buf + 1 + alen, b, blen);
	SHA256(buf, 1 + alen + blen, out);
}

/* 3 pages: root = H(2 || be64 3*PS || be32 PS || H(1 || H(1 || L0 || L1) || L2)) */
static void construction(void)
{
	uint8_t *mem = calloc(3, PS), l[3][32], n01[32], top[32], hdr[12], root[32],
		got[SMG_DIGEST_LEN];
	struct smg_merkle *m;

	for (unsigned i = 0; i < 3 * PS; i++)
		mem[i] = (uint8_t)(i * 13 + 1);
	for (unsigned i = 0; i < 3; i++)
		sha(0x00, mem + i * PS, PS, NULL, 0, l[i]);
	sha(0x01, l[0], 32, l[1], 32, n01);
	sha(0x01, n01, 32, l[2], 32, top);
	smg_store_be64(hdr, 3 * PS);
	smg_store_be32(hdr + 8, PS);
	sha(0x02, hdr, 12, top, 32, root);
	CHECK(smg_merkle_new(3, PS, &m) == 0);
	for (unsigned i = 0; i < 3; i++)
		smg_merkle_set_page(m, i, mem + i * PS, PS);
	smg_merkle_root(m, got);
	CHECK(memcmp(got, root, 32) == 0);
	smg_merkle_free(m);
	free(mem);
}

int main(void)
{
	construction();
	const uint64_t sizes[] = {1, 2, 3, 7, 64, 65, 1000};

	for (size_t s = 0; s < SMG_ARRAY_LEN(sizes); s++) {
		uint64_t n = sizes[s];
		uint8_t *mem = calloc(n, PS), a[SMG_DIGEST_LEN], b[SMG_DIGEST_LEN];
		struct smg_merkle *m;

		/* all-zero memory: a fresh tree (zero leaves) = hashed zeros */
		CHECK(smg_merkle_new(n, PS, &m) == 0);
		smg_merkle_root(m, a);
		full_root(mem, n, b);
		CHECK(memcmp(a, b, SMG_DIGEST_LEN) == 0);
		srand((unsigned)n);
		for (int round = 0; round < 5; round++) {
			for (int k = 0; k < 20; k++) {
				uint64_t i = (uint64_t)rand() % n;
				if (rand() % 4 == 0) {
					memset(mem + i * PS, 0, PS);
					smg_merkle_set_zero(m, i);
				} else {
					mem[i * PS + (unsigned)rand() % PS] =
					    (uint8_t)rand();
					smg_merkle_set_page(m, i, mem + i * PS, PS);
				}
			}
			smg_merkle_root(m, a);
			full_root(mem, n, b);
			CHECK(memcmp(a, b, SMG_DIGEST_LEN) == 0);
		}
		mem[(n - 1) * PS] ^= 1;
		full_root(mem, n, b);
		CHECK(memcmp(a, b, SMG_DIGEST_LEN) != 0);
		smg_merkle_free(m);
		free(mem);
	}
	return check_result("engine_merkle");
}
