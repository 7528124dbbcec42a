/* WAIO: workload-aware I/O outsourcing (Yang et al., CloudCom 2015; the I/O
 * and data-organization agents of Kororā).
 *
 * While a disk migrates, the guest's writes go to a surrogate store (a sparse
 * file with the original's offsets) and chunks the guest reads often are
 * copied there by a background thread and served from it. The original is
 * then read by nobody but the migration's sequential scan. Coverage is kept
 * per 512-byte sector, so a read the surrogate covers only in part is merged
 * from both. On abort the surrogate's writes go back into the original. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/base.h"
#include "storage/internal.h"

#define BITMAP_MAX (SMG_STG_CHUNK_MAX / SMG_STG_SECTOR / 8)

static uint32_t nsect(const struct smg_vdisk *d, uint64_t c)
{
	return (chunk_len(d, c) + SMG_STG_SECTOR - 1) / SMG_STG_SECTOR;
}

static bool bit_get(const uint8_t *b, uint32_t i)
{
	return b[i / 8] & (1u << (i % 8));
}

static void bit_set(uint8_t *b, uint32_t i)
{
	b[i / 8] |= (uint8_t)(1u << (i % 8));
}

/* stripe of c held. */
static uint8_t *cover_get(struct smg_vdisk *d, uint64_t c)
{
	if (d->cover[c] == NULL)
		d->cover[c] = calloc(1, d->chunk / SMG_STG_SECTOR / 8);
	return d->cover[c];
}

/* stripe of c held; copies original bytes of one sector into the surrogate. */
static int fill_sector(struct smg_vdisk *d, uint64_t c, uint32_t s)
{
	uint8_t buf[SMG_STG_SECTOR];
	uint64_t off = c * d->chunk + (uint64_t)s * SMG_STG_SECTOR;
	size_t n =
	    d->size - off < SMG_STG_SECTOR ? (size_t)(d->size - off) : SMG_STG_SECTOR;
	int r;

	if ((r = smg_image_read(d->orig, buf, n, off)) != 0 ||
	    (r = smg_image_write(d->surr, buf, n, off)) != 0)
		return r;
	return SMG_OK;
}

/* stripe of c held: sectors [s0, s1] become covered; edge sectors a request
 * covers only in part are first completed from the original. */
static int cover_range(struct smg_vdisk *d, uint64_t c, uint32_t poff, uint32_t n)
{
	uint8_t *bits = cover_get(d, c);
	uint32_t s0 = poff / SMG_STG_SECTOR, s1 = (poff + n - 1) / SMG_STG_SECTOR, s;
	int r;

	if (bits == NULL)
		return SMG_ERR_NOMEM;
	if (poff % SMG_STG_SECTOR != 0 && !bit_get(bits, s0) &&
	    (r = fill_sector(d, c, s0)) != 0)
		return r;
	if ((poff + n) % SMG_STG_SECTOR != 0 && !bit_get(bits, s1) &&
	    (poff + n) < chunk_len(d, c) && (r = fill_sector(d, c, s1)) != 0)
		return r;
	for (s = s0; s <= s1; s++)
		bit_set(bits, s);
	d->written[c] = 1;
	for (s = 0; s < nsect(d, c) && bit_get(bits, s); s++)
		;
	if (s == nsect(d, c))
		__atomic_store_n(&d->full[c], 1, __ATOMIC_RELAXED);
	return SMG_OK;
}

/* stripe of c held: sectors [poff, poff + n) of chunk c are in its delta. */
static int delta_mark(struct smg_vdisk *d, uint64_t c, uint32_t poff, uint32_t n)
{
	uint32_t s;

	if (d->delta[c] == NULL &&
	    (d->delta[c] = calloc(1, d->chunk / SMG_STG_SECTOR / 8)) == NULL)
		return SMG_ERR_NOMEM;
	for (s = poff / SMG_STG_SECTOR; s <= (poff + n - 1) / SMG_STG_SECTOR; s++)
		bit_set(d->delta[c], s);
	return SMG_OK;
}

static uint32_t bits_count(const uint8_t *b, size_t bytes)
{
	uint32_t n = 0;

	for (size_t i = 0; i < bytes; i++)
		n += (uint32_t)__builtin_popcount(b[i]);
	return n;
}

uint32_t waio_take_delta(struct smg_vdisk *d, uint64_t c, uint8_t *bits)
{
	size_t bytes = d->chunk / SMG_STG_SECTOR / 8;
	uint32_t n = 0;

	pthread_mutex_lock(stripe_of(d, c));
	if (d->delta[c] == NULL) {
		memset(bits, 0, bytes);
	} else {
		memcpy(bits, d->delta[c], bytes);
		memset(d->delta[c], 0, bytes);
		n = bits_count(bits, bytes);
	}
	pthread_mutex_unlock(stripe_of(d, c));
	return n;
}

