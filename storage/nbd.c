/* The NBD server: one unix socket, any number of exports (the disk
 * service's disks, or one disk), one thread per client (at most
 * SMG_NBD_CLIENTS_MAX), each running nbd_session_run over the socket.
 *
 * The socket is bound under umask 077 (no window in which it exists with
 * looser bits) and every client's SO_PEERCRED uid must be root's or ours:
 * an export is a VM's whole disk. Our own server rather than an nbdkit
 * plugin: see docs/storage.md. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "base/base.h"
#include "storage/nbd.h"

#define EXPORTS_MAX SMG_DSVC_DISKS_MAX

struct export
{
	bool used, gone;
	char name[SMG_DSVC_NAME_MAX + 1];
	struct smg_vdisk *disk;
	unsigned refs;
};

struct client {
	struct smg_nbd_server *srv;
	pthread_t thread;
	int fd;
	bool used, done;
	struct export *ex; /* chosen export, NULL before GO */
};

struct smg_nbd_server {
	char *path;
	int lfd;
	int stop_pipe[2];
	pthread_t accept_thread;
	pthread_mutex_t mu;
	pthread_cond_t cv; /* an export's refs dropped */
	struct export ex[EXPORTS_MAX];
	struct client clients[SMG_NBD_CLIENTS_MAX];
};

static int fd_recv(void *self, void *p, size_t n)
{
	int fd = *(int *)self;
	uint8_t *b = p;

	while (n > 0) {
		ssize_t k = recv(fd, b, n, 0);

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return smg_err_sys(errno);
		if (k == 0)
			return SMG_ERR_EOF;
		b += k;
		n -= (size_t)k;
	}
	return SMG_OK;
}

static int fd_send(void *self, const void *p, size_t n)
{
	int fd = *(int *)self;
	const uint8_t *b = p;

	while (n > 0) {
		ssize_t k = send(fd, b, n, MSG_NOSIGNAL);

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return smg_err_sys(errno);
		b += k;
		n -= (size_t)k;
	}
	return SMG_OK;
}

/* mu held. */
static struct export *find_export(struct smg_nbd_server *s, const char *name, size_t n)
{
	if (n == 0) {
		name = SMG_NBD_EXPORT_NAME;
		n = strlen(name);
	}
	for (unsigned i = 0; i < EXPORTS_MAX; i++) {
		struct export *e = &s->ex[i];

		if (e->used && !e->gone && strlen(e->name) == n &&
		    memcmp(e->name, name, n) == 0)
			return e;
	}
	return NULL;
}

static struct smg_vdisk *lk_get(void *self, const char *name, size_t n, void **ref)
{
	struct client *c = self;
	struct smg_nbd_server *s = c->srv;
	struct export *e;

	pthread_mutex_lock(&s->mu);
	if ((e = find_export(s, name, n)) != NULL) {
		e->refs++;
		c->ex = e;
	}
	pthread_mutex_unlock(&s->mu);
	*ref = e;
	return e != NULL ? e->disk : NULL;
}

static void lk_put(void *self, void *ref)
{
	struct client *c = self;
	struct export *e = ref;

	pthread_mutex_lock(&c->srv->mu);
	if (c->ex == e)
		c->ex = NULL;
	if (--e->refs == 0)
		pthread_cond_broadcast(&c->srv->cv);
	pthread_mutex_unlock(&c->srv->mu);
}

static size_t lk_names(void *self, char (*out)[SMG_DSVC_NAME_MAX + 1], size_t max)
{
	struct client *c = self;
	size_t n = 0;

	pthread_mutex_lock(&c->srv->mu);
	for (unsigned i = 0; i < EXPORTS_MAX && n < max; i++)
		if (c->srv->ex[i].used && !c->srv->ex[i].gone)
			memcpy(out[n++], c->srv->ex[i].name, sizeof(out[0]));
	pthread_mutex_unlock(&c->srv->mu);
	return n;
}

