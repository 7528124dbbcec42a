/* The kept Merkle tree (base/merkle_tree.c) of memory and disks: a root
 * after any sequence of updates equals the root of a tree built from
 * scratch over the same content, for every leaf count, with and without a
 * short last leaf; any changed byte changes the root; the length and the
 * leaf size are bound; leaves set from several threads while roots are
 * being taken all end up in the root. Known answers: test_merkle_kat.c. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "check.h"

static void fresh_root(const uint8_t *mem, uint64_t bytes, uint32_t ls,
		       uint8_t root[SMG_MERKLE_LEN])
{
	struct smg_merkle *m;

	CHECK(smg_merkle_new_bytes(bytes, ls, &m) == 0);
	if (m == NULL)
		return;
	for (uint64_t o = 0; o < bytes; o += ls)
		smg_merkle_set_leaf(m, o / ls, mem + o, bytes - o < ls ? bytes - o : ls);
	smg_merkle_root(m, root);
	smg_merkle_free(m);
}

static void random_updates(uint64_t bytes, uint32_t ls)
{
	uint64_t n = bytes / ls + (bytes % ls != 0);
	uint8_t *mem = calloc(1, bytes + 1), a[SMG_MERKLE_LEN], b[SMG_MERKLE_LEN];
	struct smg_merkle *m;

	CHECK(smg_merkle_new_bytes(bytes, ls, &m) == 0);
	if (m == NULL || mem == NULL)
		goto out;
	/* a fresh tree is the tree of all-zero content */
	smg_merkle_root(m, a);
	fresh_root(mem, bytes, ls, b);
	CHECK(memcmp(a, b, SMG_MERKLE_LEN) == 0);
	srand((unsigned)(bytes + ls));
	for (int round = 0; round < 5 && n > 0; round++) {
		for (int k = 0; k < 20; k++) {
			uint64_t i = (uint64_t)rand() % n, o = i * ls;
			size_t len = bytes - o < ls ? bytes - o : ls;

			if (rand() % 4 == 0) {
				memset(mem + o, 0, len);
				smg_merkle_set_zero(m, i);
			} else {
				mem[o + (size_t)rand() % len] = (uint8_t)rand();
				smg_merkle_set_leaf(m, i, mem + o, len);
			}
		}
		smg_merkle_root(m, a);
		fresh_root(mem, bytes, ls, b);
		CHECK(memcmp(a, b, SMG_MERKLE_LEN) == 0);
	}
	if (n > 0) { /* the last byte of the last leaf shows */
		mem[bytes - 1] ^= 1;
		fresh_root(mem, bytes, ls, b);
		CHECK(memcmp(a, b, SMG_MERKLE_LEN) != 0);
		/* a leaf of the wrong length is never a valid leaf */
		smg_merkle_set_leaf(m, n - 1, mem + (n - 1) * ls,
				    bytes - (n - 1) * ls + 1);
		smg_merkle_root(m, a);
		CHECK(memcmp(a, b, SMG_MERKLE_LEN) != 0);
	}
out:
	smg_merkle_free(m);
	free(mem);
}

/* Same content, other length or other leaf size: other roots. */
static void binding(void)
{
	static uint8_t z[3 * 8192];
	uint8_t a[SMG_MERKLE_LEN], b[SMG_MERKLE_LEN], c[SMG_MERKLE_LEN];

	fresh_root(z, sizeof(z), 8192, a);
	fresh_root(z, sizeof(z), 4096, b);
	fresh_root(z, sizeof(z) - 1, 8192, c);
	CHECK(memcmp(a, b, SMG_MERKLE_LEN) != 0);
	CHECK(memcmp(a, c, SMG_MERKLE_LEN) != 0);
	/* one leaf: the root is not the leaf (the tags separate them) */
	smg_merkle_hash_leaf(z, 8192, b);
	fresh_root(z, 8192, 8192, a);
	CHECK(memcmp(a, b, SMG_MERKLE_LEN) != 0);
	CHECK_EQ(smg_merkle_new_bytes(1, 0, &(struct smg_merkle *){NULL}), SMG_ERR_INVAL);
	CHECK_EQ(smg_merkle_new(0, 4096, &(struct smg_merkle *){NULL}), SMG_ERR_INVAL);
}

#define THREADS	 2
#define T_LEAVES 4099
#define T_LS	 512
struct writer {
	struct smg_merkle *m;
	uint8_t *mem;
	unsigned id;
	atomic_uint *done;
};

static void *write_leaves(void *p)
{
	struct writer *w = p;

	/* Two rounds, as pre-copy resends dirty pages: a leaf rewritten while
	 * the folder reads its first value. Every third leaf ends a zero page
	 * (set_zero, the destination's record), the last one (an odd node,
	 * copied up) too. */
	for (unsigned round = 0; round < 2; round++)
		for (uint64_t i = w->id; i < T_LEAVES; i += THREADS) {
			bool zero = round == 0 ? i % 3 != 0 : i % 3 == 0;

			memset(w->mem + i * T_LS, zero ? 0 : (int)(i % 255 + 1), T_LS);
			if (zero)
				smg_merkle_set_zero(w->m, i);
			else
				smg_merkle_set_leaf(w->m, i, w->mem + i * T_LS, T_LS);
		}
	atomic_fetch_add(w->done, 1);
	return NULL;
}

/* The destination's way: channel threads set leaves while a folder takes
 * roots; once the writers are done, one more root is the content's. */
static void concurrent(void)
{
	uint8_t *mem = calloc(T_LEAVES, T_LS), a[SMG_MERKLE_LEN], b[SMG_MERKLE_LEN];
	struct writer w[THREADS];
	pthread_t t[THREADS];
	struct smg_merkle *m;
	atomic_uint done = 0;
	unsigned k, roots = 0;

	CHECK(smg_merkle_new(T_LEAVES, T_LS, &m) == 0);
	if (m == NULL || mem == NULL)
		goto out;
	for (k = 0; k < THREADS; k++) {
		w[k] = (struct writer){m, mem, k, &done};
		CHECK(pthread_create(&t[k], NULL, write_leaves, &w[k]) == 0);
	}
	/* The hasher's loop: roots for as long as any writer writes (and at
	 * least a few, so that some meet leaves mid-write). */
	while (atomic_load(&done) < THREADS || roots < 20) {
		smg_merkle_root(m, a);
		roots++;
	}
	for (k = 0; k < THREADS; k++)
		pthread_join(t[k], NULL);
	smg_merkle_root(m, a);
	fresh_root(mem, (uint64_t)T_LEAVES * T_LS, T_LS, b);
	CHECK(memcmp(a, b, SMG_MERKLE_LEN) == 0);
out:
	smg_merkle_free(m);
	free(mem);
}

int main(void)
{
	const uint64_t leaves[] = {1, 2, 3, 7, 64, 65, 129, 1000};

	for (size_t s = 0; s < SMG_ARRAY_LEN(leaves); s++) {
		random_updates(leaves[s] * 4096, 4096);	       /* memory: whole pages */
		random_updates(leaves[s] * 4096 - 1000, 4096); /* a disk's short end */
	}
	for (uint64_t n = 0; n <= 70; n++) /* every shape of a small tree */
		random_updates(n * 512 + (n % 3) * 100, 512);
	binding();
	concurrent();
	return check_result("base_merkle");
}