uint32_t waio_delta_sectors(struct smg_vdisk *d, uint64_t c)
{
	uint32_t n = 0;

	pthread_mutex_lock(stripe_of(d, c));
	if (d->delta[c] != NULL)
		n = bits_count(d->delta[c], d->chunk / SMG_STG_SECTOR / 8);
	pthread_mutex_unlock(stripe_of(d, c));
	return n;
}

/* hot_mu held; r is a region. */
static void hot_enqueue(struct smg_vdisk *d, uint64_t r)
{
	if (d->queued[r] || d->hotq_n == d->nregions || !d->hot_running)
		return;
	__atomic_store_n(&d->queued[r], 1, __ATOMIC_RELAXED);
	d->hotq[(d->hotq_head + d->hotq_n) % d->nregions] = r;
	d->hotq_n++;
	pthread_cond_signal(&d->hot_cv);
}

/* A guest read of chunk c: queue its region for the copier once popular.
 * The unlocked look at queued[] only saves the lock; hot_enqueue decides. */
static void maybe_hot(struct smg_vdisk *d, uint64_t c)
{
	uint64_t r = region_of(d, c);

	if (atomic_load(&d->reads[r]) < d->hot_threshold ||
	    __atomic_load_n(&d->queued[r], __ATOMIC_RELAXED) ||
	    __atomic_load_n(&d->full[c], __ATOMIC_RELAXED))
		return;
	pthread_mutex_lock(&d->hot_mu);
	hot_enqueue(d, r);
	pthread_mutex_unlock(&d->hot_mu);
}

/* Snapshot chunk c's coverage: 0 none, 1 all, 2 partial (bits copied). */
static int cover_snapshot(struct smg_vdisk *d, uint64_t c, bool count, uint8_t *bits)
{
	int kind;

	pthread_mutex_lock(stripe_of(d, c));
	if (d->full[c]) {
		kind = 1;
	} else if (d->cover[c] == NULL) {
		kind = 0;
	} else {
		memcpy(bits, d->cover[c], d->chunk / SMG_STG_SECTOR / 8);
		kind = 2;
	}
	pthread_mutex_unlock(stripe_of(d, c));
	if (count && kind != 1)
		maybe_hot(d, c);
	return kind;
}

static int read_from(struct smg_image *img, bool sparse, uint8_t *p, size_t n,
		     uint64_t off)
{
	return sparse ? smg_image_read_sparse(img, p, n, off)
		      : smg_image_read(img, p, n, off);
}

/* Read [poff, poff+n) of chunk c, each sector from where it lives now. */
static int read_runs(struct smg_vdisk *d, uint64_t c, uint32_t poff, uint32_t n,
		     uint8_t *p, int kind, const uint8_t *bits, bool sparse)
{
	uint64_t base = c * d->chunk;
	uint32_t pos = poff, end = poff + n;
	int r;

	/* The surrogate is read plainly: its holes read as zeros without any
	 * device I/O, and SEEK_HOLE (sparse reads) on tmpfs walks every page
	 * up to the next hole, a whole hot set for a 64 KiB chunk. */
	if (kind == 0)
		return read_from(d->orig, sparse, p, n, base + poff);
	if (kind == 1)
		return smg_image_read(d->surr, p, n, base + poff);
	while (pos < end) {
		bool cov = bit_get(bits, pos / SMG_STG_SECTOR);
		uint32_t next = (pos / SMG_STG_SECTOR + 1) * SMG_STG_SECTOR;

		while (next < end && bit_get(bits, next / SMG_STG_SECTOR) == cov)
			next += SMG_STG_SECTOR;
		if (next > end)
			next = end;
		r = read_from(cov ? d->surr : d->orig, sparse && !cov, p + (pos - poff),
			      next - pos, base + pos);
		if (r != 0)
			return r;
		pos = next;
	}
	return SMG_OK;
}

/* The migration's read of a whole chunk the surrogate covers in part: the
 * original in one read, then the covered runs over it from the surrogate
 * (one device read per chunk, not one per uncovered run). */
