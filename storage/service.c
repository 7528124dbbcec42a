/* The per-host disk service (DESIGN §2, §5; docs/storage.md): owns the VM
 * images of its storage directory, serves each over NBD on one unix socket,
 * and lets send/recv drive migrations over a control socket. It outlives
 * them: a migration process that dies leaves every guest write here.
 *
 * Both sockets are bound under umask 077 in a 0700 directory, and every
 * connection's SO_PEERCRED uid must be root's or ours. Control messages are
 * length-prefixed (u32 big-endian), parsed by smg_dsvc_parse_request. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/base.h"
#include "storage/svc.h"

#define DEFAULT_STATE_DIR "/var/lib/secmig"

struct conn_ctx {
	struct svc *sv;
	int fd;
	uint64_t id;
	unsigned slot;
};

static int read_full(int fd, void *p, size_t n, int *rfd)
{
	uint8_t *b = p;
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;

	while (n > 0) {
		struct iovec iov = {b, n};
		struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
		ssize_t k;

		if (rfd != NULL) {
			mh.msg_control = u.buf;
			mh.msg_controllen = sizeof(u.buf);
		}
		k = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return smg_err_sys(errno);
		if (k == 0)
			return SMG_ERR_EOF;
		for (struct cmsghdr *c = rfd ? CMSG_FIRSTHDR(&mh) : NULL; c != NULL;
		     c = CMSG_NXTHDR(&mh, c))
			if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
				int got;

				memcpy(&got, CMSG_DATA(c), sizeof(int));
				/* One descriptor per request; extras are closed. */
				if (*rfd < 0 && c->cmsg_len == CMSG_LEN(sizeof(int)))
					*rfd = got;
				else
					close(got);
			}
		b += k;
		n -= (size_t)k;
	}
	return SMG_OK;
}

static int write_full(int fd, const struct iovec *iov, int n)
{
	struct iovec v[4];
	struct msghdr mh = {.msg_iov = v, .msg_iovlen = (size_t)n};

	memcpy(v, iov, (size_t)n * sizeof(*v));
	while (mh.msg_iovlen > 0) {
		ssize_t k = sendmsg(fd, &mh, MSG_NOSIGNAL);

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return smg_err_sys(errno);
		while (mh.msg_iovlen > 0 && (size_t)k >= mh.msg_iov[0].iov_len) {
			k -= (ssize_t)mh.msg_iov[0].iov_len;
			mh.msg_iov++;
			mh.msg_iovlen--;
		}
		if (mh.msg_iovlen > 0) {
			mh.msg_iov[0].iov_base = (uint8_t *)mh.msg_iov[0].iov_base + k;
			mh.msg_iov[0].iov_len -= (size_t)k;
		}
	}
	return SMG_OK;
}

static int send_reply(int fd, const struct svc_reply *r)
{
	uint8_t hdr[4];
	size_t ll = strlen(r->line);
	char nl = '\n';
	struct iovec iov[4] = {{hdr, 4}, {(void *)r->line, ll}, {&nl, 1}, {NULL, 0}};

	if (r->err == 0 && r->payload_len > 0)
		iov[3] = (struct iovec){r->payload, r->payload_len};
	else if (r->err == 0 && r->text_len > 0)
		iov[3] = (struct iovec){r->text, r->text_len};
	smg_store_be32(hdr, (uint32_t)(ll + 1 + iov[3].iov_len));
	return write_full(fd, iov, 4);
}

