/* xen backend, sending side: what libxenguest's save (xg_sr_save.c,
 * xg_sr_save_x86_hvm.c) does, split into the engine's steps so that secmig,
 * not libxc, decides when pre-copy stops. HVM and PVH guests (both "x86 HVM"
 * to libxc); PV guests need their P2M walked and are refused. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "base/base.h"
#include "engine/backend/xen_internal.h"

#include <xen/hvm/params.h>
#include <xen/sched.h>

#define SUSPEND_WAIT_MS 30000 /* a guest that ignores control/shutdown */
#define SUSPEND_POLL_MS 20
#define MIGRATED_SUFFIX "--migratedaway"
#define COMMIT_PATH_FMT "/tool/secmig/%u"

/* The HVM params libxc's save sends (write_hvm_params); zero ones are left
 * out, as libxc does. */
static const uint32_t hvm_params[] = {
    HVM_PARAM_STORE_PFN,
    HVM_PARAM_IOREQ_PFN,
    HVM_PARAM_BUFIOREQ_PFN,
    HVM_PARAM_PAGING_RING_PFN,
    HVM_PARAM_MONITOR_RING_PFN,
    HVM_PARAM_SHARING_RING_PFN,
    HVM_PARAM_VM86_TSS_SIZED,
    HVM_PARAM_CONSOLE_PFN,
    HVM_PARAM_ACPI_IOPORTS_LOCATION,
    HVM_PARAM_VIRIDIAN,
    HVM_PARAM_IDENT_PT,
    HVM_PARAM_VM_GENERATION_ID_ADDR,
    HVM_PARAM_IOREQ_SERVER_PFN,
    HVM_PARAM_NR_IOREQ_SERVER_PAGES,
    HVM_PARAM_X87_FIP_WIDTH,
    HVM_PARAM_MCA_CAP,
};

/* The config's RAM record: the frames populated at domain_open, their
 * nearest neighbours merged past SMG_XC_MAX_RANGES. Informative for the
 * destination, which takes the exact set from the state blob. */
static int open_ranges(struct xen_backend *x, struct smg_xen_config *cfg)
{
	size_t n = smg_xf_ranges_of(x->pop, x->p2m_size, NULL, 0);
	uint64_t(*r)[2];
	int rc;

	if (n == 0) {
		smg_err("xen: d%u has no populated frames", x->domid);
		return SMG_ERR_STATE;
	}
	if ((r = calloc(n, sizeof(*r))) == NULL)
		return SMG_ERR_NOMEM;
	smg_xf_ranges_of(x->pop, x->p2m_size, r, n);
	rc = smg_xf_ranges_cover(r, &n, SMG_XC_MAX_RANGES);
	if (rc == 0) {
		memcpy(cfg->ranges, r, n * sizeof(*r));
		cfg->n_ranges = n;
	}
	free(r);
	return rc;
}

static int add_cpu_policy(struct xen_backend *x, struct smg_xs_sink *s)
{
	uint32_t nl = 0, nm = 0;
	xen_cpuid_leaf_t *leaves = NULL;
	xen_msr_entry_t *msrs = NULL;
	xc_cpu_policy_t *pol = NULL;
	int r = SMG_ERR_BACKEND;

	if (xc_cpu_policy_get_size(x->xch, &nl, &nm) != 0)
		goto out;
	leaves = calloc(nl ? nl : 1, sizeof(*leaves));
	msrs = calloc(nm ? nm : 1, sizeof(*msrs));
	pol = xc_cpu_policy_init();
	if (leaves == NULL || msrs == NULL || pol == NULL) {
		r = SMG_ERR_NOMEM;
		goto out;
	}
	if (xc_cpu_policy_get_domain(x->xch, x->domid, pol) != 0 ||
	    xc_cpu_policy_serialise(x->xch, pol, leaves, &nl, msrs, &nm) != 0) {
		smg_err("xen: cannot read d%u's CPU policy: %s", x->domid,
			strerror(errno));
		goto out;
	}
	if ((nl && (r = smg_xs_write_record(s, SMG_XS_REC_CPUID_POLICY, leaves,
					    nl * sizeof(*leaves))) != 0) ||
	    (nm && (r = smg_xs_write_record(s, SMG_XS_REC_MSR_POLICY, msrs,
					    nm * sizeof(*msrs))) != 0))
		goto out;
	r = 0;
out:
	if (r == SMG_ERR_BACKEND)
		smg_err("xen: CPU policy of d%u unavailable", x->domid);
	free(leaves);
	free(msrs);
	xc_cpu_policy_destroy(pol);
	return r;
}