static int read_overlay(struct smg_vdisk *d, uint64_t c, uint8_t *p, const uint8_t *bits)
{
	uint32_t len = chunk_len(d, c), s = 0, ns = nsect(d, c);
	uint64_t base = c * d->chunk;
	int r;

	if ((r = smg_image_read_sparse(d->orig, p, len, base)) != 0)
		return r;
	while (s < ns) {
		uint32_t e = s, a, b;

		if (!bit_get(bits, s)) {
			s++;
			continue;
		}
		while (e < ns && bit_get(bits, e))
			e++;
		a = s * SMG_STG_SECTOR;
		b = e * SMG_STG_SECTOR < len ? e * SMG_STG_SECTOR : len;
		if ((r = smg_image_read(d->surr, p + a, b - a, base + a)) != 0)
			return r;
		s = e;
	}
	return SMG_OK;
}

static int read_piece(struct smg_vdisk *d, uint64_t c, uint32_t poff, uint32_t n,
		      uint8_t *p, bool guest, bool sparse)
{
	uint8_t bits[BITMAP_MAX];
	int kind = cover_snapshot(d, c, guest, bits), r;

	if (!guest && kind == 2 && poff == 0 && n == chunk_len(d, c))
		return read_overlay(d, c, p, bits);

	if (guest && kind != 0)
		atomic_fetch_add(&d->st_surr_reads, 1);
	/* A guest read that still needs the original: the scan yields to it. */
	if (guest && kind != 1) {
		atomic_fetch_add(&d->orig_guest, 1);
		atomic_store(&d->guest_orig_ns, smg_now_ns());
	}
	r = read_runs(d, c, poff, n, p, kind, bits, sparse);
	if (guest && kind != 1)
		atomic_fetch_sub(&d->orig_guest, 1);
	return r;
}

int waio_read(struct smg_vdisk *d, void *buf, size_t len, uint64_t off)
{
	uint8_t *p = buf;
	int r;

	while (len > 0) {
		uint64_t c = chunk_of(d, off);
		uint32_t poff = (uint32_t)(off - c * d->chunk);
		uint32_t n = d->chunk - poff < len ? d->chunk - poff : (uint32_t)len;

		if ((r = read_piece(d, c, poff, n, p, true, false)) != 0)
			return r;
		p += n;
		off += n;
		len -= n;
	}
	return SMG_OK;
}

int waio_read_chunk(struct smg_vdisk *d, uint64_t c, uint8_t *buf)
{
	return read_piece(d, c, 0, chunk_len(d, c), buf, false, true);
}

static int write_or_trim(struct smg_vdisk *d, const uint8_t *p, size_t len, uint64_t off)
{
	int r;

	while (len > 0) {
		uint64_t c = chunk_of(d, off);
		uint32_t poff = (uint32_t)(off - c * d->chunk);
		uint32_t n = d->chunk - poff < len ? d->chunk - poff : (uint32_t)len;

		/* Covered before the data lands: a hot copy racing with this
		 * write must not put the original's bytes over it. */
		pthread_mutex_lock(stripe_of(d, c));
		r = cover_range(d, c, poff, n);
		pthread_mutex_unlock(stripe_of(d, c));
		if (r == 0)
			r = p ? smg_image_write(d->surr, p, n, off)
			      : smg_image_punch(d->surr, off, n);
		if (r != 0)
			return r;
		/* Into the delta and the dirty bitmap once the data landed: a
		 * sender that read the chunk before sends these sectors again. */
		pthread_mutex_lock(stripe_of(d, c));
		r = delta_mark(d, c, poff, n);
		pthread_mutex_unlock(stripe_of(d, c));
		if (r != 0)
			return r;
		dirty_set_counted(d, c);
		if (p != NULL)
			p += n;
		off += n;
		len -= n;
	}
	return SMG_OK;
}

int waio_write(struct smg_vdisk *d, const void *buf, size_t len, uint64_t off)
{
	return write_or_trim(d, buf, len, off);
}

int waio_trim(struct smg_vdisk *d, uint64_t off, uint64_t len)
{
	return write_or_trim(d, NULL, len, off);
}

