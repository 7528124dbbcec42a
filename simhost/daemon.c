/* The sim host: a local daemon that holds sim domains the way a hypervisor
 * holds VMs, so they outlive `secmig send` and `secmig recv`. It listens on
 * DIR/sim.sock (SOCK_SEQPACKET, mode 0600); each request is one message
 * "VERB args\n[payload]", each reply "OK\n[payload]" or "ERR code\nmessage".
 * Guest memory is handed to clients as a memfd over SCM_RIGHTS.
 *
 * Leases: the client that opened a domain for sending (OPEN) or created an
 * incoming one (INCOMING) owns it until it disconnects. If a sender dies
 * before recording COMMIT, its domain is unpaused (the source VM keeps
 * running); if a receiver dies before COMMITTED, its incoming copy is
 * destroyed (no half-migrated VM is left behind). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/base.h"
#include "simhost/simhost.h"

#define DOMAINS_MAX 64
#define ID_MAX	    80
#define PEER_MAX    256

enum dom_state { DOM_RUNNING, DOM_PAUSED, DOM_INCOMING };

struct dom {
	bool used;
	struct smg_sim_config cfg;
	char *text;
	size_t text_len;
	struct smg_sim_mem mem;
	struct smg_sim_vcpus *vcpus;
	enum dom_state state;
	uint64_t owner; /* connection id holding the lease, 0 for none */
	bool pending;	/* source recorded COMMIT: in doubt until resolved */
	bool committed; /* destination: survives its receiver from now on */
	char id[ID_MAX], peer[PEER_MAX];
	struct smg_swtpm vtpm; /* pid > 0: the guest's vTPM runs */
};

static struct {
	pthread_mutex_t lock;
	struct dom d[DOMAINS_MAX];
	char dir[SMG_DOMAIN_PATH_MAX];
	uint64_t next_conn;
} host = {.lock = PTHREAD_MUTEX_INITIALIZER};

struct reply {
	char buf[SMG_SIM_MSG_MAX];
	size_t len;
	int fd;
	int err;
};

