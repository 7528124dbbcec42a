/* Guest RAM as a shared file (QEMU's memory-backend-file/memfd, share=on)
 * and exact dirty tracking without KVM's log, which lives inside QEMU, and
 * without soft-dirty bits, which these kernels lack.
 *
 * For every page we keep the tag of the copy that was last *sent*
 * (computed on the bytes copied into the outgoing frame, not on guest
 * memory, so a write racing with the copy makes memory differ from the
 * tag and the page is found again). A scan tags every page and reports each
 * whose tag differs from its sent one. After the guest is stopped a final
 * scan therefore finds every page the destination does not hold exactly:
 * no write can be missed, whatever its timing (the ABA case too, as the
 * tag is of what was sent, not of an earlier scan).
 *
 * The tag is UMAC-128 (RFC 4418; nettle) under a 16-byte key drawn per
 * migration, with a fixed nonce (the tag is never shown to anyone, so the
 * pad only has to be the same for a page's two versions). UMAC's NH layer
 * is a universal hash: for two different pages the chance of equal tags
 * under a random key is about 2^-120, and the guest, which never sees a
 * tag or the key, cannot steer its writes into a collision. Measured on
 * the 2-core development VM under load, 256 MiB of random pages: keyed
 * BLAKE2b 1.3-3.3 s, SipHash-2-4 0.4-0.6 s, Poly1305 0.2-0.5 s, AES-GMAC
 * 0.13-0.66 s, UMAC-128 0.16-0.38 s, UMAC-64 0.11-0.14 s, merely reading
 * the memory 0.06-0.08 s. UMAC keeps state per message, so each hashing
 * thread takes a context from a small lock-free pool.
 *
 * Holes (pages the guest never touched) are found with SEEK_DATA and never
 * mapped in: touching a hole of a tmpfs file through a shared mapping
 * would allocate it. */
#include <errno.h>
#include <fcntl.h>
#include <nettle/umac.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/base.h"
#include "engine/backend/qemu_internal.h"

#define PS     SMG_QEMU_PAGE_SIZE
#define BIT(b) (UINT64_C(1) << ((b) % 64))

struct smg_qemu_tagger {
	atomic_bool busy[SMG_QEMU_TAG_CTXS];
	struct umac128_ctx ctx[SMG_QEMU_TAG_CTXS];
};

static const uint8_t tag_nonce[8]; /* fixed: see above */

static struct smg_qemu_tagger *tagger_new(void)
{
	struct smg_qemu_tagger *t = sodium_malloc(sizeof(*t));
	uint8_t *key = sodium_malloc(UMAC_KEY_SIZE);

	if (t == NULL || key == NULL) {
		sodium_free(t);
		sodium_free(key);
		return NULL;
	}
	randombytes_buf(key, UMAC_KEY_SIZE);
	umac128_set_key(&t->ctx[0], key);
	sodium_free(key); /* zeroes it; the contexts hold what derives from it */
	for (unsigned i = 0; i < SMG_QEMU_TAG_CTXS; i++) {
		if (i > 0)
			memcpy(&t->ctx[i], &t->ctx[0], sizeof(t->ctx[0]));
		atomic_init(&t->busy[i], false);
	}
	return t;
}

/* One page's tag, with whichever context is free (channels call this in
 * parallel; there are more contexts than threads). */
static void tag_page(struct smg_qemu_tagger *t, const uint8_t *page,
		     uint8_t out[SMG_QEMU_TAG_LEN])
{
	unsigned i = 0;

	for (;; i = (i + 1) % SMG_QEMU_TAG_CTXS) {
		bool f = false;
		if (atomic_compare_exchange_weak(&t->busy[i], &f, true))
			break;
	}
	umac128_set_nonce(&t->ctx[i], sizeof(tag_nonce), tag_nonce);
	umac128_update(&t->ctx[i], PS, page);
	umac128_digest(&t->ctx[i], SMG_QEMU_TAG_LEN, out);
	atomic_store(&t->busy[i], false);
}

static bool test_bit(const uint64_t *bm, uint64_t i)
{
	return (__atomic_load_n(&bm[i / 64], __ATOMIC_RELAXED) & BIT(i)) != 0;
}

/* Bits of different pages share words and channels run in parallel. */
static void set_bit(uint64_t *bm, uint64_t i)
{
	__atomic_fetch_or(&bm[i / 64], BIT(i), __ATOMIC_RELAXED);
}

static void clear_bit(uint64_t *bm, uint64_t i)
{
	__atomic_fetch_and(&bm[i / 64], ~BIT(i), __ATOMIC_RELAXED);
}

static uint64_t *bitmap_new(uint64_t bits)
{
	return calloc((size_t)((bits + 63) / 64), sizeof(uint64_t));
}

