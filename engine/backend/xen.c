/* The xen backend: engine/backend.h on libxenctrl, libxenforeignmemory,
 * libxenstore and libxl. This file opens the handles, finds domains and
 * holds the ops table; xen_src.c is the sending side, xen_dst.c the
 * receiving side (libxl's own restore fed a synthesised stream). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/base.h"
#include "engine/backend/xen_internal.h"

int smg_xen_open_handles(struct xen_backend *x, bool need_libxl)
{
	if (x->lg == NULL) {
		x->lg = xtl_createlogger_stdiostream(
		    stderr, smg_log_get_level() >= SMG_LOG_DEBUG ? XTL_DEBUG : XTL_ERROR,
		    0);
		if (x->lg == NULL)
			return SMG_ERR_NOMEM;
	}
	if (x->xch == NULL &&
	    (x->xch = xc_interface_open((xentoollog_logger *)x->lg, NULL, 0)) == NULL) {
		smg_err("xen: cannot open libxenctrl (%s): is this a Xen dom0 with "
			"/dev/xen/privcmd?",
			strerror(errno));
		return SMG_ERR_BACKEND;
	}
	if (x->fmem == NULL &&
	    (x->fmem = xenforeignmemory_open((xentoollog_logger *)x->lg, 0)) == NULL) {
		smg_err("xen: xenforeignmemory_open: %s", strerror(errno));
		return SMG_ERR_BACKEND;
	}
	if (x->xsh == NULL && (x->xsh = xs_open(0)) == NULL) {
		smg_err("xen: cannot reach xenstored: %s", strerror(errno));
		return SMG_ERR_BACKEND;
	}
	if (need_libxl && x->ctx == NULL &&
	    libxl_ctx_alloc(&x->ctx, LIBXL_VERSION, 0, (xentoollog_logger *)x->lg) != 0) {
		smg_err("xen: libxl_ctx_alloc failed");
		x->ctx = NULL;
		return SMG_ERR_BACKEND;
	}
	return 0;
}

int smg_xen_domain_state(struct xen_backend *x, xc_dominfo_t *info)
{
	if (xc_domain_getinfo(x->xch, x->domid, 1, info) != 1 || info->domid != x->domid)
		return SMG_ERR_NOT_FOUND;
	return 0;
}

/* A number is a domid; anything else is looked up by name in xenstore
 * (/local/domain/<id>/name), which is how xl names domains too. */
int smg_xen_find_domain(struct xen_backend *x, const char *name_or_id)
{
	char *end, **doms;
	unsigned n = 0;
	unsigned long id;
	int r = SMG_ERR_NOT_FOUND;

	errno = 0;
	id = strtoul(name_or_id, &end, 10);
	if (name_or_id[0] != '\0' && *end == '\0' && errno == 0 &&
	    id < DOMID_FIRST_RESERVED) {
		x->domid = (uint32_t)id;
		return 0;
	}
	doms = xs_directory(x->xsh, XBT_NULL, "/local/domain", &n);
	if (doms == NULL) {
		smg_err("xen: cannot list /local/domain in xenstore: %s",
			strerror(errno));
		return SMG_ERR_BACKEND;
	}
	for (unsigned i = 0; i < n && r != 0; i++) {
		char path[64], *v;
		unsigned len;

		snprintf(path, sizeof(path), "/local/domain/%s/name", doms[i]);
		v = xs_read(x->xsh, XBT_NULL, path, &len);
		if (v != NULL && strcmp(v, name_or_id) == 0) {
			x->domid = (uint32_t)strtoul(doms[i], NULL, 10);
			r = 0;
		}
		free(v);
	}
	free(doms);
	if (r != 0)
		smg_err("xen: no domain named '%s' (see 'xl list')", name_or_id);
	return r;
}

static void xen_close(struct smg_backend *self)
{
	struct xen_backend *x = XEN_SELF(self);

	smg_xen_src_close(x);
	smg_xen_dst_close(x);
	smg_xen_unmap_chunks(x);
	pthread_mutex_destroy(&x->chunk_lock);
	pthread_rwlock_destroy(&x->map_lock);
	if (x->ctx != NULL)
		libxl_ctx_free(x->ctx);
	if (x->xsh != NULL)
		xs_close(x->xsh);
	if (x->fmem != NULL)
		xenforeignmemory_close(x->fmem);
	if (x->xch != NULL)
		xc_interface_close(x->xch);
	if (x->lg != NULL)
		xtl_logger_destroy((xentoollog_logger *)x->lg);
	free(x->config);
	free(x);
}

static int xen_destroy(struct smg_backend *self)
{
	struct xen_backend *x = XEN_SELF(self);

	return x->is_dst ? smg_xen_dst_destroy(x) : smg_xen_src_destroy(self);
}

static const struct smg_backend_ops xen_ops = {
    .name = "xen",
    .close = xen_close,
    .domain_open = smg_xen_src_open,
    .populated = smg_xen_src_populated,
    .logdirty_enable = smg_xen_src_logdirty_enable,
    .logdirty_peek_clear = smg_xen_src_logdirty_peek_clear,
    .logdirty_disable = smg_xen_src_logdirty_disable,
    .read_pages = smg_xen_src_read_pages,
    .pause = smg_xen_src_pause,
    .unpause = smg_xen_src_unpause,
    .throttle = smg_xen_src_throttle,
    .save_state = smg_xen_src_save_state,
    .mark_commit = smg_xen_src_mark_commit,
    .destroy = xen_destroy,
    .domain_pending = smg_xen_src_pending,
    .domain_settle = smg_xen_src_settle,
    .mark_pause = smg_xen_src_mark_pause,
    .paused_pending = smg_xen_src_paused_pending,
    .domain_create = smg_xen_dst_create,
    .write_pages = smg_xen_dst_write_pages,
    .restore_state = smg_xen_dst_restore_state,
    .mark_committed = smg_xen_dst_mark_committed,
    .resume = smg_xen_dst_resume,
    .resume_committed = smg_xen_dst_resume_committed,
};

int smg_backend_xen_open(const struct smg_backend_opts *opts, struct smg_backend **out)
{
	struct xen_backend *x;

	*out = NULL;
	if ((x = calloc(1, sizeof(*x))) == NULL)
		return SMG_ERR_NOMEM;
	x->be.ops = &xen_ops;
	x->pipe_w = -1;
	x->new_domid = (uint32_t)INVALID_DOMID;
	pthread_mutex_init(&x->chunk_lock, NULL);
	pthread_rwlock_init(&x->map_lock, NULL);
	(void)opts;
	/* Handles open lazily in domain_open/domain_create, so a build on a
	 * machine without Xen can still list and open the backend. */
	*out = &x->be;
	return 0;
}
