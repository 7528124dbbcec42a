/* The sim backend: engine/backend.h on top of a sim host (simhost/).
 * Control goes over the host's socket like hypercalls; guest memory and the
 * dirty log are mapped directly, like Xen's foreign mappings. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "base/base.h"
#include "engine/backend.h"
#include "engine/backend/sim.h"

#define DEFAULT_STATE_DIR "/var/lib/secmig"

struct sim_backend {
	struct smg_backend be;
	int sock;
	char name[SMG_DOMAIN_NAME_MAX];
	char *text;
	size_t text_len;
	struct smg_sim_config cfg;
	struct smg_sim_mem mem;
	bool mapped;
	bool restored; /* the state came: the last word of an incoming migration */
	/* incoming: frames a page was written to (a zero page for any other
	 * frame costs nothing, and allocates nothing) */
	_Atomic uint64_t *written;
};

#define SELF(b) ((struct sim_backend *)(b))

static int call(struct sim_backend *s, const char *fmt, const char *arg)
{
	char req[SMG_DOMAIN_PATH_MAX + 128], reply[512];
	int r;

	snprintf(req, sizeof(req), fmt, s->name, arg);
	if ((r = smg_sim_client_call(s->sock, req, NULL, 0, reply, sizeof(reply),
				     NULL)) != SMG_OK)
		smg_err("sim: %s: %s", req, reply[0] != '\0' ? reply : smg_strerror(r));
	return r == SMG_OK ? SMG_OK : SMG_ERR_BACKEND;
}

static void fill_info(struct sim_backend *s, struct smg_domain_info *info)
{
	memset(info, 0, sizeof(*info));
	snprintf(info->name, sizeof(info->name), "%s", s->cfg.name);
	info->pages = s->mem.sh->npages;
	info->page_size = s->mem.sh->page_size;
	info->vcpus = s->mem.sh->vcpus;
	info->config = (const uint8_t *)s->text;
	info->config_len = s->text_len;
	info->n_nics = s->cfg.n_nics;
	info->n_disks = s->cfg.n_disks;
	memcpy(info->nics, s->cfg.nics, sizeof(info->nics));
	memcpy(info->disks, s->cfg.disks, sizeof(info->disks));
	info->n_labels = s->cfg.n_labels;
	memcpy(info->labels, s->cfg.labels, sizeof(info->labels));
	info->has_vtpm = s->cfg.vtpm;
}

/* Where the host runs the domain's vTPM: its control socket. */
static int vtpm_ctrl(struct sim_backend *s, struct smg_domain_info *info)
{
	char req[SMG_DOMAIN_NAME_MAX + 8], reply[512];
	int r;

	snprintf(req, sizeof(req), "VTPM %s", s->name);
	if ((r = smg_sim_client_call(s->sock, req, NULL, 0, reply, sizeof(reply),
				     NULL)) != SMG_OK) {
		smg_err("sim: vTPM of '%s': %s", s->name, reply);
		return SMG_ERR_BACKEND;
	}
	reply[strcspn(reply, " \n")] = '\0';
	if (reply[0] != '/' || strlen(reply) >= sizeof(info->vtpm_ctrl))
		return SMG_ERR_BACKEND;
	memcpy(info->vtpm_ctrl, reply, strlen(reply) + 1);
	return SMG_OK;
}

static int attach(struct sim_backend *s, int fd, const char *text, size_t len,
		  bool populate, struct smg_domain_info *info)
{
	char err[256];
	int r;

	if (fd < 0)
		return SMG_ERR_BACKEND;
	if ((r = smg_sim_config_parse(text, len, &s->cfg, err, sizeof(err))) != SMG_OK) {
		smg_err("sim: config: %s", err);
		close(fd);
		return r;
	}
	if ((s->text = malloc(len + 1)) == NULL) {
		close(fd);
		return SMG_ERR_NOMEM;
	}
	memcpy(s->text, text, len);
	s->text[len] = '\0';
	s->text_len = len;
	if ((r = smg_sim_mem_map(fd, populate, &s->mem)) != SMG_OK) {
		close(fd);
		return r;
	}
	s->mapped = true;
	if (s->mem.sh->npages * SMG_SIM_PAGE_SIZE != s->cfg.mem_bytes)
		return SMG_ERR_BACKEND;
	snprintf(s->name, sizeof(s->name), "%s", s->cfg.name);
	fill_info(s, info);
	return s->cfg.vtpm ? vtpm_ctrl(s, info) : SMG_OK;
}