/* The plan's config blob: type/version info, the libxl config as JSON, the
 * CPU policy (static data libxc restores before any page) and RAM ranges. */
static int build_config(struct xen_backend *x, uint32_t vcpus)
{
	struct smg_xs_mem m = {0};
	struct smg_xs_sink s = {smg_xs_mem_write, &m, 0};
	libxl_domain_config dc;
	struct smg_xen_config cfg;
	uint8_t info[24];
	char *json = NULL;
	int ver, r;

	libxl_domain_config_init(&dc);
	if (libxl_retrieve_domain_configuration(x->ctx, x->domid, &dc, NULL) != 0 ||
	    (json = libxl_domain_config_to_json(x->ctx, &dc)) == NULL) {
		smg_err("xen: cannot retrieve d%u's libxl configuration (was it "
			"created with xl?)",
			x->domid);
		r = SMG_ERR_BACKEND;
		goto out;
	}
	if (strlen(json) > SMG_XC_JSON_MAX) {
		smg_err("xen: d%u's config is %zu bytes, above %u", x->domid,
			strlen(json), SMG_XC_JSON_MAX);
		r = SMG_ERR_TOO_LONG;
		goto out;
	}
	if ((r = smg_xen_pop_open(x)) != 0 || (r = open_ranges(x, &cfg)) != 0)
		goto out;
	ver = xc_version(x->xch, XENVER_version, NULL);
	smg_store_le32(info, SMG_XS_DHDR_X86_HVM);
	smg_store_le32(info + 4, (uint32_t)ver >> 16);
	smg_store_le32(info + 8, (uint32_t)ver & 0xffff);
	smg_store_le32(info + 12, vcpus);
	smg_store_le64(info + 16, x->p2m_size);
	if ((r = smg_xs_write_record(&s, SMG_XC_REC_INFO, info, sizeof(info))) != 0 ||
	    (r = smg_xs_write_record(&s, SMG_XC_REC_JSON, json, strlen(json))) != 0 ||
	    (r = add_cpu_policy(x, &s)) != 0)
		goto out;
	if ((r = smg_xen_write_ranges(&s, (const uint64_t(*)[2])cfg.ranges,
				      cfg.n_ranges)) != 0)
		goto out;
	if ((r = smg_xen_config_parse(m.p, m.len, &x->cfg)) != 0) {
		smg_err("xen: built a config blob we cannot parse: %s", smg_strerror(r));
		goto out;
	}
	x->config = m.p;
	x->config_len = m.len;
	m.p = NULL;
	smg_info("xen: d%u '%s': %llu of %llu frames populated (%zu ranges, swept in "
		 "%llu ms), Xen %d.%d",
		 x->domid, x->name, (unsigned long long)x->n_pop,
		 (unsigned long long)x->p2m_size,
		 smg_xf_ranges_of(x->pop, x->p2m_size, NULL, 0),
		 (unsigned long long)x->sweep_ms, ver >> 16, ver & 0xffff);
out:
	free(json);
	free(m.p);
	libxl_domain_config_dispose(&dc);
	return r;
}

