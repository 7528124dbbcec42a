/* A QMP client: one unix-socket connection to QEMU's machine protocol.
 * Messages are JSON objects, one per line. Whatever QEMU sends is parsed
 * as untrusted (a guest that took over its QEMU speaks for it here): lines
 * are capped at SMG_QMP_LINE_MAX, parsed by json-c, and only the few
 * members we need are read, with their types checked. Each command carries
 * an "id" that its reply must echo. */
#include <errno.h>
#include <json-c/json.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "base/base.h"
#include "engine/backend/qemu_internal.h"

#define QMP_READ_CHUNK	 65536u
#define QMP_RETRY_NS	 20000000L /* 20 ms between connection attempts */
#define QMP_POLL_MIGR_NS 2000000L  /* 2 ms between query-migrate */
#define QMP_JSON_DEPTH	 16

struct smg_qmp {
	int fd;
	pid_t pid;
	int64_t next_id;
	char *buf; /* received, not yet consumed */
	size_t have;
};

void smg_qmp_msg_free(struct smg_qmp_msg *m)
{
	if (m->obj != NULL)
		json_object_put(m->obj);
	memset(m, 0, sizeof(*m));
}

static void copy_str(struct json_object *o, const char *key, char *out, size_t cap)
{
	struct json_object *v;

	out[0] = '\0';
	if (json_object_object_get_ex(o, key, &v) &&
	    json_object_is_type(v, json_type_string))
		snprintf(out, cap, "%s", json_object_get_string(v));
}

int smg_qmp_parse(const char *line, size_t len, struct smg_qmp_msg *m)
{
	struct json_tokener *tok;
	struct json_object *o, *v;
	char cls[64], desc[160];

	memset(m, 0, sizeof(*m));
	m->id = -1;
	if (len == 0 || len > SMG_QMP_LINE_MAX || len > (size_t)INT32_MAX)
		return SMG_ERR_PROTO;
	if ((tok = json_tokener_new_ex(QMP_JSON_DEPTH)) == NULL)
		return SMG_ERR_NOMEM;
	o = json_tokener_parse_ex(tok, line, (int)len);
	/* Exactly one complete object, nothing after it but line endings. */
	if (o != NULL && json_tokener_get_error(tok) == json_tokener_success) {
		for (size_t i = json_tokener_get_parse_end(tok); i < len; i++)
			if (line[i] != '\r' && line[i] != '\n' && line[i] != ' ') {
				json_object_put(o);
				o = NULL;
				break;
			}
	} else if (o != NULL) {
		json_object_put(o);
		o = NULL;
	}
	json_tokener_free(tok);
	if (o == NULL || !json_object_is_type(o, json_type_object)) {
		if (o != NULL)
			json_object_put(o);
		return SMG_ERR_PROTO;
	}
	m->obj = o;
	if (json_object_object_get_ex(o, "id", &v) &&
	    json_object_is_type(v, json_type_int))
		m->id = json_object_get_int64(v);
	if (json_object_object_get_ex(o, "return", &v)) {
		m->kind = SMG_QMP_RETURN;
		m->ret = v;
	} else if (json_object_object_get_ex(o, "error", &v) &&
		   json_object_is_type(v, json_type_object)) {
		m->kind = SMG_QMP_ERROR;
		copy_str(v, "class", cls, sizeof(cls));
		copy_str(v, "desc", desc, sizeof(desc));
		snprintf(m->error, sizeof(m->error), "%s: %s", cls, desc);
	} else if (json_object_object_get_ex(o, "event", &v) &&
		   json_object_is_type(v, json_type_string)) {
		m->kind = SMG_QMP_EVENT;
		copy_str(o, "event", m->event, sizeof(m->event));
	} else if (json_object_object_get_ex(o, "QMP", &v)) {
		m->kind = SMG_QMP_GREETING;
	} else {
		smg_qmp_msg_free(m);
		return SMG_ERR_PROTO;
	}
	return SMG_OK;
}

static int64_t ms_left(uint64_t deadline)
{
	uint64_t now = smg_now_ms();

	return now >= deadline ? 0 : (int64_t)(deadline - now);
}

