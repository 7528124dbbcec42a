/* Chunk records on the wire (decoder for untrusted bytes, encoder helpers)
 * and the per-disk digest of an image. */
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

/* ---- digest ---------------------------------------------------------------
 * A disk's root is base's Merkle root (base/merkle*.c: the construction of
 * memory too) over its chunks: leaf i = chunk i's bytes, holes as zeros. */
_Static_assert(SMG_STG_DIGEST_LEN == SMG_MERKLE_LEN, "a disk root is a Merkle root");

int image_chunk_hash(struct smg_image *img, uint64_t c, uint32_t chunk_size, uint32_t len,
		     uint8_t *buf, struct smg_merkle *m)
{
	uint64_t base = c * chunk_size, d, e;
	int r;

	if ((r = smg_image_next_data(img, base, &d, &e)) != 0)
		return r;
	if (d >= base + len) {
		smg_merkle_set_zero(m, c);
		return SMG_OK;
	}
	if ((r = smg_image_read_sparse(img, buf, len, base)) != 0)
		return r;
	smg_merkle_set_leaf(m, c, buf, len);
	return SMG_OK;
}

int smg_stg_image_digest(struct smg_image *img, uint32_t chunk_size,
			 uint8_t out[static SMG_STG_DIGEST_LEN])
{
	uint64_t size = smg_image_size(img), n, c;
	struct smg_merkle *m = NULL;
	uint8_t *buf = NULL;
	int r;

	if (chunk_size < SMG_STG_CHUNK_MIN || chunk_size > SMG_STG_CHUNK_MAX)
		return SMG_ERR_INVAL;
	n = (size + chunk_size - 1) / chunk_size;
	if ((r = smg_merkle_new_bytes(size, chunk_size, &m)) != SMG_OK)
		return r;
	if (posix_memalign((void **)&buf, SMG_STG_BLOCK, chunk_size) != 0) {
		r = SMG_ERR_NOMEM;
		buf = NULL;
		goto out;
	}
	for (c = 0; c < n; c++) {
		uint32_t len = size - c * chunk_size < chunk_size
				   ? (uint32_t)(size - c * chunk_size)
				   : chunk_size;

		if ((r = image_chunk_hash(img, c, chunk_size, len, buf, m)) != 0)
			goto out;
	}
	smg_merkle_root(m, out);
out:
	smg_merkle_free(m);
	free(buf);
	return r;
}