int smg_xen_src_open(struct smg_backend *self, const char *name,
		     struct smg_domain_info *info)
{
	struct xen_backend *x = XEN_SELF(self);
	xc_dominfo_t di;
	xen_pfn_t nr = 0;
	char *dname;
	int r;

	memset(info, 0, sizeof(*info));
	if (x->have_domain)
		return SMG_ERR_STATE;
	if ((r = smg_xen_open_handles(x, true)) != 0 ||
	    (r = smg_xen_find_domain(x, name)) != 0)
		return r;
	if (smg_xen_domain_state(x, &di) != 0) {
		smg_err("xen: no domain %u", x->domid);
		return SMG_ERR_NOT_FOUND;
	}
	if (x->domid == 0) {
		smg_err("xen: refusing to migrate dom0");
		return SMG_ERR_INVAL;
	}
	if (!di.hvm) {
		smg_err("xen: d%u is a PV guest; this backend migrates HVM and PVH "
			"guests only",
			x->domid);
		return SMG_ERR_UNSUPPORTED;
	}
	if (di.shutdown || di.dying) {
		smg_err("xen: d%u is shut down or dying", x->domid);
		return SMG_ERR_STATE;
	}
	if (xc_domain_nr_gpfns(x->xch, x->domid, &nr) < 0 || nr == 0) {
		smg_err("xen: cannot size d%u's physmap: %s", x->domid, strerror(errno));
		return SMG_ERR_BACKEND;
	}
	x->p2m_size = nr;
	dname = libxl_domid_to_name(x->ctx, x->domid);
	snprintf(x->name, sizeof(x->name), "%s", dname != NULL ? dname : name);
	free(dname);
	if ((r = build_config(x, di.max_vcpu_id + 1)) != 0)
		return r;
	x->have_domain = true;
	snprintf(info->name, sizeof(info->name), "%s", x->name);
	info->pages = x->p2m_size;
	info->page_size = SMG_XS_PAGE_SIZE;
	info->vcpus = di.max_vcpu_id + 1;
	info->config = x->config;
	info->config_len = x->config_len;
	return 0;
}

int smg_xen_src_logdirty_enable(struct smg_backend *self)
{
	struct xen_backend *x = XEN_SELF(self);

	if (!x->have_domain)
		return SMG_ERR_STATE;
	if (x->bm == NULL) {
		x->bm_pages = (size_t)((x->p2m_size + 8 * 4096 - 1) / (8 * 4096));
		x->bm_hbuf = (xc_hypercall_buffer_t){
		    .hbuf = NULL, .param_shadow = NULL, HYPERCALL_BUFFER_INIT_NO_BOUNCE};
		x->bm = xc__hypercall_buffer_alloc_pages(x->xch, &x->bm_hbuf,
							 (int)x->bm_pages);
		if (x->bm == NULL)
			return SMG_ERR_NOMEM;
	}
	if (xc_shadow_control(x->xch, x->domid, XEN_DOMCTL_SHADOW_OP_ENABLE_LOGDIRTY,
			      NULL, 0) < 0) {
		/* A failed earlier migration can leave log-dirty on: libxenguest
		 * switches it off and tries once more. */
		int e = errno;

		if (xc_shadow_control(x->xch, x->domid, XEN_DOMCTL_SHADOW_OP_OFF, NULL,
				      0) < 0 ||
		    xc_shadow_control(x->xch, x->domid,
				      XEN_DOMCTL_SHADOW_OP_ENABLE_LOGDIRTY, NULL,
				      0) < 0) {
			smg_err("xen: log-dirty on d%u: %s%s", x->domid, strerror(e),
				e == EOPNOTSUPP
				    ? " (PV guests need a Xen with shadow paging)"
				    : "");
			return SMG_ERR_BACKEND;
		}
	}
	x->logdirty_on = true;
	return 0;
}

