/* The incremental Merkle tree equals one built from scratch, whatever the
 * order of updates; any changed page changes the root. */
#include <stdlib.h>
#include <string.h>

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

int main(void)
{
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