/* The data-organization agent: copies popular chunks to the surrogate. */
static int hot_copy(struct smg_vdisk *d, uint64_t c, uint8_t *buf)
{
	uint64_t base = c * d->chunk;
	uint32_t n = chunk_len(d, c), s, ns = nsect(d, c);
	uint8_t *bits;
	int r;

	if (__atomic_load_n(&d->full[c], __ATOMIC_RELAXED))
		return SMG_OK;
	/* The original does not change during WAIO: read it unlocked. */
	if ((r = smg_image_read_sparse(d->orig, buf, n, base)) != 0)
		return r;
	/* One chunk's stripe, for one chunk's writes: the guest's other
	 * chunks are not held up. */
	pthread_mutex_lock(stripe_of(d, c));
	if ((bits = cover_get(d, c)) == NULL) {
		r = SMG_ERR_NOMEM;
		goto out;
	}
	for (s = 0; s < ns;) {
		uint32_t e = s, a = s * SMG_STG_SECTOR, b;

		if (bit_get(bits, s)) {
			s++;
			continue;
		}
		while (e < ns && !bit_get(bits, e))
			e++;
		b = e * SMG_STG_SECTOR < n ? e * SMG_STG_SECTOR : n;
		if ((r = smg_image_write(d->surr, buf + a, b - a, base + a)) != 0)
			goto out;
		for (; s < e; s++)
			bit_set(bits, s);
	}
	__atomic_store_n(&d->full[c], 1, __ATOMIC_RELAXED);
out:
	pthread_mutex_unlock(stripe_of(d, c));
	return r;
}

static void copy_region(struct smg_vdisk *d, uint64_t reg, uint8_t *buf)
{
	uint64_t c0 = reg * d->region, c;
	int r;

	for (c = c0; c < c0 + d->region && c < d->nchunks; c++)
		if ((r = hot_copy(d, c, buf)) != 0)
			smg_warn("hot copy of chunk %llu: %s", (unsigned long long)c,
				 smg_strerror(r));
	atomic_fetch_add(&d->st_hot, 1);
}

static void *hot_main(void *arg)
{
	struct smg_vdisk *d = arg;
	uint8_t *buf = NULL;

	if (posix_memalign((void **)&buf, SMG_STG_BLOCK, d->chunk) != 0)
		return NULL;
	pthread_mutex_lock(&d->hot_mu);
	for (;;) {
		uint64_t reg;

		while (d->hotq_n == 0 && !d->hot_stop)
			pthread_cond_wait(&d->hot_cv, &d->hot_mu);
		if (d->hot_stop)
			break;
		reg = d->hotq[d->hotq_head];
		d->hotq_head = (d->hotq_head + 1) % d->nregions;
		d->hotq_n--;
		d->hot_busy = true;
		pthread_mutex_unlock(&d->hot_mu);
		copy_region(d, reg, buf);
		pthread_mutex_lock(&d->hot_mu);
		__atomic_store_n(&d->queued[reg], 0, __ATOMIC_RELAXED);
		d->hot_busy = false;
		pthread_cond_broadcast(&d->hot_cv);
	}
	pthread_mutex_unlock(&d->hot_mu);
	free(buf);
	return NULL;
}

static void waio_free(struct smg_vdisk *d)
{
	uint64_t c;

	if (d->cover != NULL)
		for (c = 0; c < d->nchunks; c++)
			free(d->cover[c]);
	if (d->delta != NULL)
		for (c = 0; c < d->nchunks; c++)
			free(d->delta[c]);
	free(d->cover);
	free(d->delta);
	d->delta = NULL;
	free(d->full);
	free(d->written);
	free(d->hotq);
	free(d->queued);
	d->cover = NULL;
	d->full = d->written = d->queued = NULL;
	d->hotq = NULL;
	smg_image_close(d->surr);
	d->surr = NULL;
	if (d->surr_path != NULL)
		unlink(d->surr_path);
	free(d->surr_path);
	d->surr_path = NULL;
}