int smg_xen_src_logdirty_peek_clear(struct smg_backend *self, uint64_t *bitmap,
				    uint64_t *dirty)
{
	struct xen_backend *x = XEN_SELF(self);
	xc_shadow_op_stats_t st;
	/* Once the guest is stopped, the last harvest may skip Xen's per-round
	 * bookkeeping for a running guest. */
	unsigned mode = x->paused || x->suspended ? XEN_DOMCTL_SHADOW_LOGDIRTY_FINAL : 0;
	uint64_t n = 0, words = (x->p2m_size + 63) / 64;

	*dirty = 0;
	if (!x->logdirty_on)
		return SMG_ERR_STATE;
	memset(x->bm, 0, x->bm_pages * 4096);
	if (xc_logdirty_control(x->xch, x->domid, XEN_DOMCTL_SHADOW_OP_CLEAN, &x->bm_hbuf,
				x->p2m_size, mode, &st) < 0) {
		smg_err("xen: log-dirty CLEAN on d%u: %s", x->domid, strerror(errno));
		return SMG_ERR_BACKEND;
	}
	for (uint64_t i = 0; i < words; i++) {
		uint64_t w = x->bm[i];

		if (i == words - 1 && x->p2m_size % 64)
			w &= (UINT64_C(1) << (x->p2m_size % 64)) - 1;
		n += (uint64_t)__builtin_popcountll(w & ~bitmap[i]);
		bitmap[i] |= w;
	}
	*dirty = n;
	/* the frames that appeared or went since the last sweep are dirty too */
	return smg_xen_pop_harvest(x, bitmap, dirty);
}

int smg_xen_src_logdirty_disable(struct smg_backend *self)
{
	struct xen_backend *x = XEN_SELF(self);

	if (!x->logdirty_on)
		return 0;
	if (xc_shadow_control(x->xch, x->domid, XEN_DOMCTL_SHADOW_OP_OFF, NULL, 0) < 0) {
		smg_err("xen: log-dirty OFF on d%u: %s", x->domid, strerror(errno));
		return SMG_ERR_BACKEND;
	}
	x->logdirty_on = false;
	return 0;
}

/* Cooperative suspend, as libxl does for a guest with PV drivers: the guest
 * parks its devices and calls SCHEDOP_shutdown(SHUTDOWN_suspend), so on the
 * destination it reconnects xenstore and console to the new event channels. */
int smg_xen_src_pause(struct smg_backend *self)
{
	struct xen_backend *x = XEN_SELF(self);
	char path[64];
	xc_dominfo_t di;

	if (!x->have_domain)
		return SMG_ERR_STATE;
	if (x->suspended || x->paused)
		return 0;
	snprintf(path, sizeof(path), "/local/domain/%u/control/shutdown", x->domid);
	if (!xs_write(x->xsh, XBT_NULL, path, "suspend", strlen("suspend"))) {
		smg_err("xen: cannot ask d%u to suspend: %s", x->domid, strerror(errno));
		return SMG_ERR_BACKEND;
	}
	for (unsigned waited = 0; waited < SUSPEND_WAIT_MS; waited += SUSPEND_POLL_MS) {
		if (smg_xen_domain_state(x, &di) != 0)
			return SMG_ERR_BACKEND;
		if (di.shutdown && di.shutdown_reason == SHUTDOWN_suspend) {
			x->suspended = true;
			return 0;
		}
		if (di.shutdown || di.crashed || di.dying) {
			smg_err("xen: d%u shut down (reason %u) instead of suspending",
				x->domid, di.shutdown_reason);
			return SMG_ERR_BACKEND;
		}
		usleep(SUSPEND_POLL_MS * 1000);
	}
	/* Withdraw the request so a late guest does not suspend itself. */
	xs_rm(x->xsh, XBT_NULL, path);
	smg_err("xen: d%u did not suspend within %u ms (no PV control driver?)", x->domid,
		SUSPEND_WAIT_MS);
	return SMG_ERR_TIMEOUT;
}

