/* xen backend: which guest frames exist. An HVM/PVH guest's physmap runs
 * from frame 0 to its maximum gpfn (4 GiB and more of address space for a
 * 128 MiB guest: RAM below the MMIO hole, the special pages at its top),
 * and only the populated frames are memory. Xen says which ones are with
 * XEN_DOMCTL_getpageframeinfo3, the call libxc's save makes for every
 * batch (xc_get_pfn_type_batch): XTAB (a hole, or a Xen page such as
 * shared_info or a grant frame the guest mapped into its physmap) and
 * BROKEN frames are not the guest's memory, every other type is.
 *
 * The set is swept at domain_open (round 0 sends only it) and once more
 * with the guest stopped, at the final harvest. In Xen 4.17's source a
 * populate marks nothing dirty and p2m_add_page stores the new entry as
 * p2m_ram_rw, not log-dirty, so writes to a frame that appears during the
 * migration may never be logged: the stopped sweep is how secmig learns of
 * ballooning, and every frame that appeared is sent in the final round,
 * with the guest stopped; a frame that went is sent as zeros. Sweeping
 * during pre-copy too would only move work, not save any (an appeared
 * frame is sent again at the end anyway), and a sweep of a 4 GiB physmap
 * costs seconds under emulation. The last sweep travels in the
 * state blob, and the destination ends with exactly that set. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "engine/backend/xen_internal.h"

#define PFI_BATCH 1024u /* getpageframeinfo3 takes at most 1024 frames */

static bool is_memory(xen_pfn_t t)
{
	t &= XEN_DOMCTL_PFINFO_LTAB_MASK;
	return t != XEN_DOMCTL_PFINFO_XTAB && t != XEN_DOMCTL_PFINFO_BROKEN;
}

/* One getpageframeinfo3 call over frames [base, base+n). */
static int pfn_types(struct xen_backend *x, uint64_t base, unsigned n)
{
	DECLARE_HYPERCALL_BUFFER_SHADOW(xen_pfn_t, arr, &x->pfi_hbuf);
	struct xen_domctl dc;

	for (unsigned i = 0; i < n; i++)
		arr[i] = base + i;
	memset(&dc, 0, sizeof(dc));
	dc.cmd = XEN_DOMCTL_getpageframeinfo3;
	dc.domain = (domid_t)x->domid;
	dc.u.getpageframeinfo3.num = n;
	set_xen_guest_handle(dc.u.getpageframeinfo3.array, arr);
	if (xc_domctl(x->xch, &dc) != 0) {
		smg_err("xen: frame types of d%u [%#llx, +%u): %s", x->domid,
			(unsigned long long)base, n, strerror(errno));
		return SMG_ERR_BACKEND;
	}
	return 0;
}

/* bm (p2m_size bits) := the frames populated now. */
static int sweep(struct xen_backend *x, uint64_t *bm)
{
	size_t words = (size_t)((x->p2m_size + 63) / 64);
	uint64_t t0 = smg_now_ms();
	int r;

	if (x->pfi == NULL) {
		x->pfi_hbuf = (xc_hypercall_buffer_t){
		    .hbuf = NULL, .param_shadow = NULL, HYPERCALL_BUFFER_INIT_NO_BOUNCE};
		x->pfi = xc__hypercall_buffer_alloc_pages(
		    x->xch, &x->pfi_hbuf,
		    (int)((PFI_BATCH * sizeof(xen_pfn_t) + 4095) / 4096));
		if (x->pfi == NULL)
			return SMG_ERR_NOMEM;
	}
	memset(bm, 0, words * sizeof(*bm));
	for (uint64_t base = 0; base < x->p2m_size; base += PFI_BATCH) {
		unsigned n =
		    (unsigned)(x->p2m_size - base < PFI_BATCH ? x->p2m_size - base
							      : PFI_BATCH);

		if ((r = pfn_types(x, base, n)) != 0)
			return r;
		for (unsigned i = 0; i < n; i++)
			if (is_memory(x->pfi[i]))
				bm[(base + i) / 64] |= UINT64_C(1) << ((base + i) % 64);
	}
	x->sweep_ms = smg_now_ms() - t0;
	return 0;
}

