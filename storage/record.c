/* Chunk records on the wire (decoder for untrusted bytes, encoder helpers)
 * and the per-disk digest: a Merkle tree of per-chunk BLAKE2b-256 hashes. */
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "storage/internal.h"

int smg_stg_frame_decode(const uint8_t *buf, size_t len, uint64_t disk_size,
			 struct smg_stg_frame *out)
{
	struct smg_rd rd;
	uint8_t ver, phase;
	uint16_t count, i;
	uint32_t disk_id;
	int r;

	out->count = 0;
	smg_rd_init(&rd, buf, len);
	if ((r = smg_rd_u8(&rd, &ver)) != 0 || (r = smg_rd_u8(&rd, &phase)) != 0 ||
	    (r = smg_rd_u16(&rd, &count)) != 0 || (r = smg_rd_u32(&rd, &disk_id)) != 0)
		return r;
	if (ver != SMG_STG_WIRE_VERSION)
		return SMG_ERR_VERSION;
	if (phase < SMG_STG_PHASE_BULK || phase > SMG_STG_PHASE_FINAL)
		return SMG_ERR_PROTO;
	/* An empty frame or more records than the cap: a peer padding frames
	 * to make us loop, or lying about what follows. */
	if (count == 0 || count > SMG_STG_RECS_MAX)
		return SMG_ERR_PROTO;
	for (i = 0; i < count; i++) {
		struct smg_stg_rec *rec = &out->recs[i];

		rec->data = NULL;
		if ((r = smg_rd_u8(&rd, &rec->kind)) != 0 ||
		    (r = smg_rd_u64(&rd, &rec->offset)) != 0 ||
		    (r = smg_rd_u32(&rd, &rec->len)) != 0)
			return r;
		if (rec->kind != SMG_STG_REC_DATA && rec->kind != SMG_STG_REC_HOLE)
			return SMG_ERR_UNKNOWN_TYPE;
		/* Zero-length or wrapping records, or records past the end of
		 * the disk: a write outside the image the plan announced. */
		if (rec->len == 0 || rec->offset > UINT64_MAX - rec->len)
			return SMG_ERR_PROTO;
		if (disk_size != 0 && rec->offset + rec->len > disk_size)
			return SMG_ERR_PROTO;
		if (rec->kind == SMG_STG_REC_DATA &&
		    (r = smg_rd_ptr(&rd, rec->len, &rec->data)) != 0)
			return r;
	}
	if ((r = smg_rd_end(&rd)) != 0)
		return r;
	out->phase = phase;
	out->disk_id = disk_id;
	out->count = count;
	return SMG_OK;
}

void rec_frame_begin(struct rec_frame *f, uint8_t *buf, size_t cap, uint8_t phase,
		     uint32_t disk_id)
{
	f->buf = buf;
	f->cap = cap;
	f->count = 0;
	f->off = SMG_STG_FRAME_HDR;
	buf[0] = SMG_STG_WIRE_VERSION;
	buf[1] = phase;
	smg_store_be32(buf + 4, disk_id);
}

size_t rec_frame_room(const struct rec_frame *f)
{
	if (f->count == SMG_STG_RECS_MAX || f->cap < f->off + SMG_STG_REC_HDR)
		return 0;
	return f->cap - f->off - SMG_STG_REC_HDR;
}

void rec_frame_add(struct rec_frame *f, uint8_t kind, uint64_t off, uint32_t len,
		   const uint8_t *data)
{
	uint8_t *p = f->buf + f->off;

	p[0] = kind;
	smg_store_be64(p + 1, off);
	smg_store_be32(p + 9, len);
	f->off += SMG_STG_REC_HDR;
	if (kind == SMG_STG_REC_DATA) {
		memcpy(f->buf + f->off, data, len);
		f->off += len;
	}
	f->count++;
}

size_t rec_frame_end(struct rec_frame *f)
{
	if (f->count == 0)
		return 0;
	smg_store_be16(f->buf + 2, f->count);
	return f->off;
}

/* ---- digest -------------------------------------------------------------- */
void chunk_hash_init(crypto_generichash_state *st)
{
	static const uint8_t leaf_tag = 0x00;

	crypto_generichash_init(st, NULL, 0, SMG_STG_DIGEST_LEN);
	crypto_generichash_update(st, &leaf_tag, 1);
}

void chunk_hash_zeros(crypto_generichash_state *st, uint64_t n)
{
	static const uint8_t zeros[64 * 1024];

	while (n > 0) {
		size_t k = n > sizeof(zeros) ? sizeof(zeros) : (size_t)n;

		crypto_generichash_update(st, zeros, k);
		n -= k;
	}
}