int smg_qemu_ram_open(const char *path, uint64_t size, bool writable, bool create,
		      struct smg_qemu_ram *r)
{
	int flags = (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC | O_NOFOLLOW;
	struct stat st;
	int e;

	memset(r, 0, sizeof(*r));
	r->fd = -1;
	if (size == 0 || size % PS != 0)
		return SMG_ERR_INVAL;
	if (create)
		flags |= O_CREAT | O_EXCL;
	if ((r->fd = open(path, flags, 0600)) < 0) {
		e = errno;
		smg_err("qemu: RAM file %s: %s", path, strerror(e));
		return e == EEXIST ? SMG_ERR_EXISTS : smg_err_sys(e);
	}
	if (create && ftruncate(r->fd, (off_t)size) != 0)
		goto sys;
	if (fstat(r->fd, &st) != 0)
		goto sys;
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size != size) {
		smg_err("qemu: RAM file %s is %lld bytes, the VM has %llu", path,
			(long long)st.st_size, (unsigned long long)size);
		smg_qemu_ram_close(r);
		return SMG_ERR_BACKEND;
	}
	r->map = mmap(NULL, size, PROT_READ | (writable ? PROT_WRITE : 0), MAP_SHARED,
		      r->fd, 0);
	if (r->map == MAP_FAILED) {
		r->map = NULL;
		goto sys;
	}
	r->size = size;
	r->pages = size / PS;
	r->writable = writable;
	if (writable && (r->written = bitmap_new(r->pages)) == NULL) {
		smg_qemu_ram_close(r);
		return SMG_ERR_NOMEM;
	}
	return SMG_OK;
sys:
	e = smg_err_sys(errno);
	smg_err("qemu: RAM file %s: %s", path, strerror(errno));
	smg_qemu_ram_close(r);
	return e;
}

void smg_qemu_ram_close(struct smg_qemu_ram *r)
{
	smg_qemu_ram_track_stop(r);
	if (r->map != NULL)
		munmap(r->map, r->size);
	if (r->fd >= 0)
		close(r->fd);
	free(r->written);
	memset(r, 0, sizeof(*r));
	r->fd = -1;
}

/* Which pages are backed right now (SEEK_DATA/SEEK_HOLE); a file system
 * without the support reports everything as data, which is only slower. */
static void refresh_data(struct smg_qemu_ram *r)
{
	off_t pos = 0, end = (off_t)r->size;

	memset(r->data, 0, (size_t)((r->pages + 63) / 64) * 8);
	while (pos < end) {
		off_t d = lseek(r->fd, pos, SEEK_DATA), h;

		if (d < 0)
			break; /* ENXIO: only holes after pos */
		if ((h = lseek(r->fd, d, SEEK_HOLE)) < 0)
			h = end;
		for (uint64_t p = (uint64_t)d / PS; p < ((uint64_t)h + PS - 1) / PS; p++)
			set_bit(r->data, p);
		pos = h;
	}
}

int smg_qemu_ram_populated(struct smg_qemu_ram *r, uint64_t *bitmap, uint64_t *count)
{
	uint64_t *data = bitmap_new(r->pages), *keep = r->data, n = 0;

	if (data == NULL)
		return SMG_ERR_NOMEM;
	r->data = data;
	refresh_data(r);
	r->data = keep;
	for (uint64_t w = 0; w < (r->pages + 63) / 64; w++) {
		bitmap[w] = data[w];
		n += (uint64_t)__builtin_popcountll(data[w]);
	}
	free(data);
	*count = n;
	return SMG_OK;
}

int smg_qemu_ram_track_start(struct smg_qemu_ram *r)
{
	uint8_t *zero;

	smg_qemu_ram_track_stop(r);
	if ((r->tg = tagger_new()) == NULL ||
	    (r->sent = calloc(r->pages, SMG_QEMU_TAG_LEN)) == NULL ||
	    (r->have = bitmap_new(r->pages)) == NULL ||
	    (r->data = bitmap_new(r->pages)) == NULL || (zero = calloc(1, PS)) == NULL) {
		smg_qemu_ram_track_stop(r);
		return SMG_ERR_NOMEM;
	}
	tag_page(r->tg, zero, r->zero_tag);
	free(zero);
	refresh_data(r);
	/* The destination starts with every page zero (a new file, all
	 * holes): a hole here is already there, as if sent as zeros. Once the
	 * guest backs it, its tag differs and a scan finds it. */
	for (uint64_t p = 0; p < r->pages; p++)
		if (!test_bit(r->data, p)) {
			memcpy(r->sent[p], r->zero_tag, SMG_QEMU_TAG_LEN);
			set_bit(r->have, p);
		}
	r->scans = r->scan_ns = r->scan_bytes = 0;
	return SMG_OK;
}

void smg_qemu_ram_track_stop(struct smg_qemu_ram *r)
{
	sodium_free(r->tg); /* zeroes the derived keys */
	r->tg = NULL;
	free(r->sent);
	free(r->have);
	free(r->data);
	r->sent = NULL;
	r->have = r->data = NULL;
}

/* One page into out: from the mapping if it was backed at the last look,
 * else with pread, which reads a hole as zeros without allocating it. */