static int alloc_sets(struct xen_backend *x)
{
	size_t words = (size_t)((x->p2m_size + 63) / 64);

	if (x->pop != NULL)
		return 0;
	x->pop = calloc(words, sizeof(uint64_t));
	x->appeared = calloc(words, sizeof(uint64_t));
	x->swept = calloc(words, sizeof(uint64_t));
	return x->pop && x->appeared && x->swept ? 0 : SMG_ERR_NOMEM;
}

int smg_xen_pop_open(struct xen_backend *x)
{
	int r;

	if ((r = alloc_sets(x)) != 0 || (r = sweep(x, x->pop)) != 0)
		return r;
	x->n_pop = smg_xs_bitmap_count(x->pop, x->p2m_size);
	x->pop_fresh = true; /* the engine's first `populated` takes it */
	return 0;
}

/* The engine's `populated`: a fresh sweep; round 0 (or a stop-and-copy
 * migration's one round, asked again after the pause) sends these. */
int smg_xen_src_populated(struct smg_backend *self, uint64_t *bitmap, uint64_t *count)
{
	struct xen_backend *x = XEN_SELF(self);
	size_t words;
	int r;

	if (!x->have_domain || x->is_dst)
		return SMG_ERR_STATE;
	words = (size_t)((x->p2m_size + 63) / 64);
	/* domain_open's sweep, unless the guest stopped since or it was used */
	if (!x->pop_fresh || x->suspended || x->paused) {
		if ((r = sweep(x, x->swept)) != 0)
			return r;
		pthread_rwlock_wrlock(&x->map_lock);
		memcpy(x->pop, x->swept, words * sizeof(uint64_t));
		x->n_pop = smg_xs_bitmap_count(x->pop, x->p2m_size);
		x->pop_stopped = x->suspended || x->paused;
		smg_xen_unmap_chunks_locked(x);
		pthread_rwlock_unlock(&x->map_lock);
	}
	x->pop_fresh = false;
	for (size_t i = 0; i < words; i++)
		bitmap[i] |= x->pop[i];
	*count = x->n_pop;
	smg_info("xen: d%u: %llu of %llu frames populated (%llu MiB), swept in %llu ms",
		 x->domid, (unsigned long long)x->n_pop, (unsigned long long)x->p2m_size,
		 (unsigned long long)(x->n_pop >> 8), (unsigned long long)x->sweep_ms);
	return 0;
}

/* At a log-dirty harvest (the engine harvests between rounds; the map
 * lock keeps read_pages out all the same) the mappings are dropped, so the
 * next round reads each frame through a mapping made after it. With the
 * guest stopped, the populated frames are swept: frames that appeared or
 * went since domain_open are dirty, and every frame that appeared is sent
 * again (its writes may never have been logged). */
int smg_xen_pop_harvest(struct xen_backend *x, uint64_t *bitmap, uint64_t *dirty)
{
	struct smg_xf_delta d;
	uint64_t again;
	int r;

	if (!x->suspended && !x->paused) {
		smg_xen_unmap_chunks(x);
		return 0;
	}
	if ((r = alloc_sets(x)) != 0 || (r = sweep(x, x->swept)) != 0)
		return r;
	pthread_rwlock_wrlock(&x->map_lock);
	smg_xf_update(x->pop, x->swept, x->appeared, bitmap, x->p2m_size, &d);
	again = smg_xf_or_new(bitmap, x->appeared, x->p2m_size);
	x->n_pop += d.appeared;
	x->n_pop -= d.gone;
	x->pop_stopped = true;
	smg_xen_unmap_chunks_locked(x);
	pthread_rwlock_unlock(&x->map_lock);
	*dirty += d.newly_dirty + again;
	smg_info("xen: d%u stopped: %llu frames populated (Xen counts %lu pages), "
		 "swept in %llu ms; since domain_open %llu appeared, %llu went; %llu "
		 "more frames for the final round",
		 x->domid, (unsigned long long)x->n_pop, smg_xen_tot_pages(x, x->domid),
		 (unsigned long long)x->sweep_ms, (unsigned long long)d.appeared,
		 (unsigned long long)d.gone, (unsigned long long)(d.newly_dirty + again));
	return 0;
}

