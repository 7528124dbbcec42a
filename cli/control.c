/* The local control socket of a migration process (DESIGN §2, §9): each
 * process serves DIR/control/PID.sock, through which `secmig status`,
 * `secmig cancel` and `secmig tune` reach the migrations it runs and
 * `secmig metrics` reads its counters.
 *
 * Root-only, like the sim host's and the disk service's sockets: the
 * directory is 0700 and must belong to us, the socket is created 0600
 * under umask 077, and every connection's peer credentials (SO_PEERCRED)
 * must be root or our own uid; the client checks the server the same way.
 * One request line (at most SMG_CTL_REQ_MAX bytes, read with a deadline),
 * one JSON reply, then the connection closes. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "base/base.h"
#include "cli/migrate.h"

#define CTL_IO_TIMEOUT_MS 2000

struct smg_ctl_server {
	int fd, stop_pipe[2];
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	pthread_t tid;
	pthread_mutex_t lock;
	struct smg_live *live[SMG_CTL_MIGRATIONS_MAX];
};

static bool cred_ok(int fd)
{
	struct ucred uc;
	socklen_t n = sizeof(uc);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &n) != 0 || n != sizeof(uc))
		return false;
	return uc.uid == 0 || uc.uid == geteuid();
}

static int ctl_dir(const char *state_dir, char *dir, size_t n)
{
	struct stat sb;

	if ((size_t)snprintf(dir, n, "%s/control", state_dir) >= n)
		return SMG_ERR_TOO_LONG;
	if (mkdir(state_dir, 0700) != 0 && errno != EEXIST)
		return smg_err_sys(errno);
	if (mkdir(dir, 0700) != 0 && errno != EEXIST)
		return smg_err_sys(errno);
	if (lstat(dir, &sb) != 0)
		return smg_err_sys(errno);
	if (!S_ISDIR(sb.st_mode) || sb.st_uid != geteuid() || (sb.st_mode & 077) != 0) {
		smg_err("%s: must be a directory of ours with mode 0700", dir);
		return SMG_ERR_PERM;
	}
	return SMG_OK;
}

static void send_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w <= 0)
			return;
		p += w;
		n -= (size_t)w;
	}
}

static void reply(int fd, json_object *j)
{
	const char *t = json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN);

	send_all(fd, t, strlen(t));
	json_object_put(j);
}

static json_object *reply_new(bool ok, const char *error, const char *detail)
{
	json_object *j = json_object_new_object();

	json_object_object_add(j, "ok", json_object_new_boolean(ok));
	json_object_object_add(j, "pid", json_object_new_int64(getpid()));
	if (error != NULL)
		json_object_object_add(j, "error", json_object_new_string(error));
	if (detail != NULL)
		json_object_object_add(j, "detail", json_object_new_string(detail));
	return j;
}

static bool matches(struct smg_live *l, const struct smg_ctl_req *rq)
{
	struct smg_live_status s;

	smg_live_get(l, &s);
	return rq->id[0] != '\0' ? strcmp(s.migration_id, rq->id) == 0
				 : strcmp(s.domain, rq->domain) == 0;
}

static void act(struct smg_ctl_server *sv, int fd, const struct smg_ctl_req *rq,
		uid_t uid)
{
	char why[64], detail[128];
	struct smg_live *l = NULL;
	int r;

	for (unsigned i = 0; i < SMG_CTL_MIGRATIONS_MAX && l == NULL; i++)
		if (sv->live[i] != NULL && matches(sv->live[i], rq))
			l = sv->live[i];
	if (l == NULL) {
		reply(fd,
		      reply_new(false, "not_found", "no such migration in this process"));
		return;
	}
	if (rq->verb == SMG_CTL_CANCEL) {
		snprintf(why, sizeof(why), "secmig cancel, uid %u", (unsigned)uid);
		r = smg_live_cancel(l, why);
		if (r == SMG_OK)
			smg_warn("%s: cancelling the migration", why);
		else
			smg_warn(
			    "%s: the hand-over is past COMMIT and cannot be cancelled; "
			    "it completes or ends in doubt",
			    why);
		reply(fd, r == SMG_OK
			      ? reply_new(true, NULL, "cancelling")
			      : reply_new(false, "past_commit",
					  "past COMMIT: the hand-over completes or "
					  "ends in doubt"));
		return;
	}
	r = smg_live_tune(l, rq->bandwidth, rq->max_downtime_ms);
	snprintf(detail, sizeof(detail), "bandwidth %s, max downtime %s",
		 rq->bandwidth ? "changed" : "kept",
		 rq->max_downtime_ms ? "changed" : "kept");
	reply(fd, r == SMG_OK ? reply_new(true, NULL, detail)
			      : reply_new(false, "too_late",
					  "only a sending migration before stop-and-copy "
					  "can be tuned"));
}

static void serve_conn(struct smg_ctl_server *sv, int fd)
{
	char buf[SMG_CTL_REQ_MAX + 1];
	struct smg_ctl_req rq;
	struct ucred uc = {0};
	socklen_t cl = sizeof(uc);
	size_t len = 0;
	struct pollfd p = {.fd = fd, .events = POLLIN};

	if (!cred_ok(fd)) {
		smg_peer_log(SMG_LOG_WARN, "control socket: refused a non-root client");
		return;
	}
	getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &cl);
	/* one line, bounded, with a deadline: a silent client cannot hold us */
	while (len < sizeof(buf) - 1 && memchr(buf, '\n', len) == NULL) {
		if (poll(&p, 1, CTL_IO_TIMEOUT_MS) <= 0)
			return;
		ssize_t n = recv(fd, buf + len, sizeof(buf) - 1 - len, 0);
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	if (smg_ctl_parse_request((const uint8_t *)buf, len, &rq) != SMG_OK) {
		reply(fd, reply_new(false, "bad_request", "see secmig help status"));
		return;
	}
	pthread_mutex_lock(&sv->lock);
	if (rq.verb == SMG_CTL_STATUS) {
		json_object *j = reply_new(true, NULL, NULL),
			    *a = json_object_new_array();
		for (unsigned i = 0; i < SMG_CTL_MIGRATIONS_MAX; i++) {
			struct smg_live_status s;
			if (sv->live[i] == NULL)
				continue;
			smg_live_get(sv->live[i], &s);
			if (s.migration_id[0] != '\0')
				json_object_array_add(a, smg_ctl_status_json(&s));
		}
		json_object_object_add(j, "migrations", a);
		reply(fd, j);
	} else if (rq.verb == SMG_CTL_METRICS) {
		struct smg_metrics m;
		json_object *j = reply_new(true, NULL, NULL);
		smg_metrics_get(&m);
		json_object_object_add(j, "metrics", smg_metrics_json(&m));
		reply(fd, j);
	} else {
		act(sv, fd, &rq, uc.uid);
	}
	pthread_mutex_unlock(&sv->lock);
}