static int domain_open(struct smg_backend *b, const char *name,
		       struct smg_domain_info *info)
{
	struct sim_backend *s = SELF(b);
	char req[SMG_DOMAIN_NAME_MAX + 8], *reply;
	int fd, r;

	if (s->mapped || strlen(name) >= SMG_DOMAIN_NAME_MAX)
		return SMG_ERR_INVAL;
	if ((reply = malloc(SMG_SIM_MSG_MAX)) == NULL)
		return SMG_ERR_NOMEM;
	snprintf(req, sizeof(req), "OPEN %s", name);
	r = smg_sim_client_call(s->sock, req, NULL, 0, reply, SMG_SIM_MSG_MAX, &fd);
	if (r != SMG_OK)
		smg_err("sim: open '%s': %s", name, reply);
	else
		r = attach(s, fd, reply, strlen(reply), false, info);
	free(reply);
	return r;
}

static int sim_refuse(struct smg_vm_build *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int sim_refuse(struct smg_vm_build *b, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(b->why, sizeof(b->why), fmt, ap);
	va_end(ap);
	return SMG_ERR_POLICY;
}

/* The sender's config is a request: its sizes, NICs and vTPM must be what
 * the plan asked for and the build allowed; its disk lines must be exactly
 * the disks that travel (a disk that does not travel would be a path on
 * this host); nothing else of it names a host resource. */
static int check_request(const struct smg_sim_config *c, struct smg_vm_build *b)
{
	if (c->mem_bytes != b->memory_bytes || c->vcpus != b->vcpus)
		return sim_refuse(b, "sim: the config's memory or vcpus differ from the "
				     "plan's");
	if (c->n_disks != b->n_disks)
		return sim_refuse(
		    b,
		    "sim: the config names %u disks, the plan moves %u: a disk "
		    "that does not travel would be a path on this host",
		    c->n_disks, b->n_disks);
	if (c->n_nics != b->n_nics)
		return sim_refuse(b, "sim: the config has %u NICs, the plan %u",
				  c->n_nics, b->n_nics);
	for (unsigned i = 0; i < c->n_nics; i++)
		if (memcmp(&c->nics[i], &b->nics[i], sizeof(c->nics[i])) != 0)
			return sim_refuse(b,
					  "sim: NIC %u of the config differs from the "
					  "plan's",
					  i);
	if (c->vtpm != b->vtpm)
		return sim_refuse(b, "sim: the config's vtpm differs from the plan's");
	return SMG_OK;
}

static void put_nic(FILE *f, const struct smg_nic *n)
{
	char a[INET6_ADDRSTRLEN];

	fprintf(f, "nic = mac=%02x:%02x:%02x:%02x:%02x:%02x", n->mac[0], n->mac[1],
		n->mac[2], n->mac[3], n->mac[4], n->mac[5]);
	for (unsigned k = 0; k < n->n_ipv4; k++)
		fprintf(f, ",ipv4=%s", inet_ntop(AF_INET, n->ipv4[k], a, sizeof(a)));
	for (unsigned k = 0; k < n->n_ipv6; k++)
		fprintf(f, ",ipv6=%s", inet_ntop(AF_INET6, n->ipv6[k], a, sizeof(a)));
	fputc('\n', f);
}

/* This host's config for the incoming domain: what the sim host stores and
 * what a later migration onward sends. Disks are the disks this host's
 * disk service created (their names, D.i, made here); a recorded trace
 * travels in the state, never as a path. */
static int render(const struct smg_sim_config *c, const struct smg_vm_build *b,
		  char **text, size_t *len)
{
	static const char *const wl[] = {"idle", "uniform", "hotspot", "trace"};
	FILE *f = open_memstream(text, len);

	if (f == NULL)
		return SMG_ERR_NOMEM;
	fprintf(f, "# built by this host from its definition '%s'\n", b->def->pattern);
	fprintf(f, "name = %s\nmemory = %llu\nvcpus = %u\n", c->name,
		(unsigned long long)c->mem_bytes, c->vcpus);
	fprintf(f, "workload = %s\ndirty_rate = %llu\n", wl[c->workload],
		(unsigned long long)c->dirty_rate);
	fprintf(f, "hot_writes = %u\nhot_pages = %u\nzero_pct = %u\nseed = %llu\n",
		c->hot_writes, c->hot_pages, c->zero_pct, (unsigned long long)c->seed);
	if (c->workload == SMG_SIM_TRACE)
		fprintf(f, "trace = %s\n", SMG_SIM_TRACE_MIGRATED);
	for (unsigned i = 0; i < b->n_disks; i++)
		fprintf(f, "disk = %s\n", b->disk_name[i]);
	for (unsigned i = 0; i < b->n_nics; i++)
		put_nic(f, &b->nics[i]);
	if (c->n_labels > 0) {
		fputs("placement =", f);
		for (unsigned i = 0; i < c->n_labels; i++)
			fprintf(f, " %s", c->labels[i]);
		fputc('\n', f);
	}
	fprintf(f, "vtpm = %s\n", b->vtpm ? "yes" : "no");
	if (fclose(f) != 0)
		return SMG_ERR_NOMEM;
	return *len <= SMG_DOMAIN_CONFIG_MAX ? SMG_OK : SMG_ERR_TOO_LONG;
}

int smg_sim_build_config(const uint8_t *config, size_t len, struct smg_vm_build *build,
			 char **text, size_t *tlen)
{
	struct smg_sim_config req;
	char err[256];
	int r;

	*text = NULL;
	*tlen = 0;
	if (build == NULL || build->def == NULL)
		return SMG_ERR_INVAL;
	if (smg_sim_config_parse((const char *)config, len, &req, err, sizeof(err)) !=
	    SMG_OK)
		return sim_refuse(build, "sim: the sender's config does not parse: %s",
				  err);
	if ((r = check_request(&req, build)) != SMG_OK)
		return r;
	if ((r = render(&req, build, text, tlen)) != SMG_OK) {
		free(*text);
		*text = NULL;
		*tlen = 0;
	}
	return r;
}

static int domain_create(struct smg_backend *b, const uint8_t *config, size_t len,
			 struct smg_vm_build *build, struct smg_domain_info *info)
{
	struct sim_backend *s = SELF(b);
	char reply[512], *text = NULL;
	size_t tlen = 0;
	int fd, r;

	if (s->mapped)
		return SMG_ERR_INVAL;
	if ((r = smg_sim_build_config(config, len, build, &text, &tlen)) != SMG_OK)
		return r;
	r = smg_sim_client_call(s->sock, "INCOMING", text, tlen, reply, sizeof(reply),
				&fd);
	if (r != SMG_OK) {
		smg_err("sim: create incoming domain: %s", reply);
		free(text);
		if (r == SMG_ERR_POLICY)
			return sim_refuse(build, "%s", reply);
		return r == SMG_ERR_EXISTS || r == SMG_ERR_CONFIG || r == SMG_ERR_BUSY
			   ? r
			   : SMG_ERR_BACKEND;
	}
	/* Not populated: a plan's size is a claim, memory comes as pages
	 * arrive (docs/hostdef.md); pages first sent in the final round are
	 * the only ones allocated inside the downtime. */
	r = attach(s, fd, text, tlen, false, info);
	free(text);
	if (r == SMG_OK && (s->written = calloc((s->mem.sh->npages + 63) / 64,
						sizeof(uint64_t))) == NULL)
		r = SMG_ERR_NOMEM;
	return r;
}

static int logdirty_enable(struct smg_backend *b)
{
	struct sim_backend *s = SELF(b);
	uint64_t words = (s->mem.sh->npages + 63) / 64;

	for (uint64_t w = 0; w < words; w++)
		atomic_store(&s->mem.bitmap[w], 0);
	return call(s, "LOGDIRTY %s %s", "1");
}

static int logdirty_disable(struct smg_backend *b)
{
	return call(SELF(b), "LOGDIRTY %s %s", "0");
}

static int logdirty_peek_clear(struct smg_backend *b, uint64_t *bitmap, uint64_t *dirty)
{
	smg_sim_logdirty_peek_clear(&SELF(b)->mem, bitmap, dirty);
	return SMG_OK;
}

/* Guest frames move through the memfd (preadv/pwritev), one call per run
 * of up to IOV_MAX frames, rather than through our mapping of it: the
 * kernel copies via its own mapping of the page cache, while a first touch
 * through a fresh user mapping faults once per frame (and, under a
 * hypervisor's shadow paging, costs several microseconds per frame: ~8x the
 * copy itself on the build VM). */
#define IOV_RUN 1024

static int frames_io(struct sim_backend *s, const uint64_t *pfns, size_t n, uint8_t *buf,
		     const uint8_t *zero, bool write)
{
	const uint64_t ps = SMG_SIM_PAGE_SIZE, base = s->mem.sh->mem_off;
	struct iovec iov[IOV_RUN];
	size_t i = 0;

	while (i < n) {
		size_t k = 0, want;
		uint64_t first = pfns[i];
		ssize_t got;

		/* a run of consecutive frames, one iovec per frame */
		do {
			if (pfns[i + k] >= s->mem.sh->npages)
				return SMG_ERR_INVAL;
			iov[k].iov_base =
			    zero != NULL ? (void *)zero : buf + (i + k) * ps;
			iov[k].iov_len = ps;
			k++;
		} while (i + k < n && k < IOV_RUN && pfns[i + k] == first + k);
		want = k * ps;
		got = write ? pwritev(s->mem.fd, iov, (int)k, (off_t)(base + first * ps))
			    : preadv(s->mem.fd, iov, (int)k, (off_t)(base + first * ps));
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0)
			return smg_err_sys(errno);
		if ((size_t)got != want) /* a memfd of the checked size: never short */
			return SMG_ERR_BACKEND;
		i += k;
	}
	return SMG_OK;
}