int smg_xen_src_unpause(struct smg_backend *self)
{
	struct xen_backend *x = XEN_SELF(self);

	if (x->committed)
		return SMG_ERR_STATE; /* the destination owns the guest now */
	if (x->suspended) {
		/* fast: the guest sees its suspend cancelled and carries on */
		if (xc_domain_resume(x->xch, x->domid, 1) != 0) {
			smg_err("xen: cannot resume d%u: %s", x->domid, strerror(errno));
			return SMG_ERR_BACKEND;
		}
		x->suspended = false;
	} else if (x->paused) {
		if (xc_domain_unpause(x->xch, x->domid) != 0)
			return SMG_ERR_BACKEND;
		x->paused = false;
	}
	smg_xen_src_clear_pause(x, x->domid); /* it runs here again */
	return 0;
}

int smg_xen_src_throttle(struct smg_backend *self, unsigned pct)
{
	struct xen_backend *x = XEN_SELF(self);
	libxl_domain_sched_params p;
	int r = 0;

	if (!x->have_domain || pct > 99)
		return SMG_ERR_INVAL;
	libxl_domain_sched_params_init(&p);
	if (libxl_domain_sched_params_get(x->ctx, x->domid, &p) != 0) {
		r = SMG_ERR_BACKEND;
		goto out;
	}
	/* credit/credit2 cap: percent of one pCPU per vCPU; 0 = no cap */
	p.cap = pct == 0 ? 0 : (int)(100 - pct);
	if (libxl_domain_sched_params_set(x->ctx, x->domid, &p) != 0) {
		smg_err("xen: cannot cap d%u's CPU time", x->domid);
		r = SMG_ERR_UNSUPPORTED;
	}
out:
	libxl_domain_sched_params_dispose(&p);
	return r;
}

static int add_hvm_context(struct xen_backend *x, struct smg_xs_sink *s)
{
	int sz = xc_domain_hvm_getcontext(x->xch, x->domid, NULL, 0);
	uint8_t *buf;
	int r;

	if (sz <= 0)
		return SMG_ERR_BACKEND;
	if ((buf = malloc((size_t)sz)) == NULL)
		return SMG_ERR_NOMEM;
	sz = xc_domain_hvm_getcontext(x->xch, x->domid, buf, (uint32_t)sz);
	r = sz > 0 ? smg_xs_write_record(s, SMG_XS_REC_HVM_CONTEXT, buf, (size_t)sz)
		   : SMG_ERR_BACKEND;
	free(buf);
	return r;
}

static int add_hvm_params(struct xen_backend *x, struct smg_xs_sink *s)
{
	uint8_t rec[8 + 16 * SMG_ARRAY_LEN(hvm_params)];
	uint32_t count = 0;

	for (size_t i = 0; i < SMG_ARRAY_LEN(hvm_params); i++) {
		uint64_t v = 0;

		if (xc_hvm_param_get(x->xch, x->domid, hvm_params[i], &v) != 0)
			return SMG_ERR_BACKEND;
		if (v == 0)
			continue;
		smg_store_le64(rec + 8 + 16 * count, hvm_params[i]);
		smg_store_le64(rec + 16 + 16 * count, v);
		count++;
	}
	smg_store_le32(rec, count);
	smg_store_le32(rec + 4, 0);
	if (count == 0)
		return 0;
	return smg_xs_write_record(s, SMG_XS_REC_HVM_PARAMS, rec, 8 + 16 * (size_t)count);
}

