/* The Merkle tree of merkle.c's construction, kept as content changes: guest
 * memory (one leaf per page) and each disk (one leaf per chunk) alike. A
 * changed leaf marks itself; a root recomputes only the paths above marked
 * leaves, so the root at stop-and-copy costs the last round's paths. */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"

#define LEVELS_MAX 64 /* 2^63 leaves: more than any uint64_t byte count holds */

struct smg_merkle {
	unsigned levels; /* with the leaves' level 0; 0: empty content */
	uint64_t bytes;
	uint32_t leaf_size, last_len; /* the last leaf may be shorter */
	uint64_t n[LEVELS_MAX];	      /* nodes per level */
	uint8_t (*node[LEVELS_MAX])[SMG_MERKLE_LEN];
	_Atomic uint64_t *dirty[LEVELS_MAX]; /* one bit per node that changed */
	uint8_t zero_leaf[SMG_MERKLE_LEN], zero_last[SMG_MERKLE_LEN];
};

/* Leaves are written by the channel threads while one folder (the
 * destination's hasher, the source's control thread) takes roots: a leaf's
 * 32 bytes go in and come out as four relaxed atomic words, so a fold that
 * meets a leaf mid-write reads a mix of old and new words -- a wrong
 * parent, never undefined behaviour -- and the writer's mark() (release,
 * after its words) sets the leaf's dirty bit again, which the folder's
 * exchange (acquire) clears only before it reads: the next root refolds
 * that path from the whole new leaf. The root that counts is taken after
 * every writer joined. Levels above 0 belong to the folder alone (one root
 * at a time). test_base_merkle plays it; the TSan stage checks it. */
static void leaf_put(uint8_t *dst, const uint8_t src[SMG_MERKLE_LEN])
{
	for (unsigned k = 0; k < SMG_MERKLE_LEN / 8; k++) {
		uint64_t w;

		memcpy(&w, src + 8 * k, 8);
		__atomic_store_n((uint64_t *)(void *)(dst + 8 * k), w, __ATOMIC_RELAXED);
	}
}

static void leaf_get(const uint8_t *src, uint8_t dst[SMG_MERKLE_LEN])
{
	for (unsigned k = 0; k < SMG_MERKLE_LEN / 8; k++) {
		uint64_t w = __atomic_load_n(
		    (const uint64_t *)(const void *)(src + 8 * k), __ATOMIC_RELAXED);

		memcpy(dst + 8 * k, &w, 8);
	}
}

static void mark(struct smg_merkle *m, unsigned lvl, uint64_t i)
{
	atomic_fetch_or_explicit(&m->dirty[lvl][i / 64], 1ull << (i % 64),
				 memory_order_release);
}

static int zero_leaf(uint32_t len, uint8_t out[SMG_MERKLE_LEN])
{
	struct smg_merkle_leaf h = {0};
	int r;

	if ((r = smg_merkle_leaf_begin(&h)) == SMG_OK) {
		smg_merkle_leaf_zeros(&h, len);
		r = smg_merkle_leaf_end(&h, out);
	}
	smg_merkle_leaf_free(&h);
	return r;
}

static int alloc_levels(struct smg_merkle *m, uint64_t leaves)
{
	uint64_t n = leaves;

	while (n > 0 && m->levels < LEVELS_MAX) {
		unsigned l = m->levels++;
		uint64_t words = (n + 63) / 64;

		m->n[l] = n;
		m->node[l] = malloc(n * SMG_MERKLE_LEN);
		m->dirty[l] = malloc(words * sizeof(uint64_t));
		if (m->node[l] == NULL || m->dirty[l] == NULL)
			return SMG_ERR_NOMEM;
		/* Everything is to be computed once. */
		for (uint64_t w = 0; w < words; w++)
			atomic_init(&m->dirty[l][w], ~0ull);
		if (n % 64)
			atomic_init(&m->dirty[l][words - 1], (1ull << (n % 64)) - 1);
		if (n == 1)
			break;
		n = (n + 1) / 2;
	}
	return SMG_OK;
}