static int read_pages(struct smg_backend *b, const uint64_t *pfns, size_t n, uint8_t *out)
{
	return frames_io(SELF(b), pfns, n, out, NULL, false);
}

static int write_pages(struct smg_backend *b, const uint64_t *pfns, size_t n,
		       const uint8_t *data, bool zero_only)
{
	static const uint8_t zero[SMG_SIM_PAGE_SIZE];
	struct sim_backend *s = SELF(b);
	int r;

	/* The interface's order (backend.h): no page after the state. */
	if (s->restored)
		return SMG_ERR_STATE;
	for (size_t i = 0; i < n; i++)
		if (pfns[i] >= s->mem.sh->npages)
			return SMG_ERR_INVAL;
	if (!zero_only) {
		if ((r = frames_io(s, pfns, n, (uint8_t *)data, NULL, true)) != SMG_OK)
			return r;
		for (size_t i = 0; s->written != NULL && i < n; i++)
			atomic_fetch_or(&s->written[pfns[i] / 64],
					1ull << (pfns[i] % 64));
		return SMG_OK;
	}
	/* Only a frame that holds data needs zeroing: one never written reads
	 * as zeros (the memfd is sparse, nothing is allocated for it), and
	 * once zeroed it costs nothing again until a page is written to it. */
	for (size_t i = 0; i < n; i++) {
		uint64_t bit = 1ull << (pfns[i] % 64);

		if (s->written != NULL &&
		    (atomic_fetch_and(&s->written[pfns[i] / 64], ~bit) & bit) == 0)
			continue;
		if ((r = frames_io(s, &pfns[i], 1, NULL, zero, true)) != SMG_OK)
			return r;
	}
	return SMG_OK;
}

