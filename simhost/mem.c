/* Sim domain memory: the shared-memory object, the self-verifying page
 * content (CRIU zdtm in spirit: the workload can check its own state after
 * it moved), the device-state blob and the verifier. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "base/base.h"
#include "simhost/simhost.h"

#define PAGE_TAG      0x5347504147455f31ull /* "SGPAGE_1" */
#define STATE_MAGIC   0x53494d53u	    /* "SIMS" */
#define STATE_VERSION 1u
#define HDR_WORDS     4 /* tag, pfn, gen, check */

static uint64_t splitmix(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint64_t mix3(uint64_t a, uint64_t b, uint64_t c)
{
	uint64_t s = a ^ (b * 0x9e3779b97f4a7c15ull) ^ (c * 0xc2b2ae3d27d4eb4full);

	return splitmix(&s);
}

uint64_t smg_sim_mem_size(uint64_t npages)
{
	uint64_t bm = ((npages + 63) / 64) * 8;

	bm = (bm + SMG_SIM_PAGE_SIZE - 1) / SMG_SIM_PAGE_SIZE * SMG_SIM_PAGE_SIZE;
	return SMG_SIM_HDR_SIZE + bm + npages * SMG_SIM_PAGE_SIZE;
}

static void layout(struct smg_sim_mem *m)
{
	uint8_t *base = (uint8_t *)m->sh;

	m->bitmap = (_Atomic uint64_t *)(base + m->sh->bitmap_off);
	m->pages = base + m->sh->mem_off;
}

void smg_sim_page_fill(const struct smg_sim_shared *sh, uint64_t pfn, uint64_t gen,
		       uint8_t *page)
{
	uint64_t s = mix3(sh->domain_seed, pfn, gen);
	uint64_t w[HDR_WORDS] = {PAGE_TAG, pfn, gen, mix3(sh->domain_seed, gen, pfn)};

	memcpy(page, w, sizeof(w));
	for (size_t off = sizeof(w); off < SMG_SIM_PAGE_SIZE; off += 8) {
		uint64_t v = splitmix(&s);
		memcpy(page + off, &v, 8);
	}
}

int smg_sim_mem_create(const struct smg_sim_config *cfg, bool fill, struct smg_sim_mem *m)
{
	uint64_t npages = cfg->mem_bytes / SMG_SIM_PAGE_SIZE;
	uint64_t size = smg_sim_mem_size(npages);
	struct smg_sim_shared *sh;
	int fd, r;

	memset(m, 0, sizeof(*m));
	m->fd = -1;
	if ((fd = memfd_create(cfg->name, MFD_CLOEXEC)) < 0)
		return smg_err_sys(errno);
	if (ftruncate(fd, (off_t)size) != 0) {
		r = smg_err_sys(errno);
		close(fd);
		return r;
	}
	sh = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (sh == MAP_FAILED) {
		r = smg_err_sys(errno);
		close(fd);
		return r;
	}
	sh->magic = SMG_SIM_MAGIC;
	sh->npages = npages;
	sh->nz = npages - npages * cfg->zero_pct / 100;
	if (sh->nz == 0)
		sh->nz = 1;
	sh->bitmap_off = SMG_SIM_HDR_SIZE;
	sh->mem_off = size - npages * SMG_SIM_PAGE_SIZE;
	sh->total_size = size;
	sh->domain_seed = mix3(cfg->seed, 0x53494d, npages);
	sh->page_size = SMG_SIM_PAGE_SIZE;
	sh->vcpus = cfg->vcpus;
	sh->workload = cfg->workload;
	sh->hot_writes = cfg->hot_writes;
	sh->hot_pages = cfg->hot_pages;
	sh->dirty_rate = cfg->dirty_rate;
	for (unsigned v = 0; v < cfg->vcpus; v++) {
		sh->vcpu[v].seed = mix3(cfg->seed, v + 1, 0x76637075);
		sh->vcpu[v].prng = sh->vcpu[v].seed;
		smg_sim_regs(sh->vcpu[v].prng, 0, sh->vcpu[v].regs);
		atomic_store(&sh->vcpu[v].parked, 1); /* no writer runs yet */
	}
	m->fd = fd;
	m->size = size;
	m->sh = sh;
	layout(m);
	if (fill)
		for (uint64_t p = 0; p < sh->nz; p++)
			smg_sim_page_fill(sh, p, 1, m->pages + p * SMG_SIM_PAGE_SIZE);
	return SMG_OK;
}

int smg_sim_mem_map(int fd, bool populate, struct smg_sim_mem *m)
{
	struct smg_sim_shared *sh;
	off_t size = lseek(fd, 0, SEEK_END);

	memset(m, 0, sizeof(*m));
	m->fd = -1;
	if (size < (off_t)SMG_SIM_HDR_SIZE)
		return SMG_ERR_BACKEND;
	sh = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (sh == MAP_FAILED)
		return smg_err_sys(errno);
	if (sh->magic != SMG_SIM_MAGIC || sh->total_size != (uint64_t)size ||
	    smg_sim_mem_size(sh->npages) != (uint64_t)size || sh->vcpus == 0 ||
	    sh->vcpus > SMG_SIM_VCPUS_MAX || sh->nz == 0 || sh->nz > sh->npages) {
		munmap(sh, (size_t)size);
		return SMG_ERR_BACKEND;
	}
	/* A skeleton's frames are allocated (and zeroed) now, outside the
	 * downtime, as Xen's populate_physmap does. Through the file, not the
	 * mapping: the engine moves pages with preadv/pwritev (sim.c), and a
	 * first touch through a fresh mapping costs a fault per frame (several
	 * microseconds each under a hypervisor's shadow paging). */
	if (populate && fallocate(fd, 0, (off_t)sh->mem_off,
				  (off_t)(sh->npages * SMG_SIM_PAGE_SIZE)) != 0) {
		int r = smg_err_sys(errno);

		munmap(sh, (size_t)size);
		return r;
	}
	m->fd = fd;
	m->size = (size_t)size;
	m->sh = sh;
	layout(m);
	return SMG_OK;
}

void smg_sim_mem_unmap(struct smg_sim_mem *m)
{
	if (m->sh != NULL)
		munmap(m->sh, m->size);
	if (m->fd >= 0)
		close(m->fd);
	memset(m, 0, sizeof(*m));
	m->fd = -1;
}

void smg_sim_regs(uint64_t prng, uint64_t count, uint8_t regs[static SMG_SIM_REGS_LEN])
{
	uint64_t s = mix3(prng, count, 0x72656773);

	for (unsigned i = 0; i < SMG_SIM_REGS_LEN; i += 8) {
		uint64_t v = splitmix(&s);
		memcpy(regs + i, &v, 8);
	}
}

/* vCPU v owns the data frames pfn = j * vcpus + v, so the last writer of
 * every frame is known and a replay can predict each frame's generation. */
uint64_t smg_sim_pick(const struct smg_sim_shared *sh, unsigned v, uint64_t *prng,
		      uint64_t k)
{
	uint64_t own = (sh->nz - v + sh->vcpus - 1) / sh->vcpus;
	uint64_t r = splitmix(prng), j;

	if (own == 0)
		return UINT64_MAX;
	switch (sh->workload) {
	case SMG_SIM_HOTSPOT: {
		uint64_t hot = own * sh->hot_pages / 100;
		if (hot == 0)
			hot = 1;
		if ((r >> 32) % 100 < sh->hot_writes || hot >= own)
			j = (r & 0xffffffffu) % hot;
		else
			j = hot + (r & 0xffffffffu) % (own - hot);
		break;
	}
	case SMG_SIM_TRACE:
		j = sh->trace_len == 0
			? r % own
			: sh->trace[(k * sh->vcpus + v) % sh->trace_len] % own;
		break;
	default:
		j = r % own;
		break;
	}
	return j * sh->vcpus + v;
}

void smg_sim_write_one(struct smg_sim_mem *m, unsigned v)
{
	struct smg_sim_shared *sh = m->sh;
	struct smg_sim_vcpu *c = &sh->vcpu[v];
	uint64_t pfn = smg_sim_pick(sh, v, &c->prng, c->count), gen;
	uint8_t *page;

	if (pfn == UINT64_MAX)
		return;
	page = m->pages + pfn * SMG_SIM_PAGE_SIZE;
	memcpy(&gen, page + 16, 8);
	smg_sim_page_fill(sh, pfn, gen + 1, page);
	c->count++;
	smg_sim_regs(c->prng, c->count, c->regs);
	/* Order the page stores before the log-dirty check: if the engine
	 * enabled log-dirty after we looked, it reads the page after this. */
	atomic_thread_fence(memory_order_seq_cst);
	if (atomic_load(&sh->logdirty))
		atomic_fetch_or_explicit(&m->bitmap[pfn / 64], 1ull << (pfn % 64),
					 memory_order_release);
	atomic_fetch_add_explicit(&sh->writes, 1, memory_order_relaxed);
}

static bool page_zero(const uint8_t *p)
{
	static const uint8_t zero[SMG_SIM_PAGE_SIZE];

	return memcmp(p, zero, SMG_SIM_PAGE_SIZE) == 0;
}

static void classify(const struct smg_sim_shared *sh, uint64_t pfn, uint64_t want,
		     const uint8_t *page, uint8_t *tmp, struct smg_sim_verify *v)
{
	uint64_t hdr[HDR_WORDS];

	if (want == 0) {
		if (page_zero(page)) {
			v->zero++;
			v->ok++;
			return;
		}
		v->corrupted++;
		goto bad;
	}
	smg_sim_page_fill(sh, pfn, want, tmp);
	if (memcmp(tmp, page, SMG_SIM_PAGE_SIZE) == 0) {
		v->ok++;
		return;
	}
	memcpy(hdr, page, sizeof(hdr));
	if (page_zero(page)) {
		v->lost++;
	} else if (hdr[0] == PAGE_TAG && hdr[1] != pfn && hdr[1] < sh->npages) {
		v->misplaced++;
	} else if (hdr[0] == PAGE_TAG && hdr[1] == pfn && hdr[2] < want && hdr[2] > 0 &&
		   (smg_sim_page_fill(sh, pfn, hdr[2], tmp),
		    memcmp(tmp, page, SMG_SIM_PAGE_SIZE) == 0)) {
		v->stale++;
	} else {
		v->corrupted++;
	}
bad:
	if (v->first_bad_pfn == UINT64_MAX)
		v->first_bad_pfn = pfn;
}

int smg_sim_verify(const struct smg_sim_mem *m, struct smg_sim_verify *out)
{
	const struct smg_sim_shared *sh = m->sh;
	uint32_t *gen;
	uint8_t tmp[SMG_SIM_PAGE_SIZE];

	memset(out, 0, sizeof(*out));
	out->first_bad_pfn = UINT64_MAX;
	out->pages = sh->npages;
	if ((gen = calloc(sh->nz, sizeof(*gen))) == NULL)
		return SMG_ERR_NOMEM;
	for (unsigned v = 0; v < sh->vcpus; v++) {
		const struct smg_sim_vcpu *c = &sh->vcpu[v];
		uint64_t prng = c->seed;
		uint8_t regs[SMG_SIM_REGS_LEN];

		for (uint64_t k = 0; k < c->count; k++) {
			uint64_t pfn = smg_sim_pick(sh, v, &prng, k);
			if (pfn < sh->nz)
				gen[pfn]++;
		}
		smg_sim_regs(prng, c->count, regs);
		if (prng != c->prng || memcmp(regs, c->regs, sizeof(regs)) != 0)
			out->bad_state++;
	}
	for (uint64_t p = 0; p < sh->npages; p++)
		classify(sh, p, p < sh->nz ? (uint64_t)gen[p] + 1 : 0,
			 m->pages + p * SMG_SIM_PAGE_SIZE, tmp, out);
	free(gen);
	return out->ok == out->pages && out->bad_state == 0 ? SMG_OK : SMG_ERR_INTEGRITY;
}

int smg_sim_state_save(const struct smg_sim_mem *m, uint8_t **blob, size_t *len)
{
	const struct smg_sim_shared *sh = m->sh;
	size_t cap = 16 + sh->vcpus * (24 + SMG_SIM_REGS_LEN) + 4 + sh->trace_len * 4;
	struct smg_wr wr;
	uint8_t *buf;
	int r = SMG_OK;

	*blob = NULL;
	*len = 0;
	if ((buf = malloc(cap)) == NULL)
		return SMG_ERR_NOMEM;
	smg_wr_init(&wr, buf, cap);
	r = smg_wr_u32(&wr, STATE_MAGIC);
	r = r ?: smg_wr_u8(&wr, STATE_VERSION);
	r = r ?: smg_wr_u32(&wr, sh->vcpus);
	for (unsigned v = 0; r == SMG_OK && v < sh->vcpus; v++) {
		r = smg_wr_u64(&wr, sh->vcpu[v].seed);
		r = r ?: smg_wr_u64(&wr, sh->vcpu[v].prng);
		r = r ?: smg_wr_u64(&wr, sh->vcpu[v].count);
		r = r ?: smg_wr_bytes(&wr, sh->vcpu[v].regs, SMG_SIM_REGS_LEN);
	}
	r = r ?: smg_wr_u32(&wr, sh->trace_len);
	for (uint32_t i = 0; r == SMG_OK && i < sh->trace_len; i++)
		r = smg_wr_u32(&wr, sh->trace[i]);
	if (r != SMG_OK) {
		free(buf);
		return r;
	}
	*blob = buf;
	*len = wr.off;
	return SMG_OK;
}

int smg_sim_state_restore(struct smg_sim_mem *m, const uint8_t *blob, size_t len)
{
	struct smg_sim_shared *sh = m->sh;
	struct smg_sim_vcpu tmp[SMG_SIM_VCPUS_MAX];
	uint32_t magic, nv, tl;
	uint8_t ver;
	struct smg_rd rd;
	int r;

	smg_rd_init(&rd, blob, len);
	if ((r = smg_rd_u32(&rd, &magic)) != 0 || (r = smg_rd_u8(&rd, &ver)) != 0 ||
	    (r = smg_rd_u32(&rd, &nv)) != 0)
		return r;
	/* A peer could claim any vCPU count: it must match the plan's. */
	if (magic != STATE_MAGIC || ver != STATE_VERSION || nv != sh->vcpus)
		return SMG_ERR_PROTO;
	memset(tmp, 0, sizeof(tmp));
	for (unsigned v = 0; v < nv; v++)
		if ((r = smg_rd_u64(&rd, &tmp[v].seed)) != 0 ||
		    (r = smg_rd_u64(&rd, &tmp[v].prng)) != 0 ||
		    (r = smg_rd_u64(&rd, &tmp[v].count)) != 0 ||
		    (r = smg_rd_bytes(&rd, tmp[v].regs, SMG_SIM_REGS_LEN)) != 0)
			return r;
	if ((r = smg_rd_u32(&rd, &tl)) != 0)
		return r;
	if (tl > SMG_SIM_TRACE_MAX || smg_rd_left(&rd) != (size_t)tl * 4)
		return SMG_ERR_PROTO;
	for (uint32_t i = 0; i < tl; i++)
		smg_rd_u32(&rd, &sh->trace[i]);
	sh->trace_len = tl;
	for (unsigned v = 0; v < nv; v++) {
		sh->vcpu[v].seed = tmp[v].seed;
		sh->vcpu[v].prng = tmp[v].prng;
		sh->vcpu[v].count = tmp[v].count;
		memcpy(sh->vcpu[v].regs, tmp[v].regs, SMG_SIM_REGS_LEN);
	}
	return smg_rd_end(&rd);
}

/* XEN_DOMCTL_SHADOW_OP_CLEAN: each word is swapped for zero atomically, so a
 * bit a writer sets concurrently is in this result or stays for the next. */
void smg_sim_logdirty_peek_clear(struct smg_sim_mem *m, uint64_t *bitmap, uint64_t *dirty)
{
	uint64_t words = (m->sh->npages + 63) / 64, n = 0;

	for (uint64_t w = 0; w < words; w++) {
		uint64_t v;

		if (atomic_load_explicit(&m->bitmap[w], memory_order_relaxed) == 0)
			continue;
		v = atomic_exchange_explicit(&m->bitmap[w], 0, memory_order_acq_rel);
		n += (uint64_t)__builtin_popcountll(v & ~bitmap[w]);
		bitmap[w] |= v;
	}
	*dirty = n;
}