/* One connection: requests until it closes or breaks the framing. */
static void *conn_main(void *arg)
{
	struct conn_ctx *x = arg;
	struct svc_conn c = {.sv = x->sv, .id = x->id};
	struct svc_reply r = {0};
	uint8_t *in = malloc(SMG_DSVC_MSG_MAX), hdr[4];
	int e;

	r.text = malloc(SMG_DSVC_REPLY_TEXT);
	r.payload = malloc(SMG_DSVC_FRAME_MAX);
	while (in != NULL && r.text != NULL && r.payload != NULL) {
		struct smg_dsvc_req q;
		uint32_t len;
		int fd = -1;

		if ((e = read_full(x->fd, hdr, sizeof(hdr), &fd)) != 0)
			break;
		len = smg_load_be32(hdr);
		/* Longer than any request: a client trying to make us buffer
		 * without bound. No reply can be framed after it: hang up. */
		if (len > SMG_DSVC_MSG_MAX ||
		    (e = read_full(x->fd, in, len, fd < 0 ? &fd : NULL)) != 0) {
			if (fd >= 0)
				close(fd);
			break;
		}
		r.err = 0;
		r.text_len = r.payload_len = 0;
		if ((e = smg_dsvc_parse_request(in, len, &q)) != 0) {
			svc_fail(&r, e, "bad request: %s", smg_strerror(e));
			if (fd >= 0)
				close(fd);
		} else {
			svc_dispatch(&c, &q, fd, &r);
		}
		if (send_reply(x->fd, &r) != 0)
			break;
	}
	svc_lease_drop(&c);
	pthread_mutex_lock(&x->sv->mu);
	x->sv->conn_fd[x->slot] = -1;
	x->sv->nconn--;
	pthread_cond_broadcast(&x->sv->conn_cv);
	pthread_mutex_unlock(&x->sv->mu);
	close(x->fd);
	free(in);
	free(r.text);
	free(r.payload);
	free(x);
	return NULL;
}

/* A directory we own, 0700, not a symlink. */
static int own_dir(const char *path)
{
	struct stat st;

	if (mkdir(path, 0700) != 0 && errno != EEXIST)
		return smg_err_sys(errno);
	if (lstat(path, &st) != 0)
		return smg_err_sys(errno);
	if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid()) {
		smg_err("%s: not a directory owned by us", path);
		return SMG_ERR_PERM;
	}
	if ((st.st_mode & 077) != 0 && chmod(path, 0700) != 0)
		return smg_err_sys(errno);
	return SMG_OK;
}

static int setup(struct svc *sv, const struct smg_dsvc_config *cfg)
{
	const char *sd = cfg->state_dir ? cfg->state_dir : DEFAULT_STATE_DIR;
	int w, r;

	sv->cfg = *cfg;
	w = snprintf(sv->state_dir, sizeof(sv->state_dir), "%s", sd);
	if (cfg->storage_dir)
		w |= snprintf(sv->storage_dir, sizeof(sv->storage_dir), "%s",
			      cfg->storage_dir);
	else
		w |= snprintf(sv->storage_dir, sizeof(sv->storage_dir), "%s/disks", sd);
	w |= snprintf(sv->surr_dir, sizeof(sv->surr_dir), "%s",
		      cfg->surrogate_dir ? cfg->surrogate_dir : sv->storage_dir);
	if (w < 0 || strlen(sv->storage_dir) >= SVC_PATH_MAX - SMG_DSVC_NAME_MAX - 16 ||
	    strlen(sv->surr_dir) >= SVC_PATH_MAX - SMG_DSVC_NAME_MAX - 16)
		return SMG_ERR_TOO_LONG;
	if (cfg->chunk != 0 &&
	    (cfg->chunk < SMG_STG_CHUNK_MIN || cfg->chunk > SMG_STG_CHUNK_MAX ||
	     cfg->chunk % SMG_STG_BLOCK != 0))
		return SMG_ERR_CONFIG;
	if ((r = own_dir(sv->state_dir)) != 0 || (r = own_dir(sv->storage_dir)) != 0 ||
	    (r = own_dir(sv->surr_dir)) != 0)
		return r;
	sv->bad_image_fault =
	    getenv("SMG_FI") != NULL && strstr(getenv("SMG_FI"), "dst_bad_disk") != NULL;
	return SMG_OK;
}

/* A control connection (smg_unix_serve checked it is root or us): a slot
 * and a thread, or closed when all SMG_DSVC_CONNS_MAX are taken. */
