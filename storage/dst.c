/* Destination side of one disk's migration: applies record frames to a new
 * sparse image of the announced size and computes the same digest as the
 * source, from what it wrote.
 *
 * A chunk whose records arrive as one in-order run from its first byte to
 * its last (what our source sends) is hashed on the fly; any other shape
 * marks the chunk stale and it is hashed from the image at digest time, so
 * the digest always describes the image, whatever the peer sent. */
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "storage/internal.h"

struct smg_stg_dst {
	struct smg_image *img;
	uint64_t size, nchunks;
	uint32_t chunk, disk_id;
	struct smg_merkle *tree; /* leaf per chunk, kept between roots */
	uint64_t frames_since_fold;
	uint8_t *stale;
	bool ip_active; /* the chunk being hashed in flight */
	uint64_t ip_c;
	uint32_t ip_pos;
	struct smg_merkle_leaf ip_h;
	struct smg_stg_frame *frame;
	struct smg_stg_stats st;
	uint64_t zero_budget; /* this frame's, see storage.h */
	uint8_t *rebuf;	      /* a chunk, for rehash_touched */
	bool later;	      /* later_c: stale, was still arriving */
	uint64_t later_c;
};

int smg_stg_dst_open(const char *path, uint64_t size, uint32_t chunk_size,
		     uint32_t disk_id, struct smg_stg_dst **out)
{
	struct smg_stg_dst *d;
	int r;

	*out = NULL;
	if (chunk_size < SMG_STG_CHUNK_MIN || chunk_size > SMG_STG_CHUNK_MAX ||
	    chunk_size % SMG_STG_BLOCK != 0 || size > SMG_STG_DISK_MAX)
		return SMG_ERR_INVAL;
	if ((d = calloc(1, sizeof(*d))) == NULL)
		return SMG_ERR_NOMEM;
	d->size = size;
	d->chunk = chunk_size;
	d->disk_id = disk_id;
	d->nchunks = (size + chunk_size - 1) / chunk_size;
	d->stale = malloc(d->nchunks ? d->nchunks : 1);
	d->frame = malloc(sizeof(*d->frame));
	if (d->stale == NULL || d->frame == NULL) {
		r = SMG_ERR_NOMEM;
		goto fail;
	}
	memset(d->stale, 1, d->nchunks ? d->nchunks : 1);
	if ((r = smg_merkle_new_bytes(size, chunk_size, &d->tree)) != 0)
		goto fail;
	/* An incoming image is new: never an existing file of this host's. */
	if ((r = smg_image_create(path, size, SMG_IMAGE_NEW, &d->img)) != 0)
		goto fail;
	*out = d;
	return SMG_OK;
fail:
	smg_merkle_free(d->tree);
	free(d->stale);
	free(d->frame);
	free(d);
	return r;
}

static uint32_t dst_chunk_len(const struct smg_stg_dst *d, uint64_t c)
{
	uint64_t base = c * d->chunk;

	return d->size - base < d->chunk ? (uint32_t)(d->size - base) : d->chunk;
}

static void ip_feed(struct smg_stg_dst *d, const struct smg_stg_rec *rec)
{
	uint8_t leaf[SMG_MERKLE_LEN];

	if (rec->kind == SMG_STG_REC_DATA)
		smg_merkle_leaf_update(&d->ip_h, rec->data, rec->len);
	else
		smg_merkle_leaf_zeros(&d->ip_h, rec->len);
	d->ip_pos += rec->len;
	if (d->ip_pos == dst_chunk_len(d, d->ip_c)) {
		/* A failed hash leaves the chunk stale: hashed from the image. */
		if (smg_merkle_leaf_end(&d->ip_h, leaf) == SMG_OK) {
			smg_merkle_set_digest(d->tree, d->ip_c, leaf);
			d->stale[d->ip_c] = 0;
		}
		d->ip_active = false;
	}
}