void chunk_hash(const uint8_t *data, size_t len, uint8_t out[SMG_STG_DIGEST_LEN])
{
	crypto_generichash_state st;

	chunk_hash_init(&st);
	crypto_generichash_update(&st, data, len);
	crypto_generichash_final(&st, out, SMG_STG_DIGEST_LEN);
}

void chunk_hash_hole(size_t len, uint8_t out[SMG_STG_DIGEST_LEN])
{
	crypto_generichash_state st;

	chunk_hash_init(&st);
	chunk_hash_zeros(&st, len);
	crypto_generichash_final(&st, out, SMG_STG_DIGEST_LEN);
}

static void node_hash(const uint8_t *l, const uint8_t *r, uint8_t *out)
{
	static const uint8_t node_tag = 0x01;
	crypto_generichash_state st;

	crypto_generichash_init(&st, NULL, 0, SMG_STG_DIGEST_LEN);
	crypto_generichash_update(&st, &node_tag, 1);
	crypto_generichash_update(&st, l, SMG_STG_DIGEST_LEN);
	crypto_generichash_update(&st, r, SMG_STG_DIGEST_LEN);
	crypto_generichash_final(&st, out, SMG_STG_DIGEST_LEN);
}

void smg_stg_merkle_root(const uint8_t (*leaves)[SMG_STG_DIGEST_LEN], size_t n,
			 uint64_t size, uint32_t chunk_size,
			 uint8_t out[static SMG_STG_DIGEST_LEN])
{
	static const uint8_t root_tag = 0x02;
	uint8_t top[SMG_STG_DIGEST_LEN] = {0}, hdr[12];
	uint8_t(*lv)[SMG_STG_DIGEST_LEN] = NULL;
	crypto_generichash_state st;
	size_t m = n, i;

	if (n == 1)
		memcpy(top, leaves[0], sizeof(top));
	if (n > 1 && (lv = malloc(n * sizeof(*lv))) != NULL) {
		memcpy(lv, leaves, n * sizeof(*lv));
		while (m > 1) {
			for (i = 0; i < m / 2; i++)
				node_hash(lv[2 * i], lv[2 * i + 1], lv[i]);
			if (m % 2)
				memcpy(lv[m / 2], lv[m - 1], sizeof(*lv));
			m = (m + 1) / 2;
		}
		memcpy(top, lv[0], sizeof(top));
		free(lv);
	} else if (n > 1) {
		/* No memory for the tree: an all-zero root never matches. */
		memset(out, 0, SMG_STG_DIGEST_LEN);
		return;
	}
	smg_store_be64(hdr, size);
	smg_store_be32(hdr + 8, chunk_size);
	crypto_generichash_init(&st, NULL, 0, SMG_STG_DIGEST_LEN);
	crypto_generichash_update(&st, &root_tag, 1);
	crypto_generichash_update(&st, hdr, sizeof(hdr));
	crypto_generichash_update(&st, top, sizeof(top));
	crypto_generichash_final(&st, out, SMG_STG_DIGEST_LEN);
}

int image_chunk_hash(struct smg_image *img, uint64_t base, uint32_t len, uint8_t *buf,
		     uint8_t out[SMG_STG_DIGEST_LEN])
{
	uint64_t d, e;
	int r;

	if ((r = smg_image_next_data(img, base, &d, &e)) != 0)
		return r;
	if (d >= base + len) {
		chunk_hash_hole(len, out);
		return SMG_OK;
	}
	if ((r = smg_image_read_sparse(img, buf, len, base)) != 0)
		return r;
	chunk_hash(buf, len, out);
	return SMG_OK;
}

int smg_stg_image_digest(struct smg_image *img, uint32_t chunk_size,
			 uint8_t out[static SMG_STG_DIGEST_LEN])
{
	uint64_t size = smg_image_size(img), n, c;
	uint8_t(*leaves)[SMG_STG_DIGEST_LEN] = NULL;
	uint8_t *buf = NULL;
	int r = SMG_OK;

	if (chunk_size < SMG_STG_CHUNK_MIN || chunk_size > SMG_STG_CHUNK_MAX)
		return SMG_ERR_INVAL;
	n = (size + chunk_size - 1) / chunk_size;
	if ((leaves = calloc(n ? n : 1, sizeof(*leaves))) == NULL ||
	    posix_memalign((void **)&buf, SMG_STG_BLOCK, chunk_size) != 0) {
		r = SMG_ERR_NOMEM;
		buf = NULL;
		goto out;
	}
	for (c = 0; c < n; c++) {
		uint64_t base = c * chunk_size;
		uint32_t len =
		    size - base < chunk_size ? (uint32_t)(size - base) : chunk_size;

		if ((r = image_chunk_hash(img, base, len, buf, leaves[c])) != 0)
			goto out;
	}
	smg_stg_merkle_root((const uint8_t(*)[SMG_STG_DIGEST_LEN])leaves, n, size,
			    chunk_size, out);
out:
	free(leaves);
	free(buf);
	return r;
}