/* Take the next complete line out of the buffer, if there is one. */
static int take_line(struct smg_qmp *q, struct smg_qmp_msg *m, bool *got)
{
	char *nl = q->have > 0 ? memchr(q->buf, '\n', q->have) : NULL;
	size_t n;
	int r;

	*got = false;
	if (nl == NULL)
		return q->have >= SMG_QMP_LINE_MAX ? SMG_ERR_TOO_LONG : SMG_OK;
	n = (size_t)(nl - q->buf) + 1;
	r = smg_qmp_parse(q->buf, n, m);
	memmove(q->buf, q->buf + n, q->have - n);
	q->have -= n;
	if (r != SMG_OK) {
		smg_peer_log(SMG_LOG_ERROR, "qemu: QMP sent a malformed message");
		return r;
	}
	*got = true;
	return SMG_OK;
}

/* Read more bytes; waits at most wait_ms (0: only what is there). */
static int fill(struct smg_qmp *q, int64_t wait_ms)
{
	struct pollfd pf = {.fd = q->fd, .events = POLLIN};
	size_t room = SMG_QMP_LINE_MAX - q->have;
	ssize_t n;
	int pr;

	if (room == 0)
		return SMG_ERR_TOO_LONG;
	while ((pr = poll(&pf, 1, (int)wait_ms)) < 0 && errno == EINTR)
		;
	if (pr < 0)
		return smg_err_sys(errno);
	if (pr == 0)
		return SMG_ERR_TIMEOUT;
	n = recv(q->fd, q->buf + q->have, room < QMP_READ_CHUNK ? room : QMP_READ_CHUNK,
		 0);
	if (n == 0)
		return SMG_ERR_EOF;
	if (n < 0)
		return errno == EINTR || errno == EAGAIN ? SMG_OK : smg_err_sys(errno);
	q->have += (size_t)n;
	return SMG_OK;
}

/* Next message of any kind, within deadline. */
static int next_msg(struct smg_qmp *q, uint64_t deadline, struct smg_qmp_msg *m)
{
	bool got;
	int r;

	for (;;) {
		if ((r = take_line(q, m, &got)) != SMG_OK || got)
			return r;
		if ((r = fill(q, ms_left(deadline))) != SMG_OK)
			return r;
	}
}