static void track(struct smg_stg_dst *d, const struct smg_stg_rec *rec)
{
	uint64_t c0 = rec->offset / d->chunk,
		 c1 = (rec->offset + rec->len - 1) / d->chunk, c;

	for (c = c0; c <= c1; c++)
		d->stale[c] = 1;
	/* A hole over a whole chunk: its hash is known. */
	if (rec->kind == SMG_STG_REC_HOLE && c0 == c1 && rec->offset == c0 * d->chunk &&
	    rec->len == dst_chunk_len(d, c0) && rec->len == d->chunk) {
		smg_merkle_set_zero(d->tree, c0);
		d->stale[c0] = 0;
		d->ip_active = false;
		return;
	}
	/* Part of a chunk as zeros: hashed in flight while this frame's
	 * budget lasts, else left stale for the digest. */
	if (rec->kind == SMG_STG_REC_HOLE) {
		if (rec->len > d->zero_budget) {
			d->ip_active = false;
			return;
		}
		d->zero_budget -= rec->len;
		d->st.zero_hashed += rec->len;
	}
	if (d->ip_active && c0 == d->ip_c && c1 == c0 &&
	    rec->offset == c0 * d->chunk + d->ip_pos) {
		ip_feed(d, rec);
		return;
	}
	d->ip_active = false;
	if (c1 == c0 && rec->offset == c0 * d->chunk) {
		if (smg_merkle_leaf_begin(&d->ip_h) != SMG_OK)
			return; /* stale: hashed from the image */
		d->ip_active = true;
		d->ip_c = c0;
		d->ip_pos = 0;
		ip_feed(d, rec);
	}
}

/* After a frame: the chunks it changed in part (a WAIO round sends only the
 * sectors the guest wrote) are hashed again from the image now, while the
 * guest still runs, not all at digest time in the pause. At most
 * SMG_STG_REHASH_RATIO times the frame's own bytes: a peer's frame of tiny
 * records over many chunks costs no more; past it they wait for the
 * digest. */
static int rehash_one(struct smg_stg_dst *d, uint64_t c, uint64_t *budget)
{
	uint32_t n = dst_chunk_len(d, c);
	int r;

	if (!d->stale[c])
		return SMG_OK;
	if (d->ip_active && d->ip_c == c) {
		d->later = true; /* still arriving: after the next frame */
		d->later_c = c;
		return SMG_OK;
	}
	if (n > *budget)
		return SMG_OK;
	if (d->rebuf == NULL &&
	    posix_memalign((void **)&d->rebuf, SMG_STG_BLOCK, d->chunk) != 0)
		return SMG_ERR_NOMEM;
	/* A plain read: holes read as zeros, which is what the leaf hashes
	 * (SEEK_HOLE on tmpfs walks every page up to the next hole). */
	if ((r = smg_image_read(d->img, d->rebuf, n, c * d->chunk)) != 0)
		return r;
	smg_merkle_set_leaf(d->tree, c, d->rebuf, n);
	*budget -= n;
	d->stale[c] = 0;
	d->st.rehashed += n;
	return SMG_OK;
}

static int rehash_touched(struct smg_stg_dst *d, const struct smg_stg_frame *f,
			  size_t len)
{
	uint64_t budget = (uint64_t)len * SMG_STG_REHASH_RATIO;
	int r;

	if (d->later) {
		d->later = false;
		if ((r = rehash_one(d, d->later_c, &budget)) != 0)
			return r;
	}
	for (uint16_t i = 0; i < f->count; i++)
		if ((r = rehash_one(d, f->recs[i].offset / d->chunk, &budget)) != 0)
			return r;
	return SMG_OK;
}