/* ---- the kept tree ------------------------------------------------------------ */
static void root_of_top(const uint8_t *top, uint64_t size, uint32_t chunk_size,
			uint8_t out[SMG_STG_DIGEST_LEN])
{
	static const uint8_t root_tag = 0x02;
	crypto_generichash_state st;
	uint8_t hdr[12];

	smg_store_be64(hdr, size);
	smg_store_be32(hdr + 8, chunk_size);
	crypto_generichash_init(&st, NULL, 0, SMG_STG_DIGEST_LEN);
	crypto_generichash_update(&st, &root_tag, 1);
	crypto_generichash_update(&st, hdr, sizeof(hdr));
	crypto_generichash_update(&st, top, SMG_STG_DIGEST_LEN);
	crypto_generichash_final(&st, out, SMG_STG_DIGEST_LEN);
}

int stg_tree_init(struct stg_tree *t, size_t n)
{
	size_t m = n;

	memset(t, 0, sizeof(*t));
	t->n = n;
	while (m > 1 && t->levels < TREE_LEVELS_MAX) {
		unsigned l = t->levels++;

		m = (m + 1) / 2;
		t->cnt[l] = m;
		t->node[l] = calloc(m, SMG_STG_DIGEST_LEN);
		t->dirty[l] = calloc((m + 63) / 64, sizeof(uint64_t));
		if (t->node[l] == NULL || t->dirty[l] == NULL) {
			stg_tree_free(t);
			return SMG_ERR_NOMEM;
		}
		memset(t->dirty[l], 0xff, (m + 63) / 64 * sizeof(uint64_t));
	}
	return SMG_OK;
}

void stg_tree_free(struct stg_tree *t)
{
	for (unsigned l = 0; l < TREE_LEVELS_MAX; l++) {
		free(t->node[l]);
		free(t->dirty[l]);
	}
	memset(t, 0, sizeof(*t));
}

void stg_tree_mark(struct stg_tree *t, size_t leaf)
{
	if (t->levels > 0 && leaf < t->n)
		t->dirty[0][leaf / 2 / 64] |= 1ull << (leaf / 2 % 64);
}

void stg_tree_root(struct stg_tree *t, const uint8_t (*leaves)[SMG_STG_DIGEST_LEN],
		   uint64_t size, uint32_t chunk_size, uint8_t out[SMG_STG_DIGEST_LEN])
{
	uint8_t top[SMG_STG_DIGEST_LEN] = {0};

	for (unsigned l = 0; l < t->levels; l++) {
		const uint8_t(*below)[SMG_STG_DIGEST_LEN] =
		    l == 0 ? leaves
			   : (const uint8_t(*)[SMG_STG_DIGEST_LEN])t->node[l - 1];
		size_t nb = l == 0 ? t->n : t->cnt[l - 1];

		for (size_t w = 0; w < (t->cnt[l] + 63) / 64; w++) {
			uint64_t v = t->dirty[l][w];

			t->dirty[l][w] = 0;
			while (v != 0) {
				size_t i = w * 64 + (size_t)__builtin_ctzll(v);

				v &= v - 1;
				if (i >= t->cnt[l])
					continue;
				if (2 * i + 1 < nb)
					node_hash(below[2 * i], below[2 * i + 1],
						  t->node[l][i]);
				else /* an odd node is promoted */
					memcpy(t->node[l][i], below[2 * i],
					       SMG_STG_DIGEST_LEN);
				if (l + 1 < t->levels)
					t->dirty[l + 1][i / 2 / 64] |= 1ull
								       << (i / 2 % 64);
			}
		}
	}
	if (t->levels > 0)
		memcpy(top, t->node[t->levels - 1][0], sizeof(top));
	else if (t->n == 1)
		memcpy(top, leaves[0], sizeof(top));
	root_of_top(top, size, chunk_size, out);
}
