/* The source's pause record (DESIGN §7): Xen has no lease that resumes a
 * guest whose sender died, so before the guest is asked to suspend the
 * sender writes "<id> <peer> <name>" to xenstore (which outlives it) under
 * PAUSE_DIR/<domid>. COMMIT supersedes it (mark_commit removes it); a clean
 * unpause or the destroy after DONE removes it. What is left belongs to a
 * sender that died between pause and COMMIT: the guest never ran anywhere
 * else, and `secmig resolve` resumes it here without asking. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "engine/backend/xen_internal.h"

#include <xen/sched.h>

#define PAUSE_DIR "/tool/secmig-paused"

static void pause_path(char *path, size_t n, uint32_t domid)
{
	snprintf(path, n, PAUSE_DIR "/%u", domid);
}

int smg_xen_src_mark_pause(struct smg_backend *self, const char *id, const char *peer)
{
	struct xen_backend *x = XEN_SELF(self);
	char path[64], val[400];
	int n;

	if (!x->have_domain || x->domid == 0)
		return SMG_ERR_STATE;
	pause_path(path, sizeof(path), x->domid);
	n = snprintf(val, sizeof(val), "%s %s %s", id, peer, x->name);
	if (n < 0 || (size_t)n >= sizeof(val))
		return SMG_ERR_TOO_LONG;
	if (!xs_write(x->xsh, XBT_NULL, path, val, (unsigned)n)) {
		smg_err("xen: cannot record the pause in xenstore: %s", strerror(errno));
		return SMG_ERR_BACKEND;
	}
	return 0;
}

void smg_xen_src_clear_pause(struct xen_backend *x, uint32_t domid)
{
	char path[64];

	pause_path(path, sizeof(path), domid);
	xs_rm(x->xsh, XBT_NULL, path);
}

/* The domain a pause record names, if it is still that domain and still
 * stopped (suspended or paused): a record whose domain is gone or runs is
 * stale and removed. */
static bool still_stopped(struct xen_backend *x, uint32_t domid, const char *name)
{
	char path[64], *v;
	unsigned len;
	xc_dominfo_t di;
	bool ok;

	snprintf(path, sizeof(path), "/local/domain/%u/name", domid);
	if ((v = xs_read(x->xsh, XBT_NULL, path, &len)) == NULL)
		return false;
	ok = strcmp(v, name) == 0 && xc_domain_getinfo(x->xch, domid, 1, &di) == 1 &&
	     di.domid == domid && !di.dying && !di.crashed &&
	     ((di.shutdown && di.shutdown_reason == SHUTDOWN_suspend) || di.paused);
	free(v);
	return ok;
}

/* The pause record of a source domain called name -> its domid, id, peer. */
static int find_paused(struct xen_backend *x, const char *name, uint32_t *domid, char *id,
		       size_t id_len, char *peer, size_t peer_len)
{
	char **ents, *v, vid[128], vpeer[256], vname[SMG_DOMAIN_NAME_MAX];
	unsigned n = 0;
	int r = SMG_ERR_NOT_FOUND;

	if ((ents = xs_directory(x->xsh, XBT_NULL, PAUSE_DIR, &n)) == NULL)
		return SMG_ERR_NOT_FOUND;
	for (unsigned i = 0; i < n && r != 0; i++) {
		char path[64];
		unsigned len;
		uint32_t d = (uint32_t)strtoul(ents[i], NULL, 10);

		pause_path(path, sizeof(path), d);
		if ((v = xs_read(x->xsh, XBT_NULL, path, &len)) == NULL)
			continue;
		if (sscanf(v, "%127s %255s %63s", vid, vpeer, vname) == 3 &&
		    strcmp(vname, name) == 0) {
			if (d != 0 && still_stopped(x, d, name)) {
				*domid = d;
				snprintf(id, id_len, "%s", vid);
				snprintf(peer, peer_len, "%s", vpeer);
				r = 0;
			} else {
				smg_xen_src_clear_pause(x, d); /* stale */
			}
		}
		free(v);
	}
	free(ents);
	return r;
}

int smg_xen_src_paused_pending(struct smg_backend *self, const char *name, char *id,
			       size_t id_len, char *peer, size_t peer_len)
{
	struct xen_backend *x = XEN_SELF(self);
	uint32_t domid;
	int r;

	if ((r = smg_xen_open_handles(x, true)) != 0)
		return r;
	return find_paused(x, name, &domid, id, id_len, peer, peer_len);
}

/* resolve, no COMMIT: the guest a dead sender left stopped resumes here. */
int smg_xen_src_settle_paused(struct xen_backend *x, const char *name)
{
	char id[128], peer[256];
	uint32_t domid;
	xc_dominfo_t di;
	int r;

	if ((r = find_paused(x, name, &domid, id, sizeof(id), peer, sizeof(peer))) != 0)
		return r;
	if (xc_domain_getinfo(x->xch, domid, 1, &di) != 1 || di.domid != domid)
		return SMG_ERR_NOT_FOUND;
	if (di.shutdown) {
		/* fast: the guest sees its suspend cancelled and carries on */
		if (xc_domain_resume(x->xch, domid, 1) != 0) {
			smg_err("xen: cannot resume d%u: %s", domid, strerror(errno));
			return SMG_ERR_BACKEND;
		}
	} else if (xc_domain_unpause(x->xch, domid) != 0) {
		smg_err("xen: cannot unpause d%u: %s", domid, strerror(errno));
		return SMG_ERR_BACKEND;
	}
	smg_info("xen: resumed d%u ('%s'), left stopped by the sender of %s", domid, name,
		 id);
	smg_xen_src_clear_pause(x, domid);
	return 0;
}