static int op_pause(struct smg_backend *b)
{
	return call(SELF(b), "PAUSE %s%s", "");
}

static int op_unpause(struct smg_backend *b)
{
	return call(SELF(b), "UNPAUSE %s%s", "");
}

static int op_throttle(struct smg_backend *b, unsigned pct)
{
	char arg[16];

	snprintf(arg, sizeof(arg), "%u", pct > 99 ? 99 : pct);
	return call(SELF(b), "THROTTLE %s %s", arg);
}

static int save_state(struct smg_backend *b, uint8_t **blob, size_t *len)
{
	return smg_sim_state_save(&SELF(b)->mem, blob, len);
}

static int restore_state(struct smg_backend *b, const uint8_t *blob, size_t len)
{
	struct sim_backend *s = SELF(b);
	int r = smg_sim_state_restore(&s->mem, blob, len);

	s->restored = r == SMG_OK;
	return r;
}

static int mark_commit(struct smg_backend *b, const char *id, const char *peer)
{
	struct sim_backend *s = SELF(b);
	char req[SMG_DOMAIN_PATH_MAX + 256], reply[256];
	int r;

	snprintf(req, sizeof(req), "COMMIT %s %s %s", s->name, id, peer);
	r = smg_sim_client_call(s->sock, req, NULL, 0, reply, sizeof(reply), NULL);
	if (r != SMG_OK)
		smg_err("sim: record COMMIT: %s", reply);
	return r == SMG_OK ? SMG_OK : SMG_ERR_BACKEND;
}

