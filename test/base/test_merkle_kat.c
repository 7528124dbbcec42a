/* Known answers for the Merkle construction of memory and disks
 * (base/merkle.c). The hex digests were computed independently, from the
 * construction's specification, by test/base/merkle_ref.py with Python's
 * hashlib: any change to the hash, the tags, the odd-node rule, the root
 * header or the handling of short and zero leaves fails here. */
#include <sodium.h>
#include <string.h>

#include "base/base.h"
#include "check.h"

static void unhex(const char *hex, uint8_t out[SMG_MERKLE_LEN])
{
	size_t n = 0;

	CHECK(sodium_hex2bin(out, SMG_MERKLE_LEN, hex, strlen(hex), NULL, &n, NULL) ==
		  0 &&
	      n == SMG_MERKLE_LEN);
}

#define CHECK_HEX(got, hex)                                                          \
	do {                                                                         \
		uint8_t want_[SMG_MERKLE_LEN];                                       \
		char h_[2 * SMG_MERKLE_LEN + 1];                                     \
		unhex(hex, want_);                                                   \
		CHECK(memcmp(got, want_, SMG_MERKLE_LEN) == 0);                      \
		if (memcmp(got, want_, SMG_MERKLE_LEN) != 0)                         \
			fprintf(stderr, "  got  %s\n  want %s\n",                    \
				sodium_bin2hex(h_, sizeof(h_), got, SMG_MERKLE_LEN), \
				hex);                                                \
	} while (0)

/* merkle_ref.py's pat(): byte at absolute offset o = (o * 31 + seed) % 251 */
static void pat(uint8_t *p, size_t n, uint8_t seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)((i * 31u + seed) % 251u);
}

static void primitives(void)
{
	uint8_t l0[SMG_MERKLE_LEN], l1[SMG_MERKLE_LEN], n[SMG_MERKLE_LEN],
	    r[SMG_MERKLE_LEN];

	smg_merkle_hash_leaf("", 0, l0);
	CHECK_HEX(l0, "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d");
	smg_merkle_hash_leaf("abc", 3, l1);
	CHECK_HEX(l1, "609f6e36d2405585188d5cfd761f407c7cc46a7d3f314c88270469dde315fcd1");
	smg_merkle_hash_node(l0, l1, n);
	CHECK_HEX(n, "87c93eee22bfdd3e6dfed019ad8adc8a357e90bc6388d9ef0c2fe461e633204f");
	smg_merkle_hash_root(n, 0x0102030405060708ull, 0x0a0b0c0du, r);
	CHECK_HEX(r, "ac4dc84bffe9e7bde26c61f3e1c98b1976b7bc8de2562ab90cce250ccad05929");
}

/* A leaf streamed in pieces (the disk destination's way) is the same leaf. */
static void streamed(void)
{
	struct smg_merkle_leaf h = {0};
	uint8_t d[SMG_MERKLE_LEN];

	CHECK_EQ(smg_merkle_leaf_begin(&h), SMG_OK);
	smg_merkle_leaf_update(&h, "a", 1);
	smg_merkle_leaf_update(&h, "bc", 2);
	CHECK_EQ(smg_merkle_leaf_end(&h, d), SMG_OK);
	CHECK_HEX(d, "609f6e36d2405585188d5cfd761f407c7cc46a7d3f314c88270469dde315fcd1");
	/* ended: another end without begin fails closed */
	CHECK_EQ(smg_merkle_leaf_end(&h, d), SMG_ERR_CRYPTO);
	CHECK_EQ(smg_merkle_leaf_begin(&h), SMG_OK);
	CHECK_EQ(smg_merkle_leaf_end(&h, d), SMG_OK);
	CHECK_HEX(d, "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d");
	smg_merkle_leaf_free(&h);
}

/* Root of content (NULL: all zeros, the tree as created) in leaf_size
 * leaves; zero_leaf >= 0: that leaf set through set_zero. */
static void tree(const uint8_t *content, uint64_t bytes, uint32_t leaf_size,
		 long zero_leaf, const char *hex)
{
	struct smg_merkle *m = NULL;
	uint8_t root[SMG_MERKLE_LEN];

	CHECK_EQ(smg_merkle_new_bytes(bytes, leaf_size, &m), SMG_OK);
	if (m == NULL)
		return;
	for (uint64_t o = 0; content != NULL && o < bytes; o += leaf_size) {
		uint64_t i = o / leaf_size;
		size_t len = bytes - o < leaf_size ? (size_t)(bytes - o) : leaf_size;

		if ((long)i == zero_leaf)
			smg_merkle_set_zero(m, i);
		else
			smg_merkle_set_leaf(m, i, content + o, len);
	}
	smg_merkle_root(m, root);
	CHECK_HEX(root, hex);
	smg_merkle_free(m);
}

int main(void)
{
	static uint8_t buf[5 * 4096 + 1808];
	struct smg_merkle *m = NULL;
	uint8_t root[SMG_MERKLE_LEN];

	if (sodium_init() < 0)
		return 1;
	primitives();
	streamed();
	tree(NULL, 0, 65536, -1,
	     "45b175661bcb77489693382702e936469eb01f11ff4643d85d23c680f4f6411a");
	pat(buf, 100, 1);
	tree(buf, 100, 4096, -1,
	     "c8877fc63e24bb22a3eb47a5931b7af5cbb0664406df62d4b4a1ae85cd3195ea");
	pat(buf, 3 * 4096, 2);
	tree(buf, 3 * 4096, 4096, -1,
	     "3c0b09bb6ac92b42a2824e63b1f56b61f5c6a0631a5655175b1d0f5067ccdc24");
	/* the same through the memory constructor (whole pages) */
	CHECK_EQ(smg_merkle_new(3, 4096, &m), SMG_OK);
	for (uint64_t i = 0; m != NULL && i < 3; i++)
		smg_merkle_set_leaf(m, i, buf + i * 4096, 4096);
	if (m != NULL) {
		smg_merkle_root(m, root);
		CHECK_HEX(
		    root,
		    "3c0b09bb6ac92b42a2824e63b1f56b61f5c6a0631a5655175b1d0f5067ccdc24");
		smg_merkle_free(m);
	}
	pat(buf, sizeof(buf), 3);
	tree(buf, sizeof(buf), 4096, -1,
	     "5a7e24e1a9f498e421e342a0e638b5b85057b774bff435ec4d5c56ddc9be524f");
	tree(buf, sizeof(buf), 4096, 2,
	     "f610935bec3200c5e3d493df7cbb132bcfdb5d4096f669a44eadfe28719fc1f1");
	tree(NULL, 7 * 4096, 4096, -1,
	     "63420ec67f2cdd84b84bdd5ba46cc9cb7da44bb720ef5c053fe0fc98de0455a3");
	tree(NULL, 2 * 65536 + 512, 65536, -1,
	     "510080a044ea260174c7e0c4ddf8a1228f30d51303a056dba95b159cac42a1d5");
	return check_result("base_merkle_kat");
}
