/* xen backend, receiving side: libxl builds and restores the domain with
 * its own code (libxl_domain_create_restore -> libxl-save-helper ->
 * xc_domain_restore), reading a libxl v2 stream that we synthesise on the
 * fly from what arrives: pages during pre-copy become PAGE_DATA records as
 * they come (a page sent again simply overwrites), the final state becomes
 * TSC/HVM records, then END. The domain carries a temporary name until
 * COMMIT and is destroyed, never unpaused, if anything fails before it. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/base.h"
#include "engine/backend/libxl_vet.h"
#include "engine/backend/xen_internal.h"

static int sock_write(void *opaque, const void *buf, size_t len)
{
	struct xen_backend *x = opaque;
	const uint8_t *p = buf;

	while (len > 0) {
		/* MSG_NOSIGNAL: a restore that died must not kill us with SIGPIPE */
		ssize_t n = send(x->pipe_w, p, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			smg_err("xen: libxl stopped reading the restore stream: %s",
				strerror(errno));
			return SMG_ERR_BACKEND;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

struct restore_args {
	struct xen_backend *x;
	int fd;
};

static void *restore_main(void *arg)
{
	struct restore_args *a = arg;
	struct xen_backend *x = a->x;
	libxl_domain_restore_params p;
	uint32_t domid = (uint32_t)INVALID_DOMID;
	int rc;

	libxl_domain_restore_params_init(&p);
	p.checkpointed_stream = LIBXL_CHECKPOINTED_STREAM_NONE;
	p.stream_version = 2;
	rc = libxl_domain_create_restore(x->ctx, &x->dcfg, &domid, a->fd, -1, &p, NULL,
					 NULL);
	libxl_domain_restore_params_dispose(&p);
	close(a->fd);
	x->new_domid = domid;
	x->restore_rc = rc;
	free(a);
	return NULL;
}

/* An incoming copy is paused and uncommitted by construction (COMMIT
 * renames it): one still carrying the temporary name was left by a receiver
 * that died, and never ran. Anything else with that name is not ours. */
static int clear_stale(struct xen_backend *x, const char *tmp)
{
	xc_dominfo_t di;
	uint32_t id;

	if (libxl_name_to_domid(x->ctx, tmp, &id) != 0)
		return 0;
	if (id == 0 || xc_domain_getinfo(x->xch, id, 1, &di) != 1 || di.domid != id ||
	    !(di.paused || di.shutdown)) {
		smg_err("xen: a running domain is named %s; not touching it", tmp);
		return SMG_ERR_EXISTS;
	}
	smg_warn("xen: destroying d%u '%s', an incoming copy a dead receiver left", id,
		 tmp);
	return libxl_domain_destroy(x->ctx, id, NULL) == 0 ? 0 : SMG_ERR_BACKEND;
}

static int start_restore(struct xen_backend *x)
{
	struct restore_args *a;
	int sv[2];

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
		return smg_err_sys(errno);
	if ((a = malloc(sizeof(*a))) == NULL) {
		close(sv[0]);
		close(sv[1]);
		return SMG_ERR_NOMEM;
	}
	a->x = x;
	a->fd = sv[1];
	x->pipe_w = sv[0];
	x->restore_rc = ERROR_FAIL;
	if (pthread_create(&x->restore_thread, NULL, restore_main, a) != 0) {
		free(a);
		close(sv[0]);
		close(sv[1]);
		x->pipe_w = -1;
		return SMG_ERR_SYS;
	}
	x->restore_running = true;
	return 0;
}

/* Stop feeding libxl and wait for it. Returns libxl's result. */
static int finish_restore(struct xen_backend *x)
{
	if (!x->restore_running)
		return x->restore_rc;
	if (x->pipe_w >= 0) {
		shutdown(x->pipe_w, SHUT_WR);
		close(x->pipe_w);
		x->pipe_w = -1;
	}
	pthread_join(x->restore_thread, NULL);
	x->restore_running = false;
	return x->restore_rc;
}

static int write_prologue(struct xen_backend *x)
{
	struct smg_xs_sink *s = &x->sink;
	int r;

	if ((r = smg_xs_write_libxl_header(s)) != 0 ||
	    (r = smg_xs_write_libxl_libxc_context(s)) != 0 ||
	    (r = smg_xs_write_headers(s, x->cfg.dhdr_type, x->cfg.xen_major,
				      x->cfg.xen_minor)) != 0)
		return r;
	/* Static data: the source's CPU policy, applied before any page. */
	if (x->cfg.cpuid_len &&
	    (r = smg_xs_write_record(s, SMG_XS_REC_CPUID_POLICY, x->cfg.cpuid,
				     x->cfg.cpuid_len)) != 0)
		return r;
	if (x->cfg.msr_len && (r = smg_xs_write_record(s, SMG_XS_REC_MSR_POLICY,
						       x->cfg.msr, x->cfg.msr_len)) != 0)
		return r;
	return smg_xs_write_record(s, SMG_XS_REC_STATIC_DATA_END, NULL, 0);
}

int smg_xen_dst_create(struct smg_backend *self, const uint8_t *config, size_t len,
		       struct smg_vm_build *build, struct smg_domain_info *info)
{
	struct xen_backend *x = XEN_SELF(self);
	char *json = NULL, tmp[SMG_DOMAIN_NAME_MAX + sizeof(XEN_INCOMING_SUFFIX)];
	char name[SMG_DOMAIN_NAME_MAX];
	int r;

	memset(info, 0, sizeof(*info));
	if (x->have_domain || x->restore_running || x->config != NULL || build == NULL ||
	    build->def == NULL)
		return SMG_ERR_STATE;
	if ((x->config = malloc(len ? len : 1)) == NULL)
		return SMG_ERR_NOMEM;
	memcpy(x->config, config, len);
	x->config_len = len;
	if ((r = smg_xen_config_parse(x->config, len, &x->cfg)) != 0) {
		smg_peer_log(SMG_LOG_ERROR,
			     "xen: the peer's domain config is malformed: %s",
			     smg_strerror(r));
		return r;
	}
	if (x->cfg.vcpus != build->vcpus ||
	    x->cfg.p2m_size * SMG_XS_PAGE_SIZE != build->memory_bytes) {
		snprintf(build->why, sizeof(build->why),
			 "xen: the config's vCPUs or memory differ from the plan's");
		return SMG_ERR_POLICY;
	}
	/* The sender's libxl config is a request: only its allow-listed
	 * fields survive, disks/vifs/kernel/firmware come from this host. */
	if ((r = smg_libxl_vet((const char *)x->cfg.json, x->cfg.json_len, build, &json,
			       name, sizeof(name), build->why, sizeof(build->why))) !=
	    0) {
		smg_err("%s", build->why);
		return r;
	}
	if ((r = smg_xen_open_handles(x, true)) != 0) {
		free(json);
		return r;
	}
	libxl_domain_config_init(&x->dcfg);
	x->dcfg_init = true;
	if (libxl_domain_config_from_json(x->ctx, &x->dcfg, json) != 0 ||
	    x->dcfg.c_info.name == NULL || strcmp(x->dcfg.c_info.name, name) != 0) {
		free(json);
		smg_peer_log(SMG_LOG_ERROR,
			     "xen: the peer's libxl config does not parse");
		return SMG_ERR_CONFIG;
	}
	free(json);
	if (x->dcfg.c_info.type != LIBXL_DOMAIN_TYPE_PVH &&
	    x->dcfg.c_info.type != LIBXL_DOMAIN_TYPE_HVM) {
		smg_err("xen: only HVM and PVH guests are received");
		return SMG_ERR_UNSUPPORTED;
	}
	snprintf(x->final_name, sizeof(x->final_name), "%s", x->dcfg.c_info.name);
	snprintf(tmp, sizeof(tmp), "%s%s", x->final_name, XEN_INCOMING_SUFFIX);
	if ((r = clear_stale(x, tmp)) != 0)
		return r;
	free(x->dcfg.c_info.name);
	if ((x->dcfg.c_info.name = strdup(tmp)) == NULL)
		return SMG_ERR_NOMEM;
	x->p2m_size = x->cfg.p2m_size;
	if ((x->sent = calloc((size_t)((x->p2m_size + 63) / 64), 8)) == NULL ||
	    (x->zeroed = calloc((size_t)((x->p2m_size + 63) / 64), 8)) == NULL)
		return SMG_ERR_NOMEM;
	pthread_mutex_init(&x->sink_lock, NULL);
	x->sink = (struct smg_xs_sink){sock_write, x, 0};
	if ((r = start_restore(x)) != 0)
		return r;
	if ((r = write_prologue(x)) != 0) {
		finish_restore(x);
		return r;
	}
	x->have_domain = true;
	x->is_dst = true;
	snprintf(info->name, sizeof(info->name), "%s", x->final_name);
	info->pages = x->p2m_size;
	info->page_size = SMG_XS_PAGE_SIZE;
	info->vcpus = x->cfg.vcpus;
	info->config = x->config;
	info->config_len = x->config_len;
	smg_info("xen: restoring '%s' as %s (%llu frames)", x->final_name, tmp,
		 (unsigned long long)x->p2m_size);
	return 0;
}

int smg_xen_dst_write_pages(struct smg_backend *self, const uint64_t *pfns, size_t n,
			    const uint8_t *data, bool zero_only)
{
	static const uint8_t zero[SMG_XS_PAGE_SIZE];
	struct xen_backend *x = XEN_SELF(self);
	int r = 0;

	if (!x->have_domain || x->stream_done)
		return SMG_ERR_STATE;
	for (size_t i = 0; i < n; i++)
		if (pfns[i] >= x->p2m_size)
			return SMG_ERR_PROTO;
	pthread_mutex_lock(&x->sink_lock);
	/* Frames with data: PAGE_DATA records (libxc populates them), one per
	 * run of up to a batch. Any frame below the physmap's size may come:
	 * the guest can populate frames during the migration; which ones it
	 * has at the end comes with the state. */
	for (size_t i = 0; !zero_only && i < n && r == 0; i += SMG_XS_BATCH_MAX) {
		size_t k = n - i < SMG_XS_BATCH_MAX ? n - i : SMG_XS_BATCH_MAX;

		r = smg_xs_write_page_data(&x->sink, pfns + i, k,
					   data + i * SMG_XS_PAGE_SIZE,
					   k * SMG_XS_PAGE_SIZE);
		for (size_t j = 0; r == 0 && j < k; j++) {
			uint64_t p = pfns[i + j], bit = UINT64_C(1) << (p % 64);

			x->sent[p / 64] |= bit;
			x->zeroed[p / 64] &= ~bit;
		}
	}
	/* A zero frame never written needs no data: restore_state allocates
	 * it if it is in the final set (Xen hands out scrubbed frames). One
	 * that held data must be overwritten, once: it holds zeros until a
	 * page comes for it again (repeated zero records cost nothing). */
	for (size_t i = 0; zero_only && i < n && r == 0; i++) {
		uint64_t p = pfns[i], bit = UINT64_C(1) << (p % 64);

		if (!(x->sent[p / 64] & bit))
			continue;
		r = smg_xs_write_page_data(&x->sink, &pfns[i], 1, zero, sizeof(zero));
		x->sent[p / 64] &= ~bit;
		x->zeroed[p / 64] |= bit;
	}
	pthread_mutex_unlock(&x->sink_lock);
	return r;
}

static int splice_state(void *opaque, uint32_t type, const uint8_t *body, size_t len)
{
	if (type == SMG_XC_REC_RAM)
		return 0; /* ours, taken out by smg_xen_state_parse */
	return smg_xs_write_record(opaque, type, body, len);
}

/* Frames of the final set never written (zero on the source, never
 * dirtied) must still exist here: allocate them before the state, as
 * XALLOC entries. */
static int populate_rest(struct xen_backend *x, uint64_t *count)
{
	uint64_t batch[SMG_XS_BATCH_MAX];
	size_t k = 0;
	int r = 0;

	*count = 0;
	for (uint64_t p = 0; p < x->p2m_size && r == 0; p++) {
		if (!(x->pop[p / 64] >> (p % 64) & 1) ||
		    ((x->sent[p / 64] | x->zeroed[p / 64]) >> (p % 64) & 1))
			continue;
		batch[k++] = SMG_XS_TYPE_XALLOC << SMG_XS_TYPE_SHIFT | p;
		(*count)++;
		if (k == SMG_XS_BATCH_MAX) {
			r = smg_xs_write_page_data(&x->sink, batch, k, NULL, 0);
			k = 0;
		}
	}
	if (r == 0 && k > 0)
		r = smg_xs_write_page_data(&x->sink, batch, k, NULL, 0);
	return r;
}

/* Frames written during pre-copy that the guest gave back before it
 * stopped: hand them back to Xen on the restored, paused domain, as the
 * guest's balloon driver did on the source. */
static int release_gone(struct xen_backend *x, uint64_t *count)
{
	xen_pfn_t batch[SMG_XS_BATCH_MAX];
	size_t k = 0;
	int r = 0;

	*count = 0;
	for (uint64_t p = 0; p <= x->p2m_size && r == 0; p++) {
		bool gone = p < x->p2m_size &&
			    ((x->sent[p / 64] | x->zeroed[p / 64]) >> (p % 64) & 1) &&
			    !(x->pop[p / 64] >> (p % 64) & 1);

		if (gone)
			batch[k++] = p;
		if (k > 0 && (k == SMG_XS_BATCH_MAX || p == x->p2m_size)) {
			if (xc_domain_decrease_reservation_exact(x->xch, x->new_domid, k,
								 0, batch) != 0) {
				smg_err("xen: cannot release %zu frames of d%u: %s", k,
					x->new_domid, strerror(errno));
				r = SMG_ERR_BACKEND;
			}
			*count += k;
			k = 0;
		}
	}
	return r;
}

int smg_xen_dst_restore_state(struct smg_backend *self, const uint8_t *blob, size_t len)
{
	struct xen_backend *x = XEN_SELF(self);
	struct smg_xen_state st;
	uint64_t t0, t1, alloc = 0, released = 0;
	size_t words = (size_t)((x->p2m_size + 63) / 64);
	int r, rc;

	if (!x->have_domain || x->stream_done)
		return SMG_ERR_STATE;
	/* Check the whole blob before any of it reaches libxc. */
	if ((r = smg_xen_state_parse(blob, len, x->p2m_size, &st)) != 0) {
		smg_peer_log(SMG_LOG_ERROR,
			     "xen: the peer's vCPU/device state is malformed: %s",
			     smg_strerror(r));
		return r;
	}
	free(x->pop);
	if ((x->pop = calloc(words, sizeof(uint64_t))) == NULL) {
		smg_xen_state_free(&st);
		return SMG_ERR_NOMEM;
	}
	smg_xf_bitmap_set_ranges(x->pop, (const uint64_t(*)[2])st.ranges, st.n_ranges);
	x->n_pop = smg_xf_ranges_frames((const uint64_t(*)[2])st.ranges, st.n_ranges);
	smg_xen_state_free(&st);
	t0 = smg_now_ms();
	pthread_mutex_lock(&x->sink_lock);
	x->stream_done = true;
	if ((r = populate_rest(x, &alloc)) == 0 &&
	    (r = smg_xs_parse_records(blob, len, SMG_XS_STATE_ALLOWED, splice_state,
				      &x->sink)) == 0 &&
	    (r = smg_xs_write_record(&x->sink, SMG_XS_REC_END, NULL, 0)) == 0)
		r = smg_xs_write_libxl_end(&x->sink);
	pthread_mutex_unlock(&x->sink_lock);
	t1 = smg_now_ms();
	rc = finish_restore(x);
	smg_info("xen: stream end written in %llu ms, libxl finished %llu ms later",
		 (unsigned long long)(t1 - t0), (unsigned long long)(smg_now_ms() - t1));
	if (r == 0 && rc != 0) {
		smg_err("xen: libxl could not restore '%s' (libxl error %d)",
			x->final_name, rc);
		r = SMG_ERR_BACKEND;
	}
	if (r == 0)
		x->domid = x->new_domid; /* read_pages now sees the incoming copy */
	if (r == 0)
		r = release_gone(x, &released);
	if (r == 0)
		smg_info("xen: '%s' restored as d%u (paused): %llu frames populated "
			 "(Xen counts %lu pages; %llu allocated empty, %llu given "
			 "back), %llu stream bytes",
			 x->final_name, x->new_domid, (unsigned long long)x->n_pop,
			 smg_xen_tot_pages(x, x->new_domid), (unsigned long long)alloc,
			 (unsigned long long)released, (unsigned long long)x->sink.bytes);
	return r;
}

int smg_xen_dst_mark_committed(struct smg_backend *self)
{
	struct xen_backend *x = XEN_SELF(self);

	if (!x->stream_done || x->restore_rc != 0 ||
	    x->new_domid == (uint32_t)INVALID_DOMID)
		return SMG_ERR_STATE;
	if (libxl_domain_rename(x->ctx, x->new_domid, x->dcfg.c_info.name,
				x->final_name) != 0) {
		smg_err("xen: cannot rename d%u to '%s' (does the source copy still "
			"carry that name on this host?)",
			x->new_domid, x->final_name);
		return SMG_ERR_BACKEND;
	}
	x->committed = true;
	return 0;
}

int smg_xen_dst_resume(struct smg_backend *self)
{
	struct xen_backend *x = XEN_SELF(self);

	if (!x->committed)
		return SMG_ERR_STATE; /* never run an unverified copy */
	if (libxl_domain_unpause(x->ctx, x->new_domid, NULL) != 0) {
		smg_err("xen: cannot unpause d%u", x->new_domid);
		return SMG_ERR_BACKEND;
	}
	return 0;
}

/* The engine's abort: stop the restore (libxl then destroys what it
 * built) or destroy the restored, uncommitted copy. Never a committed one. */
int smg_xen_dst_destroy(struct xen_backend *x)
{
	if (x->committed)
		return SMG_ERR_STATE;
	if (x->restore_running)
		finish_restore(x);
	if (x->stream_done && x->restore_rc == 0 &&
	    x->new_domid != (uint32_t)INVALID_DOMID && x->new_domid != 0) {
		smg_xen_unmap_chunks(x);
		if (libxl_domain_destroy(x->ctx, x->new_domid, NULL) != 0)
			return SMG_ERR_BACKEND;
		x->new_domid = (uint32_t)INVALID_DOMID;
	}
	x->have_domain = false;
	return 0;
}

/* A committed incoming domain left paused by a receiver that died. */
int smg_xen_dst_resume_committed(struct smg_backend *self, const char *name)
{
	struct xen_backend *x = XEN_SELF(self);
	uint32_t domid;
	int r;

	if ((r = smg_xen_open_handles(x, true)) != 0)
		return r;
	if (libxl_name_to_domid(x->ctx, name, &domid) != 0 || domid == 0)
		return SMG_ERR_NOT_FOUND;
	return libxl_domain_unpause(x->ctx, domid, NULL) == 0 ? 0 : SMG_ERR_BACKEND;
}

/* Without COMMIT the incoming copy goes: libxl destroys a domain whose
 * restore failed; one that restored but was never committed we destroy. */
void smg_xen_dst_close(struct xen_backend *x)
{
	if (x->restore_running)
		finish_restore(x);
	if (x->stream_done && x->restore_rc == 0 && !x->committed &&
	    x->new_domid != (uint32_t)INVALID_DOMID && x->ctx != NULL) {
		smg_warn("xen: destroying the uncommitted incoming copy d%u",
			 x->new_domid);
		libxl_domain_destroy(x->ctx, x->new_domid, NULL);
	}
	if (x->dcfg_init)
		libxl_domain_config_dispose(&x->dcfg);
	x->dcfg_init = false;
	if (x->sent != NULL)
		pthread_mutex_destroy(&x->sink_lock);
	free(x->sent);
	free(x->zeroed);
	x->sent = NULL;
	x->zeroed = NULL;
	free(x->pop);
	x->pop = NULL;
}