static void *client_main(void *arg)
{
	struct client *c = arg;
	struct nbd_io io = {fd_recv, fd_send, &c->fd};
	struct nbd_lookup lk = {lk_get, lk_put, lk_names, c};
	struct nbd_sess s = {.lk = &lk, .io = &io};
	int r = nbd_session_run(&s);

	if (r != 0 && r != SMG_ERR_EOF)
		smg_peer_log(SMG_LOG_INFO, "nbd: client disconnected: %s",
			     smg_strerror(r));
	/* Hang up now; the fd itself is closed when the thread is reaped. */
	shutdown(c->fd, SHUT_RDWR);
	pthread_mutex_lock(&c->srv->mu);
	c->done = true;
	pthread_mutex_unlock(&c->srv->mu);
	return NULL;
}

/* mu held: join clients that have finished (all: hang up the others). */
static void reap(struct smg_nbd_server *s, bool all)
{
	for (unsigned i = 0; i < SMG_NBD_CLIENTS_MAX; i++) {
		struct client *c = &s->clients[i];

		if (!c->used || (!c->done && !all))
			continue;
		if (!c->done)
			shutdown(c->fd, SHUT_RDWR);
		pthread_mutex_unlock(&s->mu);
		pthread_join(c->thread, NULL);
		pthread_mutex_lock(&s->mu);
		close(c->fd);
		c->used = c->done = false;
	}
}

static void start_client(struct smg_nbd_server *s, int fd)
{
	struct client *c = NULL;

	/* Root or our own uid only (SO_PEERCRED): the socket's directory is
	 * 0700 already, this holds even where an operator loosened it. */
	if (!smg_peer_is_owner(fd)) {
		smg_peer_log(SMG_LOG_WARN, "nbd: a client of another user refused");
		close(fd);
		return;
	}
	pthread_mutex_lock(&s->mu);
	reap(s, false);
	for (unsigned i = 0; i < SMG_NBD_CLIENTS_MAX && c == NULL; i++)
		if (!s->clients[i].used)
			c = &s->clients[i];
	if (c == NULL) {
		smg_peer_log(SMG_LOG_WARN, "nbd: %u clients already; refusing one",
			     SMG_NBD_CLIENTS_MAX);
		close(fd);
		goto out;
	}
	*c = (struct client){.srv = s, .fd = fd, .used = true};
	if (pthread_create(&c->thread, NULL, client_main, c) != 0) {
		c->used = false;
		close(fd);
	}
out:
	pthread_mutex_unlock(&s->mu);
}

static void *accept_main(void *arg)
{
	struct smg_nbd_server *s = arg;
	struct pollfd pfd[2] = {{s->lfd, POLLIN, 0}, {s->stop_pipe[0], POLLIN, 0}};

	for (;;) {
		int fd;

		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pfd[1].revents)
			break;
		fd = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		start_client(s, fd); /* checks the peer's uid first */
	}
	return NULL;
}

int smg_nbd_server_open(const char *sock_path, struct smg_nbd_server **out)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct smg_nbd_server *s;
	mode_t old;
	int r, rc;

	*out = NULL;
	if (strlen(sock_path) >= sizeof(sa.sun_path))
		return SMG_ERR_TOO_LONG;
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return SMG_ERR_NOMEM;
	s->lfd = s->stop_pipe[0] = s->stop_pipe[1] = -1;
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cv, NULL);
	if ((s->path = strdup(sock_path)) == NULL) {
		r = SMG_ERR_NOMEM;
		goto fail;
	}
	strcpy(sa.sun_path, sock_path);
	(void)unlink(sock_path); /* a stale socket from an earlier run */
	s->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	/* 0600 from birth: a chmod after bind leaves a window in which any
	 * local user may connect (issue 13). */
	old = umask(077);
	rc = s->lfd < 0 ? -1 : bind(s->lfd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (rc != 0 || listen(s->lfd, SMG_NBD_CLIENTS_MAX) != 0 ||
	    pipe2(s->stop_pipe, O_CLOEXEC) != 0) {
		r = smg_err_sys(errno);
		smg_err("nbd: %s: %s", sock_path, strerror(errno));
		goto fail;
	}
	if (pthread_create(&s->accept_thread, NULL, accept_main, s) != 0) {
		r = SMG_ERR_SYS;
		goto fail;
	}
	*out = s;
	return SMG_OK;
fail:
	if (s->lfd >= 0) {
		close(s->lfd);
		unlink(sock_path);
	}
	if (s->stop_pipe[0] >= 0) {
		close(s->stop_pipe[0]);
		close(s->stop_pipe[1]);
	}
	pthread_cond_destroy(&s->cv);
	pthread_mutex_destroy(&s->mu);
	free(s->path);
	free(s);
	return r;
}

