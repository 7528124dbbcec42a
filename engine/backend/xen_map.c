/* xen backend: reading guest frames. The engine reads one frame at a time
 * from several channel threads; a foreign mapping per frame would cost an
 * mmap, a hypercall batch and a TLB flush each, so frames are mapped in
 * chunks of SMG_XEN_CHUNK on first touch and stay mapped until close. The
 * mapping is live: it shows the guest's current bytes, and log-dirty says
 * which ones changed since they were read. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "base/base.h"
#include "engine/backend/xen_internal.h"

static bool chunk_has_ram(const struct xen_backend *x, uint64_t first, uint64_t end)
{
	for (size_t i = 0; i < x->cfg.n_ranges; i++)
		if (x->cfg.ranges[i][0] < end && x->cfg.ranges[i][1] > first)
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

int smg_xen_src_read_pages(struct smg_backend *self, const uint64_t *pfns, size_t n,
			   uint8_t *out)
{
	struct xen_backend *x = XEN_SELF(self);

	if (!x->have_domain || x->domid == 0 || (x->is_dst && !x->stream_done))
		return SMG_ERR_STATE;
	if (x->chunks == NULL) {
		pthread_mutex_lock(&x->chunk_lock);
		if (x->chunks == NULL) {
			size_t nc =
			    (size_t)((x->p2m_size + SMG_XEN_CHUNK - 1) / SMG_XEN_CHUNK);
			struct xen_chunk *cs = calloc(nc, sizeof(*cs));

			if (cs != NULL) {
				x->n_chunks = nc;
				__atomic_store_n(&x->chunks, cs, __ATOMIC_RELEASE);
			}
		}
		pthread_mutex_unlock(&x->chunk_lock);
		if (x->chunks == NULL)
			return SMG_ERR_NOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		uint64_t pfn = pfns[i];
		size_t ci = (size_t)(pfn / SMG_XEN_CHUNK);
		unsigned off = (unsigned)(pfn % SMG_XEN_CHUNK);
		struct xen_chunk *c;
		uint8_t *dst = out + i * SMG_XS_PAGE_SIZE;

		if (pfn >= x->p2m_size)
			return SMG_ERR_INVAL;
		c = &x->chunks[ci];
		if (!__atomic_load_n(&c->done, __ATOMIC_ACQUIRE))
			map_chunk(x, ci);
		/* A hole reads as zeros; the destination skips frames outside
		 * the RAM ranges in the config. */
		if (c->map == NULL || (c->bad[off / 64] & (UINT64_C(1) << (off % 64))))
			memset(dst, 0, SMG_XS_PAGE_SIZE);
		else
			memcpy(dst, c->map + (size_t)off * SMG_XS_PAGE_SIZE,
			       SMG_XS_PAGE_SIZE);
	}
	return 0;
}

void smg_xen_unmap_chunks(struct xen_backend *x)
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
