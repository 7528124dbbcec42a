/* xen backend: reading guest frames. The engine reads one frame at a time
 * from several channel threads; a foreign mapping per frame would cost an
 * mmap, a hypercall batch and a TLB flush each, so frames are mapped in
 * chunks of SMG_XEN_CHUNK on first touch. The mapping is live: it shows the
 * guest's current bytes, and log-dirty says which ones changed since they
 * were read. It also holds the frames it mapped: a frame the guest gives
 * back (and maybe repopulates elsewhere) would still read the old page, so
 * every sweep of the populated frames (xen_pop.c) drops the mappings, and
 * a frame not populated at the last sweep reads as zeros. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "base/base.h"
#include "engine/backend/xen_internal.h"

static bool pop_bit(const struct xen_backend *x, uint64_t pfn)
{
	return x->pop != NULL && (x->pop[pfn / 64] >> (pfn % 64)) & 1;
}

static bool chunk_has_ram(const struct xen_backend *x, uint64_t first, uint64_t end)
{
	for (uint64_t p = first; p < end; p++)
		if (pop_bit(x, p))
			return true;
	return false;
}
static int map_chunk(struct xen_backend *x, size_t ci)
{
	struct xen_chunk *c = &x->chunks[ci];
	uint64_t first = (uint64_t)ci * SMG_XEN_CHUNK;
	unsigned n = (unsigned)(x->p2m_size - first < SMG_XEN_CHUNK ? x->p2m_size - first
								    : SMG_XEN_CHUNK);
	xen_pfn_t arr[SMG_XEN_CHUNK];
	int errs[SMG_XEN_CHUNK];

	pthread_mutex_lock(&x->chunk_lock);
	if (c->done)
		goto out;
	memset(c->bad, 0xff, sizeof(c->bad));
	if (chunk_has_ram(x, first, first + n)) {
		for (unsigned i = 0; i < n; i++)
			arr[i] = first + i;
		c->map = xenforeignmemory_map(x->fmem, x->domid, PROT_READ, n, arr, errs);
		if (c->map != NULL)
			for (unsigned i = 0; i < n; i++)
				if (errs[i] == 0)
					c->bad[i / 64] &= ~(UINT64_C(1) << (i % 64));
	}
	/* publish after the fields: readers check done without the lock */
	__atomic_store_n(&c->done, true, __ATOMIC_RELEASE);
out:
	pthread_mutex_unlock(&x->chunk_lock);
	return 0;
}

static int alloc_chunks(struct xen_backend *x)
{
	pthread_mutex_lock(&x->chunk_lock);
	if (x->chunks == NULL) {
		size_t nc = (size_t)((x->p2m_size + SMG_XEN_CHUNK - 1) / SMG_XEN_CHUNK);
		struct xen_chunk *cs = calloc(nc, sizeof(*cs));

		if (cs != NULL) {
			x->n_chunks = nc;
			__atomic_store_n(&x->chunks, cs, __ATOMIC_RELEASE);
		}
	}
	pthread_mutex_unlock(&x->chunk_lock);
	return x->chunks == NULL ? SMG_ERR_NOMEM : 0;
}

int smg_xen_src_read_pages(struct smg_backend *self, const uint64_t *pfns, size_t n,
			   uint8_t *out)
{
	struct xen_backend *x = XEN_SELF(self);
	int r = 0;

	if (!x->have_domain || x->domid == 0 || (x->is_dst && !x->stream_done))
		return SMG_ERR_STATE;
	pthread_rwlock_rdlock(&x->map_lock);
	if (__atomic_load_n(&x->chunks, __ATOMIC_ACQUIRE) == NULL &&
	    (r = alloc_chunks(x)) != 0)
		goto out;
	for (size_t i = 0; i < n; i++) {
		uint64_t pfn = pfns[i];
		size_t ci = (size_t)(pfn / SMG_XEN_CHUNK);
		unsigned off = (unsigned)(pfn % SMG_XEN_CHUNK);
		struct xen_chunk *c;
		uint8_t *dst = out + i * SMG_XS_PAGE_SIZE;

		if (pfn >= x->p2m_size) {
			r = SMG_ERR_INVAL;
			goto out;
		}
		/* not populated at the last sweep: not the guest's memory */
		if (!pop_bit(x, pfn)) {
			memset(dst, 0, SMG_XS_PAGE_SIZE);
			continue;
		}
		c = &x->chunks[ci];
		if (!__atomic_load_n(&c->done, __ATOMIC_ACQUIRE))
			map_chunk(x, ci);
		if (c->map == NULL || (c->bad[off / 64] & (UINT64_C(1) << (off % 64)))) {
			/* populated at the sweep, gone when mapped: zeros now,
			 * and read again with the guest stopped */
			memset(dst, 0, SMG_XS_PAGE_SIZE);
			if (x->appeared != NULL)
				__atomic_fetch_or(&x->appeared[pfn / 64],
						  UINT64_C(1) << (pfn % 64),
						  __ATOMIC_RELAXED);
		} else {
			memcpy(dst, c->map + (size_t)off * SMG_XS_PAGE_SIZE,
			       SMG_XS_PAGE_SIZE);
		}
	}
out:
	pthread_rwlock_unlock(&x->map_lock);
	return r;
}

void smg_xen_unmap_chunks_locked(struct xen_backend *x)
{
	for (size_t i = 0; i < x->n_chunks; i++) {
		uint64_t first = (uint64_t)i * SMG_XEN_CHUNK;
		size_t n =
		    (size_t)(x->p2m_size - first < SMG_XEN_CHUNK ? x->p2m_size - first
								 : SMG_XEN_CHUNK);

		if (x->chunks[i].map != NULL)
			xenforeignmemory_unmap(x->fmem, x->chunks[i].map, n);
	}
	free(x->chunks);
	x->chunks = NULL;
	x->n_chunks = 0;
}

void smg_xen_unmap_chunks(struct xen_backend *x)
{
	pthread_rwlock_wrlock(&x->map_lock);
	smg_xen_unmap_chunks_locked(x);
	pthread_rwlock_unlock(&x->map_lock);
}