static void *server_main(void *arg)
{
	struct smg_ctl_server *sv = arg;
	struct pollfd p[2] = {{.fd = sv->fd, .events = POLLIN},
			      {.fd = sv->stop_pipe[0], .events = POLLIN}};

	for (;;) {
		if (poll(p, 2, -1) < 0 && errno != EINTR)
			break;
		if (p[1].revents != 0)
			break;
		if (p[0].revents == 0)
			continue;
		int c = accept4(sv->fd, NULL, NULL, SOCK_CLOEXEC);
		if (c < 0)
			continue;
		serve_conn(sv, c);
		close(c);
	}
	return NULL;
}

/* Sockets of processes that died without removing theirs. */
static void sweep(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char path[1024];

	while (d != NULL && (e = readdir(d)) != NULL) {
		char *end;
		long pid = strtol(e->d_name, &end, 10);
		if (pid <= 0 || strcmp(end, ".sock") != 0)
			continue;
		if (kill((pid_t)pid, 0) != 0 && errno == ESRCH) {
			snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
			unlink(path);
		}
	}
	if (d != NULL)
		closedir(d);
}

int smg_ctl_server_start(const char *state_dir, struct smg_ctl_server **out)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct smg_ctl_server *sv;
	char dir[512];
	mode_t old;
	int r;

	*out = NULL;
	if ((r = ctl_dir(state_dir, dir, sizeof(dir))) != SMG_OK)
		return r;
	sweep(dir);
	if ((sv = calloc(1, sizeof(*sv))) == NULL)
		return SMG_ERR_NOMEM;
	pthread_mutex_init(&sv->lock, NULL);
	sv->stop_pipe[0] = sv->stop_pipe[1] = -1;
	if ((size_t)snprintf(sv->path, sizeof(sv->path), "%s/%ld.sock", dir,
			     (long)getpid()) >= sizeof(sv->path)) {
		r = SMG_ERR_TOO_LONG;
		goto fail;
	}
	memcpy(sa.sun_path, sv->path, strlen(sv->path) + 1);
	unlink(sv->path);
	if ((sv->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0) {
		r = smg_err_sys(errno);
		goto fail;
	}
	old = umask(077);
	r = bind(sv->fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (r != 0 || chmod(sv->path, 0600) != 0 || listen(sv->fd, 8) != 0 ||
	    pipe2(sv->stop_pipe, O_CLOEXEC) != 0) {
		r = smg_err_sys(errno);
		goto fail;
	}
	if (pthread_create(&sv->tid, NULL, server_main, sv) != 0) {
		r = SMG_ERR_SYS;
		goto fail;
	}
	*out = sv;
	return SMG_OK;
fail:
	smg_err("control socket %s: %s", sv->path, smg_strerror(r));
	if (sv->fd >= 0)
		close(sv->fd);
	if (sv->stop_pipe[0] >= 0) {
		close(sv->stop_pipe[0]);
		close(sv->stop_pipe[1]);
	}
	unlink(sv->path);
	pthread_mutex_destroy(&sv->lock);
	free(sv);
	return r;
}

int smg_ctl_server_add(struct smg_ctl_server *sv, struct smg_live *l)
{
	int r = SMG_ERR_BUSY;

	if (sv == NULL)
		return SMG_OK;
	pthread_mutex_lock(&sv->lock);
	for (unsigned i = 0; i < SMG_CTL_MIGRATIONS_MAX; i++)
		if (sv->live[i] == NULL) {
			sv->live[i] = l;
			r = SMG_OK;
			break;
		}
	pthread_mutex_unlock(&sv->lock);
	return r;
}

void smg_ctl_server_remove(struct smg_ctl_server *sv, struct smg_live *l)
{
	if (sv == NULL)
		return;
	pthread_mutex_lock(&sv->lock);
	for (unsigned i = 0; i < SMG_CTL_MIGRATIONS_MAX; i++)
		if (sv->live[i] == l)
			sv->live[i] = NULL;
	pthread_mutex_unlock(&sv->lock);
}

void smg_ctl_server_stop(struct smg_ctl_server *sv)
{
	if (sv == NULL)
		return;
	(void)!write(sv->stop_pipe[1], "x", 1);
	pthread_join(sv->tid, NULL);
	unlink(sv->path);
	close(sv->fd);
	close(sv->stop_pipe[0]);
	close(sv->stop_pipe[1]);
	pthread_mutex_destroy(&sv->lock);
	free(sv);
}

/* ---- client ---------------------------------------------------------------- */
static int query_one(const char *path, const char *req, struct smg_ctl_reply *rep)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct pollfd p;
	char *buf;
	size_t len = 0;
	int fd, r = SMG_ERR_PROTO;

	if (strlen(path) >= sizeof(sa.sun_path))
		return SMG_ERR_TOO_LONG;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return smg_err_sys(errno);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		r = smg_err_sys(errno);
		close(fd);
		return r;
	}
	if (!cred_ok(fd)) {
		smg_err("control socket %s: its owner is neither root nor us", path);
		close(fd);
		return SMG_ERR_PERM;
	}
	if ((buf = malloc(SMG_CTL_REPLY_MAX + 1)) == NULL) {
		close(fd);
		return SMG_ERR_NOMEM;
	}
	send_all(fd, req, strlen(req));
	p = (struct pollfd){.fd = fd, .events = POLLIN};
	while (len < SMG_CTL_REPLY_MAX && poll(&p, 1, CTL_IO_TIMEOUT_MS) > 0) {
		ssize_t n = recv(fd, buf + len, SMG_CTL_REPLY_MAX - len, 0);
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	if (len > 0)
		r = smg_ctl_parse_reply(buf, len, rep);
	free(buf);
	close(fd);
	return r;
}

int smg_ctl_query_all(const char *state_dir, const struct smg_ctl_req *req,
		      void (*fn)(void *arg, const struct smg_ctl_reply *r), void *arg)
{
	char dir[512], path[1024], line[SMG_CTL_REQ_MAX + 1];
	struct smg_ctl_reply *rep;
	struct dirent *e;
	DIR *d;
	int n = 0;

	if (smg_ctl_format_request(req, line, sizeof(line)) < 0)
		return SMG_ERR_INVAL;
	if ((size_t)snprintf(dir, sizeof(dir), "%s/control", state_dir) >= sizeof(dir))
		return SMG_ERR_TOO_LONG;
	if ((d = opendir(dir)) == NULL)
		return errno == ENOENT ? 0 : smg_err_sys(errno);
	if ((rep = malloc(sizeof(*rep))) == NULL) {
		closedir(d);
		return SMG_ERR_NOMEM;
	}
	while ((e = readdir(d)) != NULL) {
		char *end;
		long pid = strtol(e->d_name, &end, 10);
		if (pid <= 0 || strcmp(end, ".sock") != 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		if (query_one(path, line, rep) == SMG_OK) {
			n++;
			fn(arg, rep);
		}
	}
	free(rep);
	closedir(d);
	return n;
}
