/* The QMP client (qemu_qmp.c) against a scripted server standing in for
 * QEMU: greeting and negotiation, events interleaved with replies, error
 * replies, a reply for a command never sent, a descriptor passed with
 * getfd, an over-long line, and the pure parser on hostile lines. */
#include <fcntl.h>
#include <json-c/json.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "base/base.h"
#include "check.h"
#include "engine/backend/qemu_internal.h"

struct server {
	int lfd;
	bool longline; /* answer every command with a 2 MiB line */
	int got_fd;    /* a descriptor that came with a command */
};

static void say(int fd, const char *s)
{
	(void)!write(fd, s, strlen(s));
}

/* One request line (and any descriptor riding on it). */
static int read_line(int fd, char *buf, size_t cap, int *rfd)
{
	char cbuf[CMSG_SPACE(sizeof(int))];
	size_t n = 0;

	while (n + 1 < cap) {
		struct iovec iov = {buf + n, 1};
		struct msghdr mh = {.msg_iov = &iov,
				    .msg_iovlen = 1,
				    .msg_control = cbuf,
				    .msg_controllen = sizeof(cbuf)};
		if (recvmsg(fd, &mh, 0) != 1)
			return -1;
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		if (c != NULL && c->cmsg_type == SCM_RIGHTS)
			memcpy(rfd, CMSG_DATA(c), sizeof(int));
		if (buf[n++] == '\n')
			break;
	}
	buf[n] = '\0';
	return 0;
}

static void *serve(void *arg)
{
	struct server *s = arg;
	char line[4096], out[512];
	int c = accept(s->lfd, NULL, NULL);

	say(c, "{\"QMP\": {\"version\": {}, \"capabilities\": [\"oob\"]}}\r\n");
	while (c >= 0) {
		int fd = -1;
		if (read_line(c, line, sizeof(line), &fd) != 0)
			break;
		if (fd >= 0)
			s->got_fd = fd;
		struct json_object *o = json_tokener_parse(line), *v;
		const char *cmd = json_object_object_get_ex(o, "execute", &v)
				      ? json_object_get_string(v)
				      : "";
		long long id = json_object_object_get_ex(o, "id", &v)
				   ? json_object_get_int64(v)
				   : -1;
		if (s->longline && strcmp(cmd, "qmp_capabilities") != 0) {
			char *big = malloc(2u << 20);
			memset(big, ' ', 2u << 20);
			(void)!write(c, big, 2u << 20);
			free(big);
		} else if (strcmp(cmd, "query-status") == 0) {
			say(c, "{\"timestamp\": {}, \"event\": \"RESUME\"}\r\n");
			snprintf(
			    out, sizeof(out),
			    "{\"return\": {\"status\": \"running\", \"running\": true}, "
			    "\"id\": %lld}\r\n",
			    id);
			say(c, out);
		} else if (strcmp(cmd, "no-such") == 0) {
			snprintf(out, sizeof(out),
				 "{\"error\": {\"class\": \"CommandNotFound\", \"desc\": "
				 "\"The command no-such has not been found\"}, \"id\": "
				 "%lld}\r\n",
				 id);
			say(c, out);
		} else if (strcmp(cmd, "stray") == 0) {
			say(c, "{\"return\": {}, \"id\": 424242}\r\n");
		} else {
			snprintf(out, sizeof(out), "{\"return\": {}, \"id\": %lld}\r\n",
				 id);
			say(c, out);
		}
		json_object_put(o);
	}
	close(c);
	return NULL;
}

static int listen_at(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	unlink(path);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    listen(fd, 1) != 0)
		return -1;
	return fd;
}

static void conversation(const char *path)
{
	struct server s = {.got_fd = -1};
	struct smg_qmp *q;
	struct json_object *ret;
	char status[32];
	pthread_t t;
	int p[2];

	s.lfd = listen_at(path);
	CHECK(s.lfd >= 0);
	pthread_create(&t, NULL, serve, &s);
	CHECK_EQ(smg_qmp_open(path, 5000, &q), SMG_OK);
	CHECK_EQ(smg_qmp_pid(q), getpid()); /* SO_PEERCRED: the server */
	CHECK_EQ(smg_qmp_status(q, status, sizeof(status)), SMG_OK);
	CHECK(strcmp(status, "running") == 0);
	CHECK_EQ(smg_qmp_call(q, "no-such", NULL, -1, 5000, &ret), SMG_ERR_BACKEND);
	CHECK(ret == NULL);
	CHECK(pipe(p) == 0);
	CHECK_EQ(smg_qmp_call(q, "getfd", NULL, p[1], 5000, NULL), SMG_OK);
	CHECK(s.got_fd >= 0);
	CHECK_EQ(smg_qmp_call(q, "stray", NULL, -1, 5000, NULL), SMG_ERR_PROTO);
	smg_qmp_close(q);
	pthread_join(t, NULL);
	close(s.lfd);
	close(p[0]);
	close(p[1]);
	if (s.got_fd >= 0)
		close(s.got_fd);
	CHECK(smg_qmp_alive(path) == false);
}

static void long_line(const char *path)
{
	struct server s = {.longline = true, .got_fd = -1};
	struct smg_qmp *q;
	pthread_t t;

	s.lfd = listen_at(path);
	pthread_create(&t, NULL, serve, &s);
	CHECK_EQ(smg_qmp_open(path, 5000, &q), SMG_OK);
	CHECK_EQ(smg_qmp_call(q, "query-status", NULL, -1, 5000, NULL), SMG_ERR_TOO_LONG);
	smg_qmp_close(q);
	pthread_join(t, NULL);
	close(s.lfd);
}

static void parser(void)
{
	static const char *const hostile[] = {
	    "",
	    "\n",
	    "[1,2]\n",
	    "\"QMP\"\n",
	    "{}\n",
	    "{\"return\": 1} {\"return\": 2}\n",
	    "{\"return\": {}\n",
	    "{\"error\": \"string\"}\n",
	    "{\"event\": 5}\n",
	    "{\"return\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]"
	    "]]]]]]]]]]]]]]]]}\n",
	};
	struct smg_qmp_msg m;

	for (size_t i = 0; i < SMG_ARRAY_LEN(hostile); i++) {
		CHECK(smg_qmp_parse(hostile[i], strlen(hostile[i]), &m) != SMG_OK);
		smg_qmp_msg_free(&m);
	}
	const char *ev = "{\"event\": \"STOP\", \"timestamp\": {}}\r\n";
	CHECK_EQ(smg_qmp_parse(ev, strlen(ev), &m), SMG_OK);
	CHECK(m.kind == SMG_QMP_EVENT && strcmp(m.event, "STOP") == 0);
	smg_qmp_msg_free(&m);
	const char *er =
	    "{\"error\": {\"class\": \"GenericError\", \"desc\": \"no\"}, \"id\": 3}\n";
	CHECK_EQ(smg_qmp_parse(er, strlen(er), &m), SMG_OK);
	CHECK(m.kind == SMG_QMP_ERROR && m.id == 3 && strstr(m.error, "no") != NULL);
	smg_qmp_msg_free(&m);
}

int main(void)
{
	char dir[] = "/tmp/smg-qmp.XXXXXX", path[128];

	if (mkdtemp(dir) == NULL)
		return T_SKIP;
	snprintf(path, sizeof(path), "%s/qmp", dir);
	conversation(path);
	long_line(path);
	parser();
	unlink(path);
	rmdir(dir);
	return check_result("test_qemu_qmp");
}
