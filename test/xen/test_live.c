/* The xen backend against a real hypervisor, driven the way the engine
 * drives a backend but in one process and without the network: source and
 * destination handles on one dom0 (same-host migration, as `xl migrate
 * localhost`). Skips (77) only where this is no Xen dom0; test_nested.sh
 * runs it inside the nested Xen:
 *   test_xen_live                without arguments (ctest on a dom0): the
 *                                backend refuses dom0 and a missing domain
 *   test_xen_live abort DOMAIN   open, log-dirty rounds, start an incoming
 *                                copy, drop it mid-pre-copy, close: the
 *                                guest must run on, log-dirty off
 *   test_xen_live migrate DOMAIN the whole pre-copy / suspend / state /
 *                                commit / resume / destroy sequence
 * Prints SMG-LIVE lines the host greps. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"

#if SMG_HAVE_XEN
#include <xenctrl.h>

#include "base/base.h"
#include "engine/backend.h"

#define BATCH	   256
#define MAX_ROUNDS 10
#define STOP_DIRTY 64 /* our own stop rule: few enough to send paused */

struct mig {
	struct smg_backend *src, *dst;
	struct smg_domain_info si, di;
	uint64_t *bm;
	uint8_t *buf;
	uint64_t sent_pages, zero_pages;
};

static bool is_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != 0)
			return false;
	return true;
}

/* Send the frames set in bm (all when bm is NULL) from src to dst. */
static int send_set(struct mig *m, const uint64_t *bm)
{
	uint64_t pfns[BATCH], cur = 0, n_all = m->si.pages;
	size_t ps = m->si.page_size;
	int r;

	for (;;) {
		size_t n = 0;

		if (bm == NULL) {
			while (cur < n_all && n < BATCH)
				pfns[n++] = cur++;
		} else {
			while (cur < n_all && n < BATCH) {
				if (bm[cur / 64] & (UINT64_C(1) << (cur % 64)))
					pfns[n++] = cur;
				cur++;
			}
		}
		if (n == 0)
			return 0;
		if ((r = m->src->ops->read_pages(m->src, pfns, n, m->buf)) != 0)
			return r;
		/* one write per run of zero or non-zero frames, as the engine
		 * batches a bulk frame */
		for (size_t i = 0; i < n;) {
			bool z = is_zero(m->buf + i * ps, ps);
			size_t j = i + 1;

			while (j < n && is_zero(m->buf + j * ps, ps) == z)
				j++;
			r = m->dst->ops->write_pages(m->dst, &pfns[i], j - i,
						     m->buf + i * ps, z);
			if (r != 0)
				return r;
			m->sent_pages += j - i;
			m->zero_pages += z ? j - i : 0;
			i = j;
		}
	}
}

/* Round 0: the populated frames, as the engine sends them. */
static int first_round(struct mig *m)
{
	uint64_t n = 0;
	int r;

	memset(m->bm, 0, (m->si.pages + 63) / 64 * 8);
	if ((r = m->src->ops->populated(m->src, m->bm, &n)) != 0)
		return r;
	printf("SMG-LIVE populated: %llu of %llu frames\n", (unsigned long long)n,
	       (unsigned long long)m->si.pages);
	return send_set(m, m->bm);
}

static int harvest(struct mig *m, uint64_t *dirty)
{
	memset(m->bm, 0, (m->si.pages + 63) / 64 * 8);
	return m->src->ops->logdirty_peek_clear(m->src, m->bm, dirty);
}

static int open_pair(struct mig *m, const char *dom)
{
	int r;

	memset(m, 0, sizeof(*m));
	if ((r = smg_backend_open("xen", NULL, &m->src)) != 0 ||
	    (r = smg_backend_open("xen", NULL, &m->dst)) != 0)
		return r;
	if ((r = m->src->ops->domain_open(m->src, dom, &m->si)) != 0)
		return r;
	printf("SMG-LIVE opened '%s' pages=%llu vcpus=%u config=%zu bytes\n", m->si.name,
	       (unsigned long long)m->si.pages, m->si.vcpus, m->si.config_len);
	m->bm = calloc((m->si.pages + 63) / 64, 8);
	m->buf = malloc(BATCH * (size_t)m->si.page_size);
	if (m->bm == NULL || m->buf == NULL)
		return SMG_ERR_NOMEM;
	return 0;
}

/* The destination builds from its own definition: here one that takes the
 * source's NICs on xenbr0 and has no disks (the bed's guest boots from
 * its kernel alone; docs/hostdef.md). */
static int create_dst(struct mig *m)
{
	static struct smg_hostdef_vm def = {
	    .pattern = "*", .types = SMG_HOSTDEF_TYPE_PVH | SMG_HOSTDEF_TYPE_HVM};
	static struct smg_vm_build b;

	memset(&b, 0, sizeof(b));
	b.def = &def;
	b.memory_bytes = m->si.pages * m->si.page_size;
	b.vcpus = m->si.vcpus;
	b.n_nics = m->si.n_nics;
	for (unsigned i = 0; i < m->si.n_nics; i++) {
		b.nics[i] = m->si.nics[i];
		snprintf(b.bridge[i], sizeof(b.bridge[i]), "xenbr0");
	}
	int r = m->dst->ops->domain_create(m->dst, m->si.config, m->si.config_len, &b,
					   &m->di);
	if (r != 0 && b.why[0] != '\0')
		printf("SMG-LIVE refused: %s\n", b.why);
	return r;
}

static void close_pair(struct mig *m)
{
	smg_backend_close(m->dst);
	smg_backend_close(m->src);
	free(m->bm);
	free(m->buf);
}