int smg_stg_dst_apply(struct smg_stg_dst *d, const uint8_t *payload, size_t len)
{
	struct smg_stg_frame *f = d->frame;
	uint16_t i;
	int r;

	if (d->size == 0)
		return SMG_ERR_PROTO;
	if ((r = smg_stg_frame_decode(payload, len, d->size, f)) != 0) {
		smg_peer_log(SMG_LOG_WARN, "disk %u: bad record frame: %s", d->disk_id,
			     smg_strerror(r));
		return r;
	}
	if (f->disk_id != d->disk_id) {
		smg_peer_log(SMG_LOG_WARN, "record frame for disk %u on disk %u",
			     f->disk_id, d->disk_id);
		return SMG_ERR_PROTO;
	}
	/* Records stay within one chunk (as our source sends them): a record
	 * over many chunks would cost work per chunk for 13 bytes of frame. */
	for (i = 0; i < f->count; i++)
		if (f->recs[i].offset / d->chunk !=
		    (f->recs[i].offset + f->recs[i].len - 1) / d->chunk) {
			smg_peer_log(SMG_LOG_WARN, "disk %u: a record crosses chunks",
				     d->disk_id);
			return SMG_ERR_PROTO;
		}
	d->zero_budget = SMG_STG_ZERO_HASH_FRAME_MAX;
	uint64_t lo = UINT64_MAX, hi = 0;
	for (i = 0; i < f->count; i++) {
		const struct smg_stg_rec *rec = &f->recs[i];

		if (rec->kind == SMG_STG_REC_DATA) {
			r = smg_image_write(d->img, rec->data, rec->len, rec->offset);
			d->st.data_bytes += rec->len;
			lo = rec->offset < lo ? rec->offset : lo;
			hi = rec->offset + rec->len > hi ? rec->offset + rec->len : hi;
		} else {
			r = smg_image_punch(d->img, rec->offset, rec->len);
			d->st.hole_bytes += rec->len;
		}
		if (r != 0)
			return r;
		track(d, rec);
	}
	/* The image must be on its device before READY (smg_stg_dst_digest
	 * flushes it, inside the downtime): start that now, frame by frame,
	 * so the flush waits only for the last round's writes, not the disk. */
	if (hi > lo)
		smg_image_writeback(d->img, lo, hi - lo);
	if (f->phase != SMG_STG_PHASE_BULK && (r = rehash_touched(d, f, len)) != 0)
		return r;
	d->st.frames++;
	d->st.records += f->count;
	/* Fold finished leaves in as frames arrive (every 64 frames), so the
	 * root at the end rehashes only the last few paths. */
	if (++d->frames_since_fold == 64) {
		uint8_t scratch[SMG_STG_DIGEST_LEN];

		d->frames_since_fold = 0;
		smg_merkle_root(d->tree, scratch);
	}
	d->st.wire_bytes += len;
	return SMG_OK;
}

int smg_stg_dst_digest(struct smg_stg_dst *d, uint8_t out[static SMG_STG_DIGEST_LEN])
{
	uint8_t *buf;
	uint64_t c;
	int r;

	if ((r = smg_image_flush(d->img)) != 0)
		return r;
	if (posix_memalign((void **)&buf, SMG_STG_BLOCK, d->chunk) != 0)
		return SMG_ERR_NOMEM;
	for (c = 0; c < d->nchunks; c++) {
		if (!d->stale[c])
			continue;
		r = image_chunk_hash(d->img, c, d->chunk, dst_chunk_len(d, c), buf,
				     d->tree);
		if (r != 0)
			goto out;
		d->stale[c] = 0;
	}
	d->ip_active = false;
	smg_merkle_root(d->tree, out);
out:
	free(buf);
	return r;
}

void smg_stg_dst_get_stats(const struct smg_stg_dst *d, struct smg_stg_stats *st)
{
	*st = d->st;
}

void smg_stg_dst_close(struct smg_stg_dst *d)
{
	if (d == NULL)
		return;
	smg_image_close(d->img);
	smg_merkle_free(d->tree);
	smg_merkle_leaf_free(&d->ip_h);
	free(d->stale);
	free(d->frame);
	free(d->rebuf);
	free(d);
}