static int send_all(int fd, const char *p, size_t len, int pass_fd)
{
	char cbuf[CMSG_SPACE(sizeof(int))];

	while (len > 0) {
		struct iovec iov = {.iov_base = (void *)p, .iov_len = len};
		struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
		ssize_t n;

		if (pass_fd >= 0) {
			struct cmsghdr *c;

			memset(cbuf, 0, sizeof(cbuf));
			mh.msg_control = cbuf;
			mh.msg_controllen = sizeof(cbuf);
			c = CMSG_FIRSTHDR(&mh);
			c->cmsg_level = SOL_SOCKET;
			c->cmsg_type = SCM_RIGHTS;
			c->cmsg_len = CMSG_LEN(sizeof(int));
			memcpy(CMSG_DATA(c), &pass_fd, sizeof(int));
		}
		n = sendmsg(fd, &mh, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return smg_err_sys(errno);
		pass_fd = -1; /* the descriptor rides on the first byte only */
		p += n;
		len -= (size_t)n;
	}
	return SMG_OK;
}

static int send_cmd(struct smg_qmp *q, const char *cmd, struct json_object *args,
		    int pass_fd, int64_t *id)
{
	struct json_object *o = json_object_new_object();
	const char *text;
	int r;

	if (o == NULL) {
		json_object_put(args);
		return SMG_ERR_NOMEM;
	}
	*id = q->next_id++;
	json_object_object_add(o, "execute", json_object_new_string(cmd));
	if (args != NULL)
		json_object_object_add(o, "arguments", args);
	json_object_object_add(o, "id", json_object_new_int64(*id));
	text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
	if ((r = send_all(q->fd, text, strlen(text), pass_fd)) == SMG_OK)
		r = send_all(q->fd, "\n", 1, -1);
	json_object_put(o);
	return r;
}

int smg_qmp_send(struct smg_qmp *q, const char *cmd, struct json_object *args,
		 int64_t *id)
{
	return send_cmd(q, cmd, args, -1, id);
}

int smg_qmp_fd(const struct smg_qmp *q)
{
	return q->fd;
}

/* A message that is not the reply we wait for: log events, refuse a
 * reply to a command we never sent. */
static int other_msg(struct smg_qmp_msg *m, int64_t id)
{
	if (m->kind == SMG_QMP_EVENT) {
		smg_debug("qemu: event %s", m->event);
		return SMG_OK;
	}
	smg_peer_log(SMG_LOG_ERROR, "qemu: QMP reply for id %lld while waiting for %lld",
		     (long long)m->id, (long long)id);
	return SMG_ERR_PROTO;
}

static int finish_reply(struct smg_qmp_msg *m, const char *what, struct json_object **ret)
{
	int r = SMG_OK;

	if (m->kind == SMG_QMP_ERROR) {
		smg_err("qemu: %s: %s", what, m->error);
		r = SMG_ERR_BACKEND;
	} else if (ret != NULL) {
		*ret = json_object_get(m->ret);
	}
	smg_qmp_msg_free(m);
	return r;
}

int smg_qmp_pump(struct smg_qmp *q, int64_t id, bool *done, struct json_object **ret)
{
	struct smg_qmp_msg m;
	bool got;
	int r;

	*done = false;
	if ((r = fill(q, 0)) != SMG_OK && r != SMG_ERR_TIMEOUT)
		return r;
	for (;;) {
		if ((r = take_line(q, &m, &got)) != SMG_OK || !got)
			return r;
		if ((m.kind == SMG_QMP_RETURN || m.kind == SMG_QMP_ERROR) && m.id == id) {
			*done = true;
			return finish_reply(&m, "command", ret);
		}
		r = other_msg(&m, id);
		smg_qmp_msg_free(&m);
		if (r != SMG_OK)
			return r;
	}
}

int smg_qmp_call(struct smg_qmp *q, const char *cmd, struct json_object *args, int fd,
		 unsigned timeout_ms, struct json_object **ret)
{
	uint64_t deadline = smg_now_ms() + timeout_ms;
	struct smg_qmp_msg m;
	int64_t id;
	int r;

	if (ret != NULL)
		*ret = NULL;
	if ((r = send_cmd(q, cmd, args, fd, &id)) != SMG_OK) {
		smg_err("qemu: cannot send '%s' over QMP: %s", cmd, smg_strerror(r));
		return r;
	}
	for (;;) {
		if ((r = next_msg(q, deadline, &m)) != SMG_OK) {
			smg_err("qemu: no reply to '%s': %s", cmd, smg_strerror(r));
			return r;
		}
		if ((m.kind == SMG_QMP_RETURN || m.kind == SMG_QMP_ERROR) && m.id == id)
			return finish_reply(&m, cmd, ret);
		r = other_msg(&m, id);
		smg_qmp_msg_free(&m);
		if (r != SMG_OK)
			return r;
	}
}

/* Only a QEMU running as root or as us gets our commands (and, on the
 * source, our trust that its RAM file is the guest's). */
static int check_peer(struct smg_qmp *q, const char *path)
{
	struct ucred cr;
	socklen_t cl = sizeof(cr);

	if (getsockopt(q->fd, SOL_SOCKET, SO_PEERCRED, &cr, &cl) != 0)
		return smg_err_sys(errno);
	if (cr.uid != 0 && cr.uid != getuid()) {
		smg_err("qemu: %s is served by uid %u, not root or us: refused", path,
			(unsigned)cr.uid);
		return SMG_ERR_PERM;
	}
	q->pid = cr.pid;
	return SMG_OK;
}

static int connect_once(const char *path, int *fd)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int s;

	*fd = -1;
	if (strlen(path) >= sizeof(sa.sun_path))
		return SMG_ERR_TOO_LONG;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	if ((s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return smg_err_sys(errno);
	if (connect(s, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		int e = errno;
		close(s);
		return e == ENOENT || e == ECONNREFUSED ? SMG_ERR_NOT_FOUND
							: smg_err_sys(e);
	}
	*fd = s;
	return SMG_OK;
}

/* The greeting, then qmp_capabilities. QEMU serves one client per monitor:
 * while another client holds it, the greeting does not come. */
static int handshake(struct smg_qmp *q, uint64_t deadline)
{
	struct smg_qmp_msg m;
	int r;

	if ((r = next_msg(q, deadline, &m)) != SMG_OK)
		return r;
	r = m.kind == SMG_QMP_GREETING ? SMG_OK : SMG_ERR_PROTO;
	smg_qmp_msg_free(&m);
	if (r != SMG_OK)
		return r;
	return smg_qmp_call(q, "qmp_capabilities", NULL, -1, ms_left(deadline) + 1, NULL);
}

bool smg_qmp_alive(const char *path)
{
	int fd;

	if (connect_once(path, &fd) != SMG_OK)
		return false;
	close(fd);
	return true;
}

int smg_qmp_open(const char *path, unsigned timeout_ms, struct smg_qmp **out)
{
	uint64_t deadline = smg_now_ms() + timeout_ms;
	struct timespec nap = {0, QMP_RETRY_NS};
	struct smg_qmp *q;
	int r, fd;

	*out = NULL;
	while ((r = connect_once(path, &fd)) == SMG_ERR_NOT_FOUND &&
	       ms_left(deadline) > 0)
		nanosleep(&nap, NULL);
	if (r != SMG_OK) {
		smg_err("qemu: cannot connect to QMP at %s: %s (is the VM running?)",
			path,
			r == SMG_ERR_SYS ? strerror(smg_err_errno()) : smg_strerror(r));
		return r;
	}
	if ((q = calloc(1, sizeof(*q))) == NULL ||
	    (q->buf = malloc(SMG_QMP_LINE_MAX)) == NULL) {
		free(q);
		close(fd);
		return SMG_ERR_NOMEM;
	}
	q->fd = fd;
	q->next_id = 1;
	if ((r = check_peer(q, path)) != SMG_OK ||
	    (r = handshake(q, deadline)) != SMG_OK) {
		if (r == SMG_ERR_TIMEOUT)
			smg_err("qemu: %s did not greet: another client holds that "
				"monitor? (give secmig its own -qmp socket)",
				path);
		smg_qmp_close(q);
		return r;
	}
	*out = q;
	return SMG_OK;
}

void smg_qmp_close(struct smg_qmp *q)
{
	if (q == NULL)
		return;
	close(q->fd);
	free(q->buf);
	free(q);
}

pid_t smg_qmp_pid(const struct smg_qmp *q)
{
	return q->pid;
}

static int get_status_str(struct json_object *ret, const char *key, char *out, size_t cap)
{
	if (ret == NULL || !json_object_is_type(ret, json_type_object))
		return SMG_ERR_PROTO;
	copy_str(ret, key, out, cap);
	return out[0] != '\0' ? SMG_OK : SMG_ERR_PROTO;
}

int smg_qmp_status(struct smg_qmp *q, char *status, size_t cap)
{
	struct json_object *ret;
	int r;

	status[0] = '\0';
	if ((r = smg_qmp_call(q, "query-status", NULL, -1, SMG_QMP_TIMEOUT_MS, &ret)) !=
	    SMG_OK)
		return r;
	r = get_status_str(ret, "status", status, cap);
	json_object_put(ret);
	return r;
}

int smg_qmp_wait_migration(struct smg_qmp *q, unsigned timeout_ms, char *status,
			   size_t cap)
{
	uint64_t deadline = smg_now_ms() + timeout_ms;
	struct timespec nap = {0, QMP_POLL_MIGR_NS};
	struct json_object *ret;
	int r;

	for (;;) {
		if ((r = smg_qmp_call(q, "query-migrate", NULL, -1, SMG_QMP_TIMEOUT_MS,
				      &ret)) != SMG_OK)
			return r;
		r = get_status_str(ret, "status", status, cap);
		json_object_put(ret);
		if (r != SMG_OK)
			return r;
		if (strcmp(status, "completed") == 0)
			return SMG_OK;
		if (strcmp(status, "failed") == 0 || strcmp(status, "cancelled") == 0)
			return SMG_ERR_BACKEND;
		if (ms_left(deadline) == 0)
			return SMG_ERR_TIMEOUT;
		nanosleep(&nap, NULL);
	}
}