int smg_nbd_server_add(struct smg_nbd_server *s, const char *name, struct smg_vdisk *d)
{
	struct export *e = NULL;
	int r = SMG_OK;

	if (strlen(name) > SMG_DSVC_NAME_MAX)
		return SMG_ERR_TOO_LONG;
	pthread_mutex_lock(&s->mu);
	if (find_export(s, name, strlen(name)) != NULL) {
		r = SMG_ERR_EXISTS;
		goto out;
	}
	for (unsigned i = 0; i < EXPORTS_MAX && e == NULL; i++)
		if (!s->ex[i].used)
			e = &s->ex[i];
	if (e == NULL) {
		r = SMG_ERR_BUSY;
		goto out;
	}
	*e = (struct export){.used = true, .disk = d};
	snprintf(e->name, sizeof(e->name), "%s", name);
out:
	pthread_mutex_unlock(&s->mu);
	return r;
}

void smg_nbd_server_remove(struct smg_nbd_server *s, const char *name)
{
	struct export *e;

	pthread_mutex_lock(&s->mu);
	if ((e = find_export(s, name, strlen(name))) == NULL) {
		pthread_mutex_unlock(&s->mu);
		return;
	}
	e->gone = true;
	for (unsigned i = 0; i < SMG_NBD_CLIENTS_MAX; i++)
		if (s->clients[i].used && s->clients[i].ex == e)
			shutdown(s->clients[i].fd, SHUT_RDWR);
	while (e->refs > 0)
		pthread_cond_wait(&s->cv, &s->mu);
	memset(e, 0, sizeof(*e));
	pthread_mutex_unlock(&s->mu);
}

unsigned smg_nbd_server_clients(struct smg_nbd_server *s, const char *name)
{
	struct export *e;
	unsigned n;

	pthread_mutex_lock(&s->mu);
	e = find_export(s, name, strlen(name));
	n = e != NULL ? e->refs : 0;
	pthread_mutex_unlock(&s->mu);
	return n;
}

int smg_nbd_server_start(struct smg_vdisk *d, const char *sock_path,
			 struct smg_nbd_server **out)
{
	int r;

	if ((r = smg_nbd_server_open(sock_path, out)) != 0)
		return r;
	if ((r = smg_nbd_server_add(*out, SMG_NBD_EXPORT_NAME, d)) != 0) {
		smg_nbd_server_stop(*out);
		*out = NULL;
	}
	return r;
}

void smg_nbd_server_stop(struct smg_nbd_server *s)
{
	if (s == NULL)
		return;
	if (write(s->stop_pipe[1], "x", 1) != 1)
		smg_warn("nbd: could not wake the accept thread");
	pthread_join(s->accept_thread, NULL);
	pthread_mutex_lock(&s->mu);
	reap(s, true);
	pthread_mutex_unlock(&s->mu);
	close(s->lfd);
	close(s->stop_pipe[0]);
	close(s->stop_pipe[1]);
	unlink(s->path);
	pthread_cond_destroy(&s->cv);
	pthread_mutex_destroy(&s->mu);
	free(s->path);
	free(s);
}