/* The state blob's RAM record: the frames populated while the guest is
 * stopped, exactly (the destination ends with this set). */
int smg_xen_pop_record(struct xen_backend *x, struct smg_xs_sink *s)
{
	uint64_t(*r)[2] = NULL;
	size_t n;
	int rc;

	if (!x->pop_stopped) {
		/* no sweep since the guest stopped: the set must be exact */
		struct smg_xf_delta d;
		uint64_t *scratch;
		size_t words = (size_t)((x->p2m_size + 63) / 64);

		if ((rc = alloc_sets(x)) != 0 || (rc = sweep(x, x->swept)) != 0)
			return rc;
		if ((scratch = calloc(words, sizeof(uint64_t))) == NULL)
			return SMG_ERR_NOMEM;
		smg_xf_update(x->pop, x->swept, x->appeared, scratch, x->p2m_size, &d);
		free(scratch);
		if (d.appeared) {
			/* frames no round carried: their data cannot follow */
			smg_err("xen: %llu frames of d%u appeared after the last round",
				(unsigned long long)d.appeared, x->domid);
			return SMG_ERR_STATE;
		}
		x->n_pop -= d.gone;
		x->pop_stopped = true;
	}
	n = smg_xf_ranges_of(x->pop, x->p2m_size, NULL, 0);
	if (n == 0 || n > SMG_XS_STATE_RANGES_MAX) {
		smg_err("xen: d%u's populated frames form %zu ranges (1..%u supported)",
			x->domid, n, SMG_XS_STATE_RANGES_MAX);
		return SMG_ERR_UNSUPPORTED;
	}
	if ((r = calloc(n, sizeof(*r))) == NULL)
		return SMG_ERR_NOMEM;
	smg_xf_ranges_of(x->pop, x->p2m_size, r, n);
	rc = smg_xen_write_ranges(s, (const uint64_t(*)[2])r, n);
	free(r);
	return rc;
}

/* The pages Xen accounts to a domain (0 if it cannot say): a check on the
 * sweeps that owes nothing to them. */
unsigned long smg_xen_tot_pages(struct xen_backend *x, uint32_t domid)
{
	xc_dominfo_t di;

	if (xc_domain_getinfo(x->xch, domid, 1, &di) != 1 || di.domid != domid)
		return 0;
	return di.nr_pages;
}

int smg_xen_write_ranges(struct smg_xs_sink *s, const uint64_t (*r)[2], size_t n)
{
	uint8_t *b = malloc(n ? n * 16 : 1);
	int rc;

	if (b == NULL)
		return SMG_ERR_NOMEM;
	for (size_t i = 0; i < 2 * n; i++) {
		uint64_t v = r[i / 2][i % 2];

		for (int k = 0; k < 8; k++)
			b[8 * i + (size_t)k] = (uint8_t)(v >> (8 * k));
	}
	rc = smg_xs_write_record(s, SMG_XC_REC_RAM, b, n * 16);
	free(b);
	return rc;
}

void smg_xen_pop_free(struct xen_backend *x)
{
	if (x->pfi != NULL)
		xc__hypercall_buffer_free_pages(
		    x->xch, &x->pfi_hbuf,
		    (int)((PFI_BATCH * sizeof(xen_pfn_t) + 4095) / 4096));
	x->pfi = NULL;
	free(x->pop);
	free(x->appeared);
	free(x->swept);
	x->pop = x->appeared = x->swept = NULL;
}