int smg_xen_src_save_state(struct smg_backend *self, uint8_t **blob, size_t *len)
{
	struct xen_backend *x = XEN_SELF(self);
	struct smg_xs_mem m = {0};
	struct smg_xs_sink s = {smg_xs_mem_write, &m, 0};
	uint8_t tsc[24] = {0};
	uint32_t mode, khz, inc;
	uint64_t nsec;
	int r;

	*blob = NULL;
	*len = 0;
	if (!x->suspended && !x->paused)
		return SMG_ERR_STATE;
	if (xc_domain_get_tsc_info(x->xch, x->domid, &mode, &nsec, &khz, &inc) != 0) {
		r = SMG_ERR_BACKEND;
		goto out;
	}
	smg_store_le32(tsc, mode);
	smg_store_le32(tsc + 4, khz);
	smg_store_le64(tsc + 8, nsec);
	smg_store_le32(tsc + 16, inc);
	if ((r = smg_xs_write_record(&s, SMG_XS_REC_TSC_INFO, tsc, sizeof(tsc))) != 0 ||
	    (r = add_hvm_context(x, &s)) != 0 || (r = add_hvm_params(x, &s)) != 0 ||
	    (r = smg_xen_pop_record(x, &s)) != 0)
		goto out;
	*blob = m.p;
	*len = m.len;
	m.p = NULL;
out:
	if (r != 0)
		smg_err("xen: cannot collect d%u's vCPU/device state: %s", x->domid,
			smg_strerror(r));
	free(m.p);
	return r;
}

/* Record COMMIT in xenstore (it outlives secmig) and rename the source copy
 * away, as xl does, so the destination can take the name on this host. */
int smg_xen_src_mark_commit(struct smg_backend *self, const char *id, const char *peer)
{
	struct xen_backend *x = XEN_SELF(self);
	/* "<id> <peer> <name>": the peer token is up to 255 characters (the
	 * destination's name, key and address, engine.h smg_commit_peer). */
	char path[64], val[400], away[SMG_DOMAIN_NAME_MAX + sizeof(MIGRATED_SUFFIX)];
	int n;

	if (!x->have_domain || (!x->suspended && !x->paused))
		return SMG_ERR_STATE;
	snprintf(path, sizeof(path), COMMIT_PATH_FMT, x->domid);
	n = snprintf(val, sizeof(val), "%s %s %s", id, peer, x->name);
	if (n < 0 || (size_t)n >= sizeof(val))
		return SMG_ERR_TOO_LONG;
	if (!xs_write(x->xsh, XBT_NULL, path, val, strlen(val))) {
		smg_err("xen: cannot record COMMIT in xenstore: %s", strerror(errno));
		return SMG_ERR_BACKEND;
	}
	snprintf(away, sizeof(away), "%s%s", x->name, MIGRATED_SUFFIX);
	if (libxl_domain_rename(x->ctx, x->domid, x->name, away) != 0) {
		xs_rm(x->xsh, XBT_NULL, path);
		smg_err("xen: cannot rename d%u to %s", x->domid, away);
		return SMG_ERR_BACKEND;
	}
	x->committed = true;
	smg_xen_src_clear_pause(x, x->domid); /* superseded by COMMIT */
	return 0;
}

int smg_xen_src_destroy(struct smg_backend *self)
{
	struct xen_backend *x = XEN_SELF(self);
	char path[64];

	if (!x->have_domain || x->domid == 0)
		return SMG_ERR_STATE;
	smg_xen_unmap_chunks(x);
	x->logdirty_on = false; /* dies with the domain */
	if (libxl_domain_destroy(x->ctx, x->domid, NULL) != 0) {
		smg_err("xen: cannot destroy d%u", x->domid);
		return SMG_ERR_BACKEND;
	}
	snprintf(path, sizeof(path), COMMIT_PATH_FMT, x->domid);
	xs_rm(x->xsh, XBT_NULL, path);
	smg_xen_src_clear_pause(x, x->domid);
	x->have_domain = false;
	x->suspended = x->paused = false;
	return 0;
}

/* The xenstore record mark_commit left for a source domain called name:
 * "<id> <peer> <name>" under COMMIT_PATH_FMT's parent, keyed by domid. */
