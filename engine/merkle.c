/* The memory Merkle tree of DESIGN §6 (digests: engine/digest.c, SHA-256
 * with domain tags, the disk tree's shape). Both sides keep the tree as
 * pages move and only recompute the paths above changed leaves, so the
 * root costs almost nothing at stop-and-copy. */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "engine/engine.h"

#define LEVELS_MAX   48
#define MEMORY_BATCH 256 /* frames per read_pages in smg_merkle_of_memory */

struct smg_merkle {
	unsigned levels;
	uint32_t leaf_size;
	uint64_t n[LEVELS_MAX]; /* nodes per level; level 0 = leaves */
	uint8_t (*node[LEVELS_MAX])[SMG_DIGEST_LEN];
	_Atomic uint64_t *dirty[LEVELS_MAX]; /* one bit per node that changed */
	uint8_t zero_leaf[SMG_DIGEST_LEN];
};

static void mark(struct smg_merkle *m, unsigned lvl, uint64_t i)
{
	atomic_fetch_or_explicit(&m->dirty[lvl][i / 64], 1ull << (i % 64),
				 memory_order_release);
}

int smg_merkle_new(uint64_t leaves, uint32_t page_size, struct smg_merkle **out)
{
	struct smg_merkle *m;
	uint64_t n = leaves;
	uint8_t *zero;

	*out = NULL;
	if (leaves == 0 || page_size == 0)
		return SMG_ERR_INVAL;
	if ((m = calloc(1, sizeof(*m))) == NULL)
		return SMG_ERR_NOMEM;
	if ((zero = calloc(1, page_size)) == NULL) {
		free(m);
		return SMG_ERR_NOMEM;
	}
	smg_digest_leaf(zero, page_size, m->zero_leaf);
	free(zero);
	m->leaf_size = page_size;
	for (;;) {
		unsigned l = m->levels++;
		m->n[l] = n;
		m->node[l] = calloc(n, SMG_DIGEST_LEN);
		m->dirty[l] = calloc((n + 63) / 64, sizeof(uint64_t));
		if (m->node[l] == NULL || m->dirty[l] == NULL) {
			smg_merkle_free(m);
			return SMG_ERR_NOMEM;
		}
		for (uint64_t i = 0; i < n; i++) {
			if (l == 0)
				memcpy(m->node[0][i], m->zero_leaf, SMG_DIGEST_LEN);
			mark(m, l, i);
		}
		if (n == 1)
			break;
		n = (n + 1) / 2;
	}
	*out = m;
	return SMG_OK;
}

void smg_merkle_free(struct smg_merkle *m)
{
	if (m == NULL)
		return;
	for (unsigned l = 0; l < m->levels; l++) {
		free(m->node[l]);
		free((void *)m->dirty[l]);
	}
	free(m);
}

void smg_merkle_set_page(struct smg_merkle *m, uint64_t i, const uint8_t *page,
			 size_t len)
{
	if (i >= m->n[0])
		return;
	smg_digest_leaf(page, len, m->node[0][i]);
	mark(m, 0, i);
}

void smg_merkle_set_zero(struct smg_merkle *m, uint64_t i)
{
	if (i >= m->n[0])
		return;
	memcpy(m->node[0][i], m->zero_leaf, SMG_DIGEST_LEN);
	mark(m, 0, i);
}

void smg_merkle_root(struct smg_merkle *m, uint8_t root[SMG_DIGEST_LEN])
{
	for (unsigned l = 0; l + 1 < m->levels; l++) {
		uint64_t words = (m->n[l] + 63) / 64;

		for (uint64_t w = 0; w < words; w++) {
			uint64_t v;

			if (atomic_load_explicit(&m->dirty[l][w], memory_order_relaxed) ==
			    0)
				continue;
			v = atomic_exchange_explicit(&m->dirty[l][w], 0,
						     memory_order_acquire);
			while (v != 0) {
				uint64_t i = w * 64 + (uint64_t)__builtin_ctzll(v);
				uint64_t p = i / 2, left = p * 2;

				v &= v - 1;
				if ((i & 1) == 0 && (v & 1ull << ((i + 1) % 64)) &&
				    i + 1 < m->n[l])
					v &= ~(1ull << ((i + 1) %
							64)); /* sibling: same parent */
				if (left + 1 < m->n[l])
					smg_digest_node(m->node[l][left],
							m->node[l][left + 1],
							m->node[l + 1][p]);
				else /* an odd last node moves up as it is */
					memcpy(m->node[l + 1][p], m->node[l][left],
					       SMG_DIGEST_LEN);
				mark(m, l + 1, p);
			}
		}
	}
	atomic_store(&m->dirty[m->levels - 1][0], 0);
	smg_digest_root(m->node[m->levels - 1][0], m->n[0] * (uint64_t)m->leaf_size,
			m->leaf_size, root);
}

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
			smg_merkle_set_page(m, p + i, buf + i * page_size, page_size);
	}
	if (r == SMG_OK)
		smg_merkle_root(m, root);
	free(buf);
	smg_merkle_free(m);
	return r;
}