int smg_merkle_new_bytes(uint64_t bytes, uint32_t leaf_size, struct smg_merkle **out)
{
	struct smg_merkle *m;
	uint64_t leaves;
	int r;

	*out = NULL;
	if (leaf_size == 0)
		return SMG_ERR_INVAL;
	leaves = bytes / leaf_size + (bytes % leaf_size != 0);
	if (leaves > SIZE_MAX / SMG_MERKLE_LEN)
		return SMG_ERR_NOMEM;
	if ((m = calloc(1, sizeof(*m))) == NULL)
		return SMG_ERR_NOMEM;
	m->bytes = bytes;
	m->leaf_size = leaf_size;
	m->last_len = bytes % leaf_size ? (uint32_t)(bytes % leaf_size) : leaf_size;
	if ((r = alloc_levels(m, leaves)) != SMG_OK ||
	    (r = zero_leaf(leaf_size, m->zero_leaf)) != SMG_OK ||
	    (r = zero_leaf(m->last_len, m->zero_last)) != SMG_OK) {
		smg_merkle_free(m);
		return r;
	}
	/* New content is all zeros (fresh memory, a sparse image). */
	for (uint64_t i = 0; i + 1 < leaves; i++)
		memcpy(m->node[0][i], m->zero_leaf, SMG_MERKLE_LEN);
	if (leaves > 0)
		memcpy(m->node[0][leaves - 1], m->zero_last, SMG_MERKLE_LEN);
	*out = m;
	return SMG_OK;
}

int smg_merkle_new(uint64_t leaves, uint32_t leaf_size, struct smg_merkle **out)
{
	*out = NULL;
	if (leaves == 0 || leaf_size == 0 || leaves > UINT64_MAX / leaf_size)
		return SMG_ERR_INVAL;
	return smg_merkle_new_bytes(leaves * leaf_size, leaf_size, out);
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

static uint32_t leaf_len(const struct smg_merkle *m, uint64_t i)
{
	return i + 1 == m->n[0] ? m->last_len : m->leaf_size;
}

void smg_merkle_set_digest(struct smg_merkle *m, uint64_t i,
			   const uint8_t digest[SMG_MERKLE_LEN])
{
	if (m->levels == 0 || i >= m->n[0])
		return;
	leaf_put(m->node[0][i], digest);
	mark(m, 0, i);
}

void smg_merkle_set_leaf(struct smg_merkle *m, uint64_t i, const void *data, size_t len)
{
	if (m->levels == 0 || i >= m->n[0])
		return;
	/* The root binds the length and the leaf size, so a leaf is always the
	 * hash of exactly its bytes: anything else is our bug, and a leaf of
	 * all ones matches no honest root (fails closed). */
	uint8_t h[SMG_MERKLE_LEN];

	if (len != leaf_len(m, i))
		memset(h, 0xff, SMG_MERKLE_LEN);
	else
		smg_merkle_hash_leaf(data, len, h);
	leaf_put(m->node[0][i], h);
	mark(m, 0, i);
}

void smg_merkle_set_zero(struct smg_merkle *m, uint64_t i)
{
	if (m->levels == 0 || i >= m->n[0])
		return;
	smg_merkle_set_digest(m, i, i + 1 == m->n[0] ? m->zero_last : m->zero_leaf);
}

/* Parent of nodes left and left + 1 of level l. */
static void fold(struct smg_merkle *m, unsigned l, uint64_t left)
{
	uint64_t p = left / 2;
	uint8_t a[SMG_MERKLE_LEN], b[SMG_MERKLE_LEN];
	const uint8_t *x = m->node[l][left], *y = m->node[l][left + 1];

	if (l == 0) { /* leaves: shared with the writers */
		leaf_get(x, a);
		x = a;
		if (left + 1 < m->n[l]) {
			leaf_get(y, b);
			y = b;
		}
	}
	if (left + 1 < m->n[l])
		smg_merkle_hash_node(x, y, m->node[l + 1][p]);
	else /* an odd last node moves up as it is */
		memcpy(m->node[l + 1][p], x, SMG_MERKLE_LEN);
	mark(m, l + 1, p);
}

/* Concurrent set_* calls are safe (leaf_put, above); one root at a time. */
void smg_merkle_root(struct smg_merkle *m, uint8_t root[SMG_MERKLE_LEN])
{
	static const uint8_t empty[SMG_MERKLE_LEN];

	for (unsigned l = 0; l + 1 < m->levels; l++) {
		for (uint64_t w = 0; w < (m->n[l] + 63) / 64; w++) {
			uint64_t v;

			if (atomic_load_explicit(&m->dirty[l][w], memory_order_relaxed) ==
			    0)
				continue;
			v = atomic_exchange_explicit(&m->dirty[l][w], 0,
						     memory_order_acquire);
			while (v != 0) {
				unsigned b = (unsigned)__builtin_ctzll(v);

				v &= v - 1;
				if ((b & 1) == 0) /* its sibling: the same parent */
					v &= ~(1ull << (b + 1));
				fold(m, l, (w * 64 + b) & ~1ull);
			}
		}
	}
	if (m->levels > 0)
		atomic_store(&m->dirty[m->levels - 1][0], 0);
	smg_merkle_hash_root(m->levels > 0 ? m->node[m->levels - 1][0] : empty, m->bytes,
			     m->leaf_size, root);
}
