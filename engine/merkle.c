/* The memory root of DESIGN §6 from scratch, straight from the backend
 * (tests, --check-memory, the source's re-check before COMMIT). The tree
 * and its construction are base's (base/merkle*.c), shared with the disks;
 * the engine keeps one as pages move (engine/xfer.c). */
#include <stdlib.h>

#include "base/base.h"
#include "engine/engine.h"

#define MEMORY_BATCH 256 /* frames per read_pages */

_Static_assert(SMG_DIGEST_LEN == SMG_MERKLE_LEN, "a memory root is a Merkle root");

int smg_merkle_of_memory(struct smg_backend *be, uint64_t pages, uint32_t page_size,
			 uint8_t root[SMG_DIGEST_LEN])
{
	struct smg_merkle *m;
	uint64_t pfns[MEMORY_BATCH];
	uint8_t *buf;
	int r;

	if ((r = smg_merkle_new(pages, page_size, &m)) != SMG_OK)
		return r;
	if ((buf = malloc((size_t)page_size * MEMORY_BATCH)) == NULL) {
		smg_merkle_free(m);
		return SMG_ERR_NOMEM;
	}
	/* In batches: a backend maps a run of frames in one call. */
	for (uint64_t p = 0; p < pages && r == SMG_OK; p += MEMORY_BATCH) {
		size_t n = pages - p < MEMORY_BATCH ? (size_t)(pages - p) : MEMORY_BATCH;

		for (size_t i = 0; i < n; i++)
			pfns[i] = p + i;
		r = be->ops->read_pages(be, pfns, n, buf);
		for (size_t i = 0; r == SMG_OK && i < n; i++)
			smg_merkle_set_leaf(m, p + i, buf + i * page_size, page_size);
	}
	if (r == SMG_OK)
		smg_merkle_root(m, root);
	free(buf);
	smg_merkle_free(m);
	return r;
}