static int do_abort(const char *dom)
{
	struct mig m;
	uint64_t dirty = 0;
	int r;

	if ((r = open_pair(&m, dom)) != 0)
		goto out;
	if ((r = m.src->ops->logdirty_enable(m.src)) != 0 || (r = create_dst(&m)) != 0)
		goto out;
	if ((r = first_round(&m)) != 0 || (r = harvest(&m, &dirty)) != 0)
		goto out;
	printf("SMG-LIVE abort: round 0 sent %llu frames, round 1 dirty %llu\n",
	       (unsigned long long)m.sent_pages, (unsigned long long)dirty);
	/* the receiver goes away mid-pre-copy */
	smg_backend_close(m.dst);
	m.dst = NULL;
	printf("SMG-LIVE abort: receiver dropped\n");
out:
	close_pair(&m); /* source: log-dirty off, guest untouched */
	return r;
}

static int do_migrate(const char *dom)
{
	struct mig m;
	uint64_t dirty = 0;
	uint8_t *state = NULL;
	size_t state_len = 0;
	int r, round;

	if ((r = open_pair(&m, dom)) != 0)
		goto out;
	if ((r = create_dst(&m)) != 0 || (r = m.src->ops->logdirty_enable(m.src)) != 0 ||
	    (r = first_round(&m)) != 0)
		goto out;
	printf("SMG-LIVE round 0: %llu frames (%llu zero) of %llu in the physmap\n",
	       (unsigned long long)m.sent_pages, (unsigned long long)m.zero_pages,
	       (unsigned long long)m.si.pages);
	for (round = 1; round <= MAX_ROUNDS; round++) {
		if ((r = harvest(&m, &dirty)) != 0)
			goto out;
		printf("SMG-LIVE round %d: %llu dirty\n", round,
		       (unsigned long long)dirty);
		if (dirty <= STOP_DIRTY)
			break;
		if ((r = send_set(&m, m.bm)) != 0)
			goto out;
	}
	/* stop-and-copy: suspend, last harvest, state */
	if ((r = m.src->ops->pause(m.src)) != 0)
		goto out;
	if ((r = send_set(&m, m.bm)) != 0 || (r = harvest(&m, &dirty)) != 0 ||
	    (r = send_set(&m, m.bm)) != 0)
		goto out;
	printf("SMG-LIVE suspended; final round %llu dirty\n", (unsigned long long)dirty);
	if ((r = m.src->ops->save_state(m.src, &state, &state_len)) != 0 ||
	    (r = m.src->ops->logdirty_disable(m.src)) != 0 ||
	    (r = m.dst->ops->restore_state(m.dst, state, state_len)) != 0)
		goto out;
	printf("SMG-LIVE restored (state %zu bytes)\n", state_len);
	if ((r = m.src->ops->mark_commit(m.src, "00", "localhost")) != 0 ||
	    (r = m.dst->ops->mark_committed(m.dst)) != 0 ||
	    (r = m.dst->ops->resume(m.dst)) != 0 || (r = m.src->ops->destroy(m.src)) != 0)
		goto out;
	printf("SMG-LIVE committed\n");
out:
	free(state);
	close_pair(&m);
	return r;
}

/* On a dom0 without a test domain: the backend's refusals, for real. */
static int do_probe(void)
{
	struct smg_backend *be = NULL;
	struct smg_domain_info info;
	int r, bad = 0;

	if ((r = smg_backend_open("xen", NULL, &be)) != 0)
		return r;
	r = be->ops->domain_open(be, "0", &info);
	printf("SMG-LIVE probe: opening dom0: %s\n", smg_strerror(r));
	bad |= r != SMG_ERR_INVAL;
	smg_backend_close(be);
	if ((r = smg_backend_open("xen", NULL, &be)) != 0)
		return r;
	r = be->ops->domain_open(be, "secmig-no-such-domain", &info);
	printf("SMG-LIVE probe: opening a domain that does not exist: %s\n",
	       smg_strerror(r));
	bad |= r != SMG_ERR_NOT_FOUND;
	smg_backend_close(be);
	return bad ? SMG_ERR_STATE : 0;
}

int main(int argc, char **argv)
{
	xc_interface *xch;
	const char *mode = argc == 3 ? argv[1] : "probe";
	int r;

	/* the only skip: this is no Xen dom0 */
	if (access("/dev/xen/privcmd", R_OK) != 0 &&
	    access("/proc/xen/privcmd", R_OK) != 0) {
		puts("test_xen_live: SKIP: not a Xen dom0 (no /dev/xen/privcmd); "
		     "test_xen_nested runs it inside a nested Xen");
		return T_SKIP;
	}
	if ((xch = xc_interface_open(NULL, NULL, 0)) == NULL) {
		puts("test_xen_live: SKIP: libxenctrl does not open: not a Xen dom0");
		return T_SKIP;
	}
	xc_interface_close(xch);
	if (argc != 1 && argc != 3) {
		fprintf(stderr, "usage: test_xen_live [abort|migrate DOMAIN]\n");
		return 1;
	}
	smg_log_set_level(SMG_LOG_INFO);
	if (strcmp(mode, "probe") == 0)
		r = do_probe();
	else
		r = strcmp(mode, "abort") == 0 ? do_abort(argv[2]) : do_migrate(argv[2]);
	printf("SMG-LIVE %s rc=%d (%s)\n", mode, r, smg_strerror(r));
	return r == 0 ? 0 : 1;
}
#else
int main(void)
{
	puts("test_xen_live: SKIP: built without libxen-dev (no xen backend)");
	return T_SKIP;
}
#endif
