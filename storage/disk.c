/* The guest's view of one disk: every guest request enters here and is
 * routed by the migration mode (none, WAIO, DBT). The gate lets
 * stop-and-copy and mode switches run with no guest I/O in flight. */
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "storage/internal.h"

uint32_t smg_stg_chunk_for(uint64_t size)
{
	uint32_t c = SMG_STG_CHUNK_DEFAULT;

	while (c < SMG_STG_CHUNK_MAX && size / c > SMG_STG_CHUNKS_TARGET)
		c *= 2;
	return c;
}

int smg_vdisk_open(const struct smg_vdisk_opts *o, struct smg_vdisk **out)
{
	struct smg_vdisk *d;
	unsigned flags = o->direct ? SMG_IMAGE_DIRECT : 0;
	int r;

	*out = NULL;
	if (o->path == NULL)
		return SMG_ERR_INVAL;
	if (o->chunk_size != 0 &&
	    (o->chunk_size < SMG_STG_CHUNK_MIN || o->chunk_size > SMG_STG_CHUNK_MAX ||
	     o->chunk_size % SMG_STG_BLOCK != 0)) {
		smg_err("chunk size %u: must be a multiple of %u in [%u, %u]",
			o->chunk_size, SMG_STG_BLOCK, SMG_STG_CHUNK_MIN,
			SMG_STG_CHUNK_MAX);
		return SMG_ERR_INVAL;
	}
	if ((d = calloc(1, sizeof(*d))) == NULL)
		return SMG_ERR_NOMEM;
	if ((r = smg_image_open(o->path, flags, &d->orig)) != 0)
		goto fail;
	d->size = smg_image_size(d->orig);
	d->chunk = o->chunk_size ? o->chunk_size : smg_stg_chunk_for(d->size);
	d->nchunks = (d->size + d->chunk - 1) / d->chunk;
	d->hot_threshold = o->hot_threshold ? o->hot_threshold : SMG_STG_HOT_DEFAULT;
	d->no_yield = o->no_yield;
	if (d->size > SMG_STG_DISK_MAX) {
		r = SMG_ERR_TOO_LONG;
		goto fail;
	}
	if (o->surrogate_dir != NULL) {
		d->surr_dir = strdup(o->surrogate_dir);
	} else {
		const char *slash = strrchr(o->path, '/');

		d->surr_dir =
		    slash ? strndup(o->path, (size_t)(slash - o->path + 1)) : strdup(".");
	}
	if (o->surrogate_name != NULL &&
	    (d->surr_name = strdup(o->surrogate_name)) == NULL)
		d->surr_dir = NULL; /* fails below */
	if (d->surr_dir == NULL) {
		r = SMG_ERR_NOMEM;
		goto fail;
	}
	d->region = d->chunk >= REGION_BYTES ? 1 : REGION_BYTES / d->chunk;
	d->nregions = (d->nchunks + d->region - 1) / d->region;
	if ((d->reads = calloc(d->nregions ? d->nregions : 1, sizeof(*d->reads))) ==
	    NULL) {
		r = SMG_ERR_NOMEM;
		goto fail;
	}
	pthread_mutex_init(&d->gate_mu, NULL);
	pthread_cond_init(&d->gate_cv, NULL);
	for (unsigned i = 0; i < STRIPES; i++)
		pthread_mutex_init(&d->stripe[i], NULL);
	pthread_mutex_init(&d->hot_mu, NULL);
	pthread_cond_init(&d->hot_cv, NULL);
	*out = d;
	return SMG_OK;
fail:
	smg_image_close(d->orig);
	free(d->surr_dir);
	free(d->surr_name);
	free(d);
	return r;
}

void smg_vdisk_close(struct smg_vdisk *d)
{
	if (d == NULL)
		return;
	if (d->mig != DISK_MIG_NONE)
		(void)disk_mig_end(d, true);
	pthread_mutex_destroy(&d->gate_mu);
	pthread_cond_destroy(&d->gate_cv);
	for (unsigned i = 0; i < STRIPES; i++)
		pthread_mutex_destroy(&d->stripe[i]);
	pthread_mutex_destroy(&d->hot_mu);
	pthread_cond_destroy(&d->hot_cv);
	smg_image_close(d->orig);
	free(d->reads);
	free(d->surr_dir);
	free(d->surr_name);
	free(d);
}

uint64_t smg_vdisk_size(const struct smg_vdisk *d)
{
	return d->size;
}

uint32_t smg_vdisk_chunk_size(const struct smg_vdisk *d)
{
	return d->chunk;
}

/* SMG_ERR_ABORTED once the disk is failed (its export is going away). */
static int gate_enter(struct smg_vdisk *d)
{
	int r = SMG_OK;

	pthread_mutex_lock(&d->gate_mu);
	while (d->paused > 0 && !d->failed)
		pthread_cond_wait(&d->gate_cv, &d->gate_mu);
	if (d->failed)
		r = SMG_ERR_ABORTED;
	else
		d->inflight++;
	pthread_mutex_unlock(&d->gate_mu);
	return r;
}

static void gate_leave(struct smg_vdisk *d)
{
	pthread_mutex_lock(&d->gate_mu);
	if (--d->inflight == 0)
		pthread_cond_broadcast(&d->gate_cv);
	pthread_mutex_unlock(&d->gate_mu);
}

void smg_vdisk_pause(struct smg_vdisk *d)
{
	pthread_mutex_lock(&d->gate_mu);
	d->paused++;
	while (d->inflight > 0)
		pthread_cond_wait(&d->gate_cv, &d->gate_mu);
	pthread_mutex_unlock(&d->gate_mu);
}