static void rep(struct reply *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void rep(struct reply *r, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(r->buf + r->len, sizeof(r->buf) - r->len, fmt, ap);
	va_end(ap);
	if (n > 0)
		r->len += (size_t)n < sizeof(r->buf) - r->len
			      ? (size_t)n
			      : sizeof(r->buf) - r->len - 1;
}

static int fail(struct reply *r, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(struct reply *r, int err, const char *fmt, ...)
{
	va_list ap;

	r->len = 0;
	va_start(ap, fmt);
	int n = vsnprintf(r->buf, sizeof(r->buf), fmt, ap);
	va_end(ap);
	r->len = n > 0 && (size_t)n < sizeof(r->buf) ? (size_t)n : 0;
	r->err = err;
	return err;
}

static struct dom *find(const char *name)
{
	for (unsigned i = 0; i < DOMAINS_MAX; i++)
		if (host.d[i].used && strcmp(host.d[i].cfg.name, name) == 0)
			return &host.d[i];
	return NULL;
}

static void pending_path(const char *name, char *out, size_t n)
{
	int w = snprintf(out, n, "%s/pending-%s", host.dir, name);

	if (w < 0 || (size_t)w >= n)
		out[0] = '\0';
}

#define RECORD_LEN 384 /* fixed width: "ID PEER", space padded */

/* The COMMIT record's file is created when a sender opens the domain, with
 * its directory entry synced then, outside the downtime; COMMIT itself is
 * one in-place write of a fixed-width record and one fdatasync. */
static int record_write(const char *path, const char *text, bool create)
{
	char rec[RECORD_LEN];
	size_t n = strlen(text);
	int fd, r = SMG_OK, dfd;

	if (n >= RECORD_LEN)
		return SMG_ERR_TOO_LONG;
	memcpy(rec, text, n);
	memset(rec + n, ' ', RECORD_LEN - 1 - n);
	rec[RECORD_LEN - 1] = '\n';
	fd = open(path,
		  O_WRONLY | O_CLOEXEC | O_NOFOLLOW | (create ? O_CREAT | O_TRUNC : 0),
		  0600);
	if (fd < 0)
		return smg_err_sys(errno);
	if (pwrite(fd, rec, RECORD_LEN, 0) != RECORD_LEN ||
	    (create ? fsync(fd) : fdatasync(fd)) != 0)
		r = smg_err_sys(errno);
	close(fd);
	if (r == SMG_OK && create &&
	    (dfd = open(host.dir, O_RDONLY | O_DIRECTORY)) >= 0) {
		fsync(dfd);
		close(dfd);
	}
	return r;
}

static void record_drop(const struct dom *d)
{
	char path[SMG_DOMAIN_PATH_MAX + 80];

	pending_path(d->cfg.name, path, sizeof(path));
	unlink(path);
}

static void dom_free(struct dom *d)
{
	char path[SMG_DOMAIN_PATH_MAX + 80];

	if (d->vcpus != NULL)
		smg_sim_vcpus_stop(d->vcpus);
	smg_sim_vtpm_stop(host.dir, d->cfg.name, &d->vtpm);
	smg_sim_mem_unmap(&d->mem);
	free(d->text);
	pending_path(d->cfg.name, path, sizeof(path));
	unlink(path);
	memset(d, 0, sizeof(*d));
}

/* Two VMs with one MAC on a host: the second would take the first's
 * traffic (an incoming VM must not take over a running one's address). */
static int mac_in_use(const struct smg_sim_config *c, struct reply *r)
{
	for (unsigned i = 0; i < DOMAINS_MAX; i++) {
		const struct dom *o = &host.d[i];
		if (!o->used)
			continue;
		for (unsigned a = 0; a < c->n_nics; a++)
			for (unsigned b = 0; b < o->cfg.n_nics; b++)
				if (memcmp(c->nics[a].mac, o->cfg.nics[b].mac, 6) == 0)
					return fail(
					    r, SMG_ERR_POLICY,
					    "NIC %u's MAC is in use by domain '%s' "
					    "on this host",
					    a, o->cfg.name);
	}
	return SMG_OK;
}

static int dom_new(const char *text, size_t len, bool incoming, struct reply *r,
		   struct dom **out)
{
	char err[256];
	struct dom *d = NULL;
	int e;

	for (unsigned i = 0; i < DOMAINS_MAX && d == NULL; i++)
		if (!host.d[i].used)
			d = &host.d[i];
	if (d == NULL)
		return fail(r, SMG_ERR_BUSY, "the sim host holds %u domains already",
			    DOMAINS_MAX);
	if ((e = smg_sim_config_parse(text, len, &d->cfg, err, sizeof(err))) != SMG_OK)
		return fail(r, e, "config: %s", err);
	if (find(d->cfg.name) != NULL)
		return fail(r, SMG_ERR_EXISTS, "domain '%s' exists on this host",
			    d->cfg.name);
	if ((e = mac_in_use(&d->cfg, r)) != SMG_OK)
		return e;
	if ((d->text = malloc(len + 1)) == NULL)
		return fail(r, SMG_ERR_NOMEM, "out of memory");
	memcpy(d->text, text, len);
	d->text[len] = '\0';
	d->text_len = len;
	if ((e = smg_sim_mem_create(&d->cfg, !incoming, &d->mem)) != SMG_OK) {
		free(d->text);
		d->text = NULL;
		return fail(r, e, "cannot allocate guest memory: %s", smg_strerror(e));
	}
	if (!incoming && d->cfg.workload == SMG_SIM_TRACE) {
		size_t n;
		e = smg_sim_trace_load(d->cfg.trace_path, d->mem.sh->trace,
				       SMG_SIM_TRACE_MAX, &n, err, sizeof(err));
		if (e != SMG_OK) {
			dom_free(d);
			return fail(r, e, "%s", err);
		}
		d->mem.sh->trace_len = (uint32_t)n;
	}
	d->used = true;
	d->state = incoming ? DOM_INCOMING : DOM_RUNNING;
	if (d->cfg.vtpm && (e = smg_sim_vtpm_start(host.dir, d->cfg.name, incoming,
						   &d->vtpm)) != SMG_OK) {
		dom_free(d);
		return fail(r, e, "cannot start the vTPM: %s", smg_strerror(e));
	}
	if (!incoming && (e = smg_sim_vcpus_start(&d->mem, &d->vcpus)) != SMG_OK) {
		dom_free(d);
		return fail(r, e, "cannot start vCPUs");
	}
	*out = d;
	return SMG_OK;
}

static void lease_drop(uint64_t conn)
{
	for (unsigned i = 0; i < DOMAINS_MAX; i++) {
		struct dom *d = &host.d[i];

		if (!d->used || d->owner != conn)
			continue;
		d->owner = 0;
		if (d->state == DOM_INCOMING && !d->committed) {
			smg_info("sim host: receiver left; discarding incoming '%s'",
				 d->cfg.name);
			dom_free(d);
		} else if (d->state != DOM_INCOMING && !d->pending) {
			record_drop(d);
			atomic_store(&d->mem.sh->logdirty, 0);
			atomic_store(&d->mem.sh->throttle, 0);
			if (d->state == DOM_PAUSED) {
				smg_info(
				    "sim host: sender left before COMMIT; resuming '%s'",
				    d->cfg.name);
				smg_sim_pause(&d->mem, false);
				d->state = DOM_RUNNING;
			}
		}
	}
}

static const char *state_name(const struct dom *d)
{
	if (d->pending)
		return "in_doubt";
	if (d->state == DOM_INCOMING)
		return d->committed ? "committed" : "incoming";
	return d->state == DOM_RUNNING ? "running" : "paused";
}

static int do_verify(struct dom *d, struct reply *r)
{
	struct smg_sim_verify v;
	bool was_running = d->state == DOM_RUNNING;
	int e;

	if (was_running)
		smg_sim_pause(&d->mem, true);
	e = smg_sim_verify(&d->mem, &v);
	if (was_running)
		smg_sim_pause(&d->mem, false);
	if (e != SMG_OK && e != SMG_ERR_INTEGRITY)
		return fail(r, e, "verify: %s", smg_strerror(e));
	rep(r,
	    "pages=%" PRIu64 " ok=%" PRIu64 " zero=%" PRIu64 " lost=%" PRIu64
	    " stale=%" PRIu64 " misplaced=%" PRIu64 " corrupted=%" PRIu64
	    " bad_state=%" PRIu64,
	    v.pages, v.ok, v.zero, v.lost, v.stale, v.misplaced, v.corrupted,
	    v.bad_state);
	if (e == SMG_ERR_INTEGRITY) {
		rep(r, " first_bad_pfn=%" PRIu64, v.first_bad_pfn);
		char msg[SMG_SIM_MSG_MAX];
		snprintf(msg, sizeof(msg), "%.*s", (int)r->len, r->buf);
		return fail(r, e, "%s", msg);
	}
	return SMG_OK;
}

static int do_state(struct dom *d, const char *verb, const char *arg, struct reply *r)
{
	if (strcmp(verb, "PAUSE") == 0) {
		if (d->state == DOM_INCOMING)
			return fail(r, SMG_ERR_STATE, "'%s' is not running", d->cfg.name);
		smg_sim_pause(&d->mem, true);
		d->state = DOM_PAUSED;
	} else if (strcmp(verb, "UNPAUSE") == 0) {
		if (d->state == DOM_INCOMING || d->pending)
			return fail(r, SMG_ERR_STATE, "'%s' may not be unpaused (%s)",
				    d->cfg.name, state_name(d));
		smg_sim_pause(&d->mem, false);
		d->state = DOM_RUNNING;
	} else if (strcmp(verb, "THROTTLE") == 0) {
		unsigned long pct = strtoul(arg, NULL, 10);
		if (pct > 99)
			return fail(r, SMG_ERR_INVAL, "throttle: 0..99");
		atomic_store(&d->mem.sh->throttle, (uint32_t)pct);
	} else if (strcmp(verb, "LOGDIRTY") == 0) {
		atomic_store(&d->mem.sh->logdirty, strcmp(arg, "1") == 0);
	} else if (strcmp(verb, "RESUME") == 0) {
		if (d->state == DOM_RUNNING && !d->pending)
			return SMG_OK; /* already resumed: resume is idempotent */
		if (d->state != DOM_INCOMING || !d->committed)
			return fail(r, SMG_ERR_STATE,
				    "'%s' is not a committed incoming domain",
				    d->cfg.name);
		atomic_store(&d->mem.sh->paused, 0);
		int e = smg_sim_vcpus_start(&d->mem, &d->vcpus);
		if (e != SMG_OK)
			return fail(r, e, "cannot start vCPUs");
		d->state = DOM_RUNNING;
		d->committed = false;
		d->owner = 0;
	} else if (strcmp(verb, "COMMITTED") == 0) {
		if (d->state != DOM_INCOMING)
			return fail(r, SMG_ERR_STATE, "'%s' is not incoming",
				    d->cfg.name);
		d->committed = true;
	} else {
		return fail(r, SMG_ERR_INVAL, "unknown request '%s'", verb);
	}
	return SMG_OK;
}

static int do_commit(struct dom *d, const char *id, const char *peer, struct reply *r)
{
	char path[SMG_DOMAIN_PATH_MAX + 80], text[ID_MAX + PEER_MAX + 8];
	int e;

	if (d->state != DOM_PAUSED)
		return fail(r, SMG_ERR_STATE, "COMMIT needs a paused domain");
	if (strlen(id) == 0 || strlen(id) >= ID_MAX || strlen(peer) >= PEER_MAX)
		return fail(r, SMG_ERR_INVAL, "bad migration id or peer");
	snprintf(text, sizeof(text), "%s %s", id, peer);
	pending_path(d->cfg.name, path, sizeof(path));
	if ((e = record_write(path, text, false)) != SMG_OK)
		return fail(r, e, "cannot record COMMIT: %s", strerror(smg_err_errno()));
	snprintf(d->id, sizeof(d->id), "%s", id);
	snprintf(d->peer, sizeof(d->peer), "%s", peer);
	d->pending = true;
	return SMG_OK;
}

static int do_resolve(struct dom *d, const char *outcome, struct reply *r)
{
	char path[SMG_DOMAIN_PATH_MAX + 80];

	if (!d->pending)
		return fail(r, SMG_ERR_STATE, "'%s' is not in doubt", d->cfg.name);
	if (strcmp(outcome, "resumed") == 0) {
		dom_free(d);
	} else if (strcmp(outcome, "aborted") == 0) {
		d->pending = false;
		pending_path(d->cfg.name, path, sizeof(path));
		unlink(path);
		atomic_store(&d->mem.sh->logdirty, 0);
		atomic_store(&d->mem.sh->throttle, 0);
		smg_sim_pause(&d->mem, false);
		d->state = DOM_RUNNING;
	} else {
		return fail(r, SMG_ERR_INVAL, "outcome: resumed or aborted");
	}
	return SMG_OK;
}

/* One request; host.lock held. */
static int dispatch(uint64_t conn, char *msg, size_t len, struct reply *r)
{
	char *nl = memchr(msg, '\n', len), *save = NULL, *verb, *a1, *a2, *a3;
	const char *payload = nl != NULL ? nl + 1 : msg + len;
	size_t plen = nl != NULL ? len - (size_t)(nl + 1 - msg) : 0;
	struct dom *d = NULL;
	int e;

	if (nl != NULL)
		*nl = '\0';
	else
		msg[len] = '\0';
	verb = strtok_r(msg, " ", &save);
	a1 = strtok_r(NULL, " ", &save);
	a2 = strtok_r(NULL, " ", &save);
	a3 = strtok_r(NULL, " ", &save);
	if (verb == NULL)
		return fail(r, SMG_ERR_INVAL, "empty request");
	if (strcmp(verb, "LIST") == 0) {
		for (unsigned i = 0; i < DOMAINS_MAX; i++)
			if (host.d[i].used)
				rep(r, "%s %s %" PRIu64 " %u %" PRIu64 "\n",
				    host.d[i].cfg.name, state_name(&host.d[i]),
				    host.d[i].cfg.mem_bytes, host.d[i].cfg.vcpus,
				    (uint64_t)atomic_load(&host.d[i].mem.sh->writes));
		return SMG_OK;
	}
	if (strcmp(verb, "CREATE") == 0 || strcmp(verb, "INCOMING") == 0) {
		bool incoming = verb[0] == 'I';
		if ((e = dom_new(payload, plen, incoming, r, &d)) != SMG_OK)
			return e;
		if (incoming) {
			d->owner = conn;
			r->fd = d->mem.fd;
		}
		rep(r, "%s\n", d->cfg.name);
		return SMG_OK;
	}
	if (a1 == NULL || (d = find(a1)) == NULL)
		return fail(r, SMG_ERR_NOT_FOUND, "no domain '%s' on this host",
			    a1 != NULL ? a1 : "");
	if (strcmp(verb, "OPEN") == 0) {
		if (d->owner != 0 || d->pending || d->state == DOM_INCOMING)
			return fail(r, SMG_ERR_BUSY, "'%s' is %s", d->cfg.name,
				    d->owner != 0 ? "being migrated" : state_name(d));
		char path[SMG_DOMAIN_PATH_MAX + 80];
		pending_path(d->cfg.name, path, sizeof(path));
		if ((e = record_write(path, "open", true)) != SMG_OK)
			return fail(r, e, "cannot prepare the COMMIT record in %s: %s",
				    host.dir, strerror(smg_err_errno()));
		d->owner = conn;
		r->fd = d->mem.fd;
		rep(r, "%.*s", (int)d->text_len, d->text);
		return SMG_OK;
	}
	if (strcmp(verb, "VERIFY") == 0)
		return do_verify(d, r);
	if (strcmp(verb, "VTPM") == 0) {
		if (d->vtpm.pid <= 0)
			return fail(r, SMG_ERR_NOT_FOUND, "'%s' has no vTPM",
				    d->cfg.name);
		rep(r, "%s %s\n", d->vtpm.ctrl, d->vtpm.tcti);
		return SMG_OK;
	}
	if (strcmp(verb, "DESTROY") == 0) {
		dom_free(d);
		return SMG_OK;
	}
	if (strcmp(verb, "COMMIT") == 0)
		return do_commit(d, a2 != NULL ? a2 : "", a3 != NULL ? a3 : "", r);
	if (strcmp(verb, "PENDING") == 0) {
		if (!d->pending)
			return fail(r, SMG_ERR_STATE, "'%s' is not in doubt",
				    d->cfg.name);
		rep(r, "%s %s\n", d->id, d->peer);
		return SMG_OK;
	}
	if (strcmp(verb, "RESOLVE") == 0)
		return do_resolve(d, a2 != NULL ? a2 : "", r);
	return do_state(d, verb, a2 != NULL ? a2 : "", r);
}

static void send_reply(int fd, struct reply *r)
{
	char hdr[32];
	struct iovec iov[2];
	struct msghdr mh = {.msg_iov = iov, .msg_iovlen = 2};
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;

	snprintf(hdr, sizeof(hdr), r->err == 0 ? "OK\n" : "ERR %d\n", r->err);
	iov[0] = (struct iovec){hdr, strlen(hdr)};
	iov[1] = (struct iovec){r->buf, r->len};
	if (r->err == 0 && r->fd >= 0) {
		memset(&u, 0, sizeof(u));
		mh.msg_control = u.buf;
		mh.msg_controllen = sizeof(u.buf);
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &r->fd, sizeof(int));
	}
	if (sendmsg(fd, &mh, MSG_NOSIGNAL) < 0)
		smg_warn("sim host: reply lost: %s", strerror(errno));
}

static void *conn_main(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char *msg = malloc(SMG_SIM_MSG_MAX + 1);
	struct reply *r = malloc(sizeof(*r));
	uint64_t conn;
	ssize_t n;

	pthread_mutex_lock(&host.lock);
	conn = ++host.next_conn;
	pthread_mutex_unlock(&host.lock);
	while (msg != NULL && r != NULL && (n = recv(fd, msg, SMG_SIM_MSG_MAX, 0)) > 0) {
		r->len = 0;
		r->fd = -1;
		r->err = 0;
		pthread_mutex_lock(&host.lock);
		dispatch(conn, msg, (size_t)n, r);
		pthread_mutex_unlock(&host.lock);
		send_reply(fd, r);
	}
	pthread_mutex_lock(&host.lock);
	lease_drop(conn);
	pthread_mutex_unlock(&host.lock);
	close(fd);
	free(msg);
	free(r);
	return NULL;
}

/* One thread per client (smg_unix_serve checked it is root or us). */
static void on_conn(void *arg, int fd)
{
	pthread_t t;

	if (pthread_create(&t, NULL, conn_main, (void *)(intptr_t)fd) != 0) {
		close(fd);
		return;
	}
	pthread_detach(t);
}

int smg_sim_host_run(const char *state_dir)
{
	char path[SMG_DOMAIN_PATH_MAX + 16];
	int lfd = -1, sfd, r;

	if (strlen(state_dir) >= sizeof(host.dir) - 80)
		return SMG_ERR_TOO_LONG;
	snprintf(host.dir, sizeof(host.dir), "%s", state_dir);
	if (mkdir(state_dir, 0700) != 0 && errno != EEXIST)
		return smg_err_sys(errno);
	snprintf(path, sizeof(path), "%s/%s", state_dir, SMG_SIM_SOCK_NAME);
	if ((r = smg_unix_listen(path, SOCK_SEQPACKET, 64, &lfd)) != SMG_OK) {
		if (r == SMG_ERR_EXISTS)
			smg_err("a sim host already serves %s", path);
		return r;
	}
	if ((r = smg_stop_signals(&sfd)) != SMG_OK) {
		close(lfd);
		unlink(path);
		return r;
	}
	smg_info("sim host: serving %s", path);
	smg_notify_ready("serving");
	smg_unix_serve(lfd, sfd, "sim host", on_conn, NULL);
	smg_info("sim host: shutting down");
	close(lfd);
	close(sfd);
	unlink(path);
	pthread_mutex_lock(&host.lock);
	for (unsigned i = 0; i < DOMAINS_MAX; i++)
		if (host.d[i].used)
			dom_free(&host.d[i]);
	pthread_mutex_unlock(&host.lock);
	return SMG_OK;
}