static void on_conn(void *arg, int c)
{
	struct svc *sv = arg;
	struct conn_ctx *x;
	pthread_t t;

	if ((x = malloc(sizeof(*x))) == NULL) {
		close(c);
		return;
	}
	*x = (struct conn_ctx){sv, c, 0, SMG_DSVC_CONNS_MAX};
	pthread_mutex_lock(&sv->mu);
	for (unsigned i = 0; i < SMG_DSVC_CONNS_MAX && x->slot == SMG_DSVC_CONNS_MAX; i++)
		if (sv->conn_fd[i] < 0)
			x->slot = i;
	if (x->slot < SMG_DSVC_CONNS_MAX) {
		x->id = ++sv->next_conn;
		sv->conn_fd[x->slot] = c;
		sv->nconn++;
	}
	pthread_mutex_unlock(&sv->mu);
	if (x->slot == SMG_DSVC_CONNS_MAX) {
		smg_warn("disk service: %u control connections already",
			 SMG_DSVC_CONNS_MAX);
		close(c);
		free(x);
		return;
	}
	if (pthread_create(&t, NULL, conn_main, x) != 0) {
		pthread_mutex_lock(&sv->mu);
		sv->conn_fd[x->slot] = -1;
		sv->nconn--;
		pthread_mutex_unlock(&sv->mu);
		close(c);
		free(x);
		return;
	}
	pthread_detach(t);
}

int smg_dsvc_run(const struct smg_dsvc_config *cfg)
{
	static struct svc sv = {.mu = PTHREAD_MUTEX_INITIALIZER,
				.conn_cv = PTHREAD_COND_INITIALIZER};
	char csock[SVC_PATH_MAX + 32], nsock[SVC_PATH_MAX + 32];
	int lfd = -1, sfd = -1, r;

	for (unsigned i = 0; i < SMG_DSVC_CONNS_MAX; i++)
		sv.conn_fd[i] = -1;
	if ((r = setup(&sv, cfg)) != 0)
		return r;
	/* Before any thread exists, so every thread inherits the mask and
	 * SIGTERM reaches only the signalfd. */
	if ((r = smg_stop_signals(&sfd)) != 0)
		return r;
	snprintf(csock, sizeof(csock), "%s/%s", sv.state_dir, SMG_DSVC_SOCK_NAME);
	snprintf(nsock, sizeof(nsock), "%s/%s", sv.state_dir, SMG_DSVC_NBD_NAME);
	if ((r = smg_unix_listen(csock, SOCK_STREAM, 64, &lfd)) != 0) {
		if (r == SMG_ERR_EXISTS)
			smg_err("a disk service already serves %s", csock);
		close(sfd);
		return r;
	}
	if ((r = smg_nbd_server_open(nsock, &sv.nbd)) != 0)
		goto out;
	if ((r = svc_load(&sv)) != 0)
		goto out;
	smg_info("disk service: control %s, NBD %s, images in %s", csock, nsock,
		 sv.storage_dir);
	smg_notify_ready("serving");
	smg_unix_serve(lfd, sfd, "disk service", on_conn, &sv);
	smg_info("disk service: shutting down");
out:
	if (lfd >= 0) {
		close(lfd);
		unlink(csock);
	}
	if (sfd >= 0)
		close(sfd);
	/* Connections end first (their leases are undone or kept as usual),
	 * then every export. */
	pthread_mutex_lock(&sv.mu);
	for (unsigned i = 0; i < SMG_DSVC_CONNS_MAX; i++)
		if (sv.conn_fd[i] >= 0)
			shutdown(sv.conn_fd[i], SHUT_RDWR);
	while (sv.nconn > 0)
		pthread_cond_wait(&sv.conn_cv, &sv.mu);
	pthread_mutex_unlock(&sv.mu);
	if (sv.nbd != NULL)
		svc_unload(&sv);
	smg_nbd_server_stop(sv.nbd);
	return r;
}