void smg_vdisk_fail_io(struct smg_vdisk *d)
{
	pthread_mutex_lock(&d->gate_mu);
	d->failed = true;
	pthread_cond_broadcast(&d->gate_cv);
	pthread_mutex_unlock(&d->gate_mu);
}

void smg_vdisk_resume(struct smg_vdisk *d)
{
	pthread_mutex_lock(&d->gate_mu);
	if (d->paused > 0 && --d->paused == 0)
		pthread_cond_broadcast(&d->gate_cv);
	pthread_mutex_unlock(&d->gate_mu);
}

static int check_io(const struct smg_vdisk *d, uint64_t len, uint64_t off)
{
	return off > d->size || len > d->size - off ? SMG_ERR_INVAL : SMG_OK;
}

static void count_reads(struct smg_vdisk *d, uint64_t len, uint64_t off)
{
	uint64_t r;

	for (r = region_of(d, chunk_of(d, off));
	     r <= region_of(d, chunk_of(d, off + len - 1)); r++)
		atomic_fetch_add(&d->reads[r], 1);
	if (atomic_fetch_add(&d->reads_total, 1) % AGE_READS == AGE_READS - 1)
		for (r = 0; r < d->nregions; r++)
			atomic_store(&d->reads[r], atomic_load(&d->reads[r]) / 2);
}

int smg_vdisk_read(struct smg_vdisk *d, void *buf, size_t len, uint64_t off)
{
	int r;

	if ((r = check_io(d, len, off)) != 0 || len == 0)
		return r;
	count_reads(d, len, off);
	atomic_store(&d->guest_last_ns, smg_now_ns());
	if ((r = gate_enter(d)) != 0)
		return r;
	atomic_fetch_add(&d->st_reads, 1);
	if (d->mig == DISK_MIG_WAIO)
		r = waio_read(d, buf, len, off);
	else
		r = smg_image_read(d->orig, buf, len, off);
	gate_leave(d);
	return r;
}

static void mark_dirty(struct smg_vdisk *d, uint64_t len, uint64_t off)
{
	uint64_t c;

	for (c = chunk_of(d, off); c <= chunk_of(d, off + len - 1); c++)
		dirty_set(d, c);
}

int smg_vdisk_write(struct smg_vdisk *d, const void *buf, size_t len, uint64_t off)
{
	int r;

	if ((r = check_io(d, len, off)) != 0 || len == 0)
		return r;
	atomic_store(&d->guest_last_ns, smg_now_ns());
	if ((r = gate_enter(d)) != 0)
		return r;
	atomic_fetch_add(&d->st_writes, 1);
	if (d->mig == DISK_MIG_WAIO) {
		r = waio_write(d, buf, len, off);
	} else {
		r = smg_image_write(d->orig, buf, len, off);
		/* DBT: mark after the write lands, so a chunk the reader copied
		 * while the write was in flight is sent again. */
		if (r == 0 && d->mig == DISK_MIG_DBT)
			mark_dirty(d, len, off);
	}
	gate_leave(d);
	return r;
}

int smg_vdisk_trim(struct smg_vdisk *d, uint64_t off, uint64_t len)
{
	int r;

	if ((r = check_io(d, len, off)) != 0 || len == 0)
		return r;
	if ((r = gate_enter(d)) != 0)
		return r;
	if (d->mig == DISK_MIG_WAIO) {
		r = waio_trim(d, off, len);
	} else {
		r = smg_image_punch(d->orig, off, len);
		if (r == 0 && d->mig == DISK_MIG_DBT)
			mark_dirty(d, len, off);
	}
	gate_leave(d);
	return r;
}

int smg_vdisk_flush(struct smg_vdisk *d)
{
	int r;

	if ((r = gate_enter(d)) != 0)
		return r;
	r = smg_image_flush(d->mig == DISK_MIG_WAIO ? d->surr : d->orig);
	gate_leave(d);
	return r;
}

void smg_vdisk_get_stats(const struct smg_vdisk *d, struct smg_vdisk_stats *st)
{
	st->guest_reads = atomic_load(&d->st_reads);
	st->guest_writes = atomic_load(&d->st_writes);
	st->surrogate_reads = atomic_load(&d->st_surr_reads);
	st->hot_copies = atomic_load(&d->st_hot);
	st->merged_back = atomic_load(&d->st_merged);
}

int disk_mig_begin(struct smg_vdisk *d, enum disk_mig mig)
{
	int r = SMG_OK;

	smg_vdisk_pause(d);
	if (d->mig != DISK_MIG_NONE) {
		r = SMG_ERR_BUSY;
		goto out;
	}
	d->dirty = calloc((d->nchunks + 63) / 64, sizeof(*d->dirty));
	d->dirty2 = calloc((d->nchunks + 63) / 64, sizeof(*d->dirty2));
	if (d->dirty == NULL || d->dirty2 == NULL) {
		r = SMG_ERR_NOMEM;
		goto fail;
	}
	if (mig == DISK_MIG_WAIO && (r = waio_begin(d)) != 0)
		goto fail;
	d->mig = mig;
	goto out;
fail:
	free(d->dirty);
	free(d->dirty2);
	d->dirty = d->dirty2 = NULL;
out:
	smg_vdisk_resume(d);
	return r;
}

int disk_mig_end(struct smg_vdisk *d, bool merge)
{
	int r = SMG_OK;

	/* The guest stays held here until its writes are back in the original:
	 * no resumed VM may read a stale block. */
	smg_vdisk_pause(d);
	if (d->mig == DISK_MIG_WAIO && (r = waio_end(d, merge)) != 0)
		goto out; /* the surrogate stays in use; nothing is lost */
	d->mig = DISK_MIG_NONE;
	free(d->dirty);
	free(d->dirty2);
	d->dirty = d->dirty2 = NULL;
out:
	smg_vdisk_resume(d);
	return r;
}