static int op_destroy(struct smg_backend *b)
{
	return call(SELF(b), "DESTROY %s%s", "");
}

static int mark_committed(struct smg_backend *b)
{
	return call(SELF(b), "COMMITTED %s%s", "");
}

static int op_resume(struct smg_backend *b)
{
	return call(SELF(b), "RESUME %s%s", "");
}

static int by_name(struct sim_backend *s, const char *verb, const char *name,
		   const char *arg, char *reply, size_t cap)
{
	char req[SMG_DOMAIN_NAME_MAX + 64];

	if (strlen(name) >= SMG_DOMAIN_NAME_MAX || strchr(name, ' ') != NULL)
		return SMG_ERR_INVAL;
	snprintf(req, sizeof(req), "%s %s %s", verb, name, arg);
	return smg_sim_client_call(s->sock, req, NULL, 0, reply, cap, NULL);
}

static int domain_pending(struct smg_backend *b, const char *name, char *id,
			  size_t id_len, char *peer, size_t peer_len)
{
	char reply[512], *sp;
	int r;

	if ((r = by_name(SELF(b), "PENDING", name, "", reply, sizeof(reply))) != SMG_OK) {
		smg_err("sim: %s", reply);
		return r;
	}
	reply[strcspn(reply, "\n")] = '\0';
	if ((sp = strchr(reply, ' ')) == NULL)
		return SMG_ERR_BACKEND;
	*sp = '\0';
	snprintf(id, id_len, "%s", reply);
	snprintf(peer, peer_len, "%s", sp + 1);
	return SMG_OK;
}

static int domain_settle(struct smg_backend *b, const char *name, bool resumed)
{
	char reply[256];
	int r = by_name(SELF(b), "RESOLVE", name, resumed ? "resumed" : "aborted", reply,
			sizeof(reply));

	if (r != SMG_OK)
		smg_err("sim: settle '%s': %s", name, reply);
	return r;
}

static int resume_committed(struct smg_backend *b, const char *name)
{
	char reply[256];
	int r = by_name(SELF(b), "RESUME", name, "", reply, sizeof(reply));

	if (r != SMG_OK)
		smg_err("sim: resume '%s': %s", name, reply);
	return r;
}

static void op_close(struct smg_backend *b)
{
	struct sim_backend *s = SELF(b);

	if (s->mapped)
		smg_sim_mem_unmap(&s->mem);
	free((void *)s->written);
	if (s->sock >= 0)
		close(s->sock);
	free(s->text);
	free(s);
}

static const struct smg_backend_ops sim_ops = {
    .name = "sim",
    .close = op_close,
    .domain_open = domain_open,
    .logdirty_enable = logdirty_enable,
    .logdirty_peek_clear = logdirty_peek_clear,
    .logdirty_disable = logdirty_disable,
    .read_pages = read_pages,
    .pause = op_pause,
    .unpause = op_unpause,
    .throttle = op_throttle,
    .save_state = save_state,
    .mark_commit = mark_commit,
    .destroy = op_destroy,
    .domain_pending = domain_pending,
    .domain_settle = domain_settle,
    .domain_create = domain_create,
    .write_pages = write_pages,
    .restore_state = restore_state,
    .mark_committed = mark_committed,
    .resume = op_resume,
    .resume_committed = resume_committed,
};

int smg_backend_sim_open(const struct smg_backend_opts *opts, struct smg_backend **out);

int smg_backend_sim_open(const struct smg_backend_opts *opts, struct smg_backend **out)
{
	const char *dir =
	    opts != NULL && opts->state_dir != NULL ? opts->state_dir : DEFAULT_STATE_DIR;
	struct sim_backend *s;
	int r;

	*out = NULL;
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return SMG_ERR_NOMEM;
	s->be.ops = &sim_ops;
	s->mem.fd = -1;
	if ((r = smg_sim_client_connect(dir, &s->sock)) != SMG_OK) {
		smg_err(
		    "sim: no sim host at %s (start one: secmig sim host --state-dir %s)",
		    dir, dir);
		free(s);
		return SMG_ERR_BACKEND;
	}
	if ((r = smg_sim_client_bound(s->sock, SMG_SIM_CALL_TIMEOUT_MS)) != SMG_OK) {
		close(s->sock);
		free(s);
		return r;
	}
	*out = &s->be;
	return SMG_OK;
}