static int surrogate_file(struct smg_vdisk *d)
{
	size_t plen =
	    strlen(d->surr_dir) + (d->surr_name ? strlen(d->surr_name) : 0) + 32;
	int fd;

	if ((d->surr_path = malloc(plen)) == NULL)
		return SMG_ERR_NOMEM;
	if (d->surr_name != NULL) {
		snprintf(d->surr_path, plen, "%s/%s", d->surr_dir, d->surr_name);
		fd = open(d->surr_path,
			  O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	} else {
		snprintf(d->surr_path, plen, "%s/.secmig-surrogate-XXXXXX", d->surr_dir);
		fd = mkstemp(d->surr_path);
	}
	/* Kept as a named file, not unlinked: after a crash mid-migration the
	 * guest's newest writes are still on disk for an operator. */
	if (fd < 0) {
		int r = smg_err_sys(errno);

		smg_err("surrogate %s: %s", d->surr_path, strerror(errno));
		free(d->surr_path);
		d->surr_path = NULL;
		return r;
	}
	close(fd);
	return SMG_OK;
}

int waio_begin(struct smg_vdisk *d)
{
	int r;

	if ((r = surrogate_file(d)) != 0)
		return r;
	d->cover = calloc(d->nchunks, sizeof(*d->cover));
	d->delta = calloc(d->nchunks, sizeof(*d->delta));
	d->full = calloc(d->nchunks, 1);
	d->written = calloc(d->nchunks, 1);
	d->queued = calloc(d->nregions, 1);
	d->hotq = calloc(d->nregions, sizeof(*d->hotq));
	if (d->cover == NULL || d->delta == NULL || d->full == NULL ||
	    d->written == NULL || d->queued == NULL || d->hotq == NULL) {
		r = SMG_ERR_NOMEM;
		goto fail;
	}
	if ((r = smg_image_create(d->surr_path, d->size, 0, &d->surr)) != 0)
		goto fail;
	d->hotq_head = d->hotq_n = 0;
	d->hot_stop = false;
	if (pthread_create(&d->hot_thread, NULL, hot_main, d) != 0) {
		r = SMG_ERR_SYS;
		goto fail;
	}
	d->hot_running = true;
	/* What the guest already reads most goes first (the paper's
	 * data-organization agent works from the observed popularity). */
	pthread_mutex_lock(&d->hot_mu);
	for (uint64_t g = 0; g < d->nregions; g++)
		if (atomic_load(&d->reads[g]) >= d->hot_threshold)
			hot_enqueue(d, g);
	pthread_mutex_unlock(&d->hot_mu);
	return SMG_OK;
fail:
	waio_free(d);
	return r;
}

void waio_wait_hot(struct smg_vdisk *d)
{
	pthread_mutex_lock(&d->hot_mu);
	while (d->hot_running && (d->hotq_n > 0 || d->hot_busy))
		pthread_cond_wait(&d->hot_cv, &d->hot_mu);
	pthread_mutex_unlock(&d->hot_mu);
}

/* One covered run of the surrogate back into the original, holes as holes. */
static int merge_run(struct smg_vdisk *d, uint64_t a, uint64_t b, uint8_t *buf)
{
	uint64_t pos = a, ds, de;
	int r;

	while (pos < b) {
		if ((r = smg_image_next_data(d->surr, pos, &ds, &de)) != 0)
			return r;
		ds = ds < b ? ds : b;
		de = de < b ? de : b;
		if (ds > pos && (r = smg_image_punch(d->orig, pos, ds - pos)) != 0)
			return r;
		for (pos = ds; pos < de;) {
			size_t n = de - pos < d->chunk ? (size_t)(de - pos) : d->chunk;

			if ((r = smg_image_read(d->surr, buf, n, pos)) != 0 ||
			    (r = smg_image_write(d->orig, buf, n, pos)) != 0)
				return r;
			atomic_fetch_add(&d->st_merged, n);
			pos += n;
		}
	}
	return SMG_OK;
}

static int merge_back(struct smg_vdisk *d)
{
	uint8_t *buf;
	uint64_t c;
	int r = SMG_OK;

	if (posix_memalign((void **)&buf, SMG_STG_BLOCK, d->chunk) != 0)
		return SMG_ERR_NOMEM;
	for (c = 0; c < d->nchunks && r == 0; c++) {
		uint64_t base = c * d->chunk;
		uint32_t s = 0, ns = nsect(d, c);

		if (!d->written[c])
			continue;
		while (s < ns && r == 0) {
			uint32_t e = s;

			if (!bit_get(d->cover[c], s)) {
				s++;
				continue;
			}
			while (e < ns && bit_get(d->cover[c], e))
				e++;
			r = merge_run(d, base + (uint64_t)s * SMG_STG_SECTOR,
				      base +
					  ((uint64_t)e * SMG_STG_SECTOR < chunk_len(d, c)
					       ? (uint64_t)e * SMG_STG_SECTOR
					       : chunk_len(d, c)),
				      buf);
			s = e;
		}
	}
	free(buf);
	if (r == 0)
		r = smg_image_flush(d->orig);
	return r;
}

int waio_end(struct smg_vdisk *d, bool merge)
{
	int r;

	if (d->hot_running) {
		pthread_mutex_lock(&d->hot_mu);
		d->hot_stop = true;
		pthread_cond_broadcast(&d->hot_cv);
		pthread_mutex_unlock(&d->hot_mu);
		pthread_join(d->hot_thread, NULL);
		d->hot_running = false;
	}
	if (merge && (r = merge_back(d)) != 0) {
		/* Keep the surrogate: it still holds writes the original lacks. */
		smg_err("merging the surrogate %s back failed: %s; guest I/O stays on it",
			d->surr_path, smg_strerror(r));
		return r;
	}
	waio_free(d);
	return SMG_OK;
}
