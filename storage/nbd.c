/* The NBD server: a unix socket, one thread per client (at most
 * SMG_NBD_CLIENTS_MAX), each running nbd_session_run over the socket.
 *
 * Our own server rather than an nbdkit plugin: guest I/O must enter the
 * same smg_vdisk the migration drives (mode switches, the gate at
 * stop-and-copy, the surrogate), inside the process that runs the engine;
 * see docs/storage.md. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "base/base.h"
#include "storage/nbd.h"

struct client {
	struct smg_nbd_server *srv;
	pthread_t thread;
	int fd;
	bool used, done;
};

struct smg_nbd_server {
	struct smg_vdisk *disk;
	char *path;
	int lfd;
	int stop_pipe[2];
	pthread_t accept_thread;
	pthread_mutex_t mu;
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

static void *client_main(void *arg)
{
	struct client *c = arg;
	struct nbd_io io = {fd_recv, fd_send, &c->fd};
	struct nbd_sess s = {.disk = c->srv->disk, .io = &io};
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

/* mu held: join clients that have finished. */
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
	c->srv = s;
	c->fd = fd;
	c->done = false;
	c->used = true;
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
		if (!smg_peer_is_owner(fd)) {
			smg_peer_log(SMG_LOG_WARN,
				     "nbd: refusing a client of another user");
			close(fd);
			continue;
		}
		start_client(s, fd);
	}
	return NULL;
}

int smg_nbd_server_start(struct smg_vdisk *d, const char *sock_path,
			 struct smg_nbd_server **out)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct smg_nbd_server *s;
	int r;

	*out = NULL;
	if (strlen(sock_path) >= sizeof(sa.sun_path))
		return SMG_ERR_TOO_LONG;
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return SMG_ERR_NOMEM;
	s->disk = d;
	s->lfd = s->stop_pipe[0] = s->stop_pipe[1] = -1;
	pthread_mutex_init(&s->mu, NULL);
	if ((s->path = strdup(sock_path)) == NULL) {
		r = SMG_ERR_NOMEM;
		goto fail;
	}
	strcpy(sa.sun_path, sock_path);
	(void)unlink(sock_path); /* a stale socket from an earlier run */
	s->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	/* 0600 from birth: a chmod after bind leaves a window in which any
	 * local user may connect (issue 13). */
	mode_t old = umask(077);
	int rc = s->lfd < 0 ? -1 : bind(s->lfd, (struct sockaddr *)&sa, sizeof(sa));
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
	pthread_mutex_destroy(&s->mu);
	free(s->path);
	free(s);
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
	pthread_mutex_destroy(&s->mu);
	free(s->path);
	free(s);
}