static int find_pending(struct xen_backend *x, const char *name, uint32_t *domid,
			char *id, size_t id_len, char *peer, size_t peer_len)
{
	char **ents, *v, vid[128], vpeer[256], vname[SMG_DOMAIN_NAME_MAX];
	unsigned n = 0;
	int r = SMG_ERR_NOT_FOUND;

	if ((ents = xs_directory(x->xsh, XBT_NULL, "/tool/secmig", &n)) == NULL)
		return SMG_ERR_NOT_FOUND;
	for (unsigned i = 0; i < n && r != 0; i++) {
		char path[64];
		unsigned len;

		snprintf(path, sizeof(path), "/tool/secmig/%s", ents[i]);
		if ((v = xs_read(x->xsh, XBT_NULL, path, &len)) == NULL)
			continue;
		if (sscanf(v, "%127s %255s %63s", vid, vpeer, vname) == 3 &&
		    strcmp(vname, name) == 0) {
			*domid = (uint32_t)strtoul(ents[i], NULL, 10);
			snprintf(id, id_len, "%s", vid);
			snprintf(peer, peer_len, "%s", vpeer);
			r = 0;
		}
		free(v);
	}
	free(ents);
	return r;
}

int smg_xen_src_pending(struct smg_backend *self, const char *name, char *id,
			size_t id_len, char *peer, size_t peer_len)
{
	struct xen_backend *x = XEN_SELF(self);
	uint32_t domid;
	int r;

	if ((r = smg_xen_open_handles(x, true)) != 0)
		return r;
	return find_pending(x, name, &domid, id, id_len, peer, peer_len);
}

/* After an in-doubt COMMIT: the destination resumed (destroy our paused
 * copy) or did not (take the name back and resume it here). */
int smg_xen_src_settle(struct smg_backend *self, const char *name, bool resumed)
{
	struct xen_backend *x = XEN_SELF(self);
	char id[128], peer[256], path[64],
	    away[SMG_DOMAIN_NAME_MAX + sizeof(MIGRATED_SUFFIX)];
	uint32_t domid;
	int r;

	if ((r = smg_xen_open_handles(x, true)) != 0)
		return r;
	r = find_pending(x, name, &domid, id, sizeof(id), peer, sizeof(peer));
	/* no COMMIT: stopped by a sender that died before it (resolve) */
	if (r == SMG_ERR_NOT_FOUND && !resumed)
		return smg_xen_src_settle_paused(x, name);
	if (r != 0)
		return r;
	if (domid == 0)
		return SMG_ERR_PROTO;
	snprintf(path, sizeof(path), COMMIT_PATH_FMT, domid);
	snprintf(away, sizeof(away), "%s%s", name, MIGRATED_SUFFIX);
	if (resumed) {
		if (libxl_domain_destroy(x->ctx, domid, NULL) != 0)
			return SMG_ERR_BACKEND;
	} else {
		if (libxl_domain_rename(x->ctx, domid, away, name) != 0 ||
		    xc_domain_resume(x->xch, domid, 1) != 0) {
			smg_err("xen: cannot give d%u its name back and resume it",
				domid);
			return SMG_ERR_BACKEND;
		}
	}
	xs_rm(x->xsh, XBT_NULL, path);
	return 0;
}

/* Leaving without COMMIT: the guest runs on here exactly as before. */
void smg_xen_src_close(struct xen_backend *x)
{
	if (x->have_domain && !x->committed) {
		if (x->logdirty_on)
			smg_xen_src_logdirty_disable(&x->be);
		if (x->suspended || x->paused)
			smg_xen_src_unpause(&x->be); /* clears the pause record */
		else
			smg_xen_src_clear_pause(x, x->domid); /* it never stopped */
	}
	if (x->bm != NULL)
		xc__hypercall_buffer_free_pages(x->xch, &x->bm_hbuf, (int)x->bm_pages);
	x->bm = NULL;
	smg_xen_pop_free(x);
}