static int copy_page(struct smg_qemu_ram *r, uint64_t pfn, uint8_t *out)
{
	size_t got = 0;

	if (r->data == NULL || test_bit(r->data, pfn)) {
		memcpy(out, r->map + pfn * PS, PS);
		return SMG_OK;
	}
	while (got < PS) {
		ssize_t n = pread(r->fd, out + got, PS - got, (off_t)(pfn * PS + got));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return smg_err_sys(n < 0 ? errno : EIO);
		got += (size_t)n;
	}
	return SMG_OK;
}

int smg_qemu_ram_read(struct smg_qemu_ram *r, const uint64_t *pfns, size_t n,
		      uint8_t *out)
{
	int rc;

	for (size_t i = 0; i < n; i++) {
		uint8_t *o = out + i * PS;

		if (pfns[i] >= r->pages)
			return SMG_ERR_INVAL;
		if ((rc = copy_page(r, pfns[i], o)) != SMG_OK)
			return rc;
		if (r->tg == NULL)
			continue;
		/* The tag of what leaves, not of what memory holds by now. */
		tag_page(r->tg, o, r->sent[pfns[i]]);
		set_bit(r->have, pfns[i]);
	}
	return SMG_OK;
}

static bool differs(struct smg_qemu_ram *r, uint64_t p,
		    const uint8_t tag[SMG_QEMU_TAG_LEN])
{
	return !test_bit(r->have, p) ||
	       sodium_memcmp(r->sent[p], tag, SMG_QEMU_TAG_LEN) != 0;
}

struct scan_part {
	struct smg_qemu_ram *r;
	uint64_t *bitmap;
	uint64_t first, end; /* pages; multiples of 64 but for the last end */
	uint64_t dirty, hashed;
	pthread_t tid;
};

static void *scan_range(void *arg)
{
	struct scan_part *s = arg;
	struct smg_qemu_ram *r = s->r;
	uint8_t tag[SMG_QEMU_TAG_LEN];

	for (uint64_t p = s->first; p < s->end; p++) {
		const uint8_t *t = r->zero_tag;

		if (test_bit(r->data, p)) {
			tag_page(r->tg, r->map + p * PS, tag);
			t = tag;
			s->hashed++;
		}
		if (!differs(r, p, t))
			continue;
		/* each part owns whole bitmap words: no two threads share one */
		if (!(s->bitmap[p / 64] & BIT(p)))
			s->dirty++;
		s->bitmap[p / 64] |= BIT(p);
		/* until it is sent again, its old tag means nothing */
		clear_bit(r->have, p);
	}
	return NULL;
}

int smg_qemu_ram_scan(struct smg_qemu_ram *r, uint64_t *bitmap, uint64_t *dirty,
		      unsigned threads)
{
	struct scan_part part[SMG_QEMU_SCAN_THREADS_MAX];
	uint64_t t0 = smg_now_ns(), words = (r->pages + 63) / 64, per;
	unsigned started = 0;

	*dirty = 0;
	if (r->tg == NULL)
		return SMG_ERR_STATE;
	if (threads == 0)
		threads = 1;
	if (threads > SMG_QEMU_SCAN_THREADS_MAX)
		threads = SMG_QEMU_SCAN_THREADS_MAX;
	refresh_data(r);
	per = (words + threads - 1) / threads * 64;
	for (unsigned i = 0; i < threads; i++) {
		uint64_t first = per * i, end = per * (i + 1);
		part[i] = (struct scan_part){.r = r,
					     .bitmap = bitmap,
					     .first = first < r->pages ? first : r->pages,
					     .end = end < r->pages ? end : r->pages};
	}
	/* part 0 runs here; a thread that cannot start has its part run here too */
	for (unsigned i = 1; i < threads; i++)
		if (pthread_create(&part[i].tid, NULL, scan_range, &part[i]) == 0)
			started |= 1u << i;
	scan_range(&part[0]);
	for (unsigned i = 1; i < threads; i++) {
		if (started & (1u << i))
			pthread_join(part[i].tid, NULL);
		else
			scan_range(&part[i]);
		part[0].dirty += part[i].dirty;
		part[0].hashed += part[i].hashed;
	}
	*dirty = part[0].dirty;
	r->scans++;
	r->scan_ns += smg_now_ns() - t0;
	r->scan_bytes += part[0].hashed * PS;
	return SMG_OK;
}

int smg_qemu_ram_write(struct smg_qemu_ram *r, const uint64_t *pfns, size_t n,
		       const uint8_t *data, bool zero_only)
{
	for (size_t i = 0; i < n; i++) {
		uint64_t p = pfns[i];

		if (p >= r->pages || !r->writable)
			return SMG_ERR_INVAL;
		if (!zero_only) {
			memcpy(r->map + p * PS, data + i * PS, PS);
			set_bit(r->written, p);
			continue;
		}
		/* A new file reads as zeros: only a page we filled before needs
		 * clearing, and a punched hole gives its memory back. */
		if (!test_bit(r->written, p))
			continue;
		if (fallocate(r->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			      (off_t)(p * PS), PS) != 0)
			memset(r->map + p * PS, 0, PS);
		clear_bit(r->written, p);
	}
	return SMG_OK;
}
