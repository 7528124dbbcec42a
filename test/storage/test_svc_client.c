/* The disk service client's two-step calls (storage/svc_client.c) against a
 * scripted peer on a real Unix socket: an answer received straight into the
 * caller's buffer (large, small, empty), a service error that leaves the
 * connection usable, a malformed answer or a refused buffer that ends it,
 * and smg_dsvc_call dropping an answer its requester gave up on. */
#include <pthread.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "check.h"
#include "util.h"

struct peer {
	int fd;
	const uint8_t *reply;
	size_t len;
	pthread_t t;
};

static void *peer_write(void *arg)
{
	struct peer *p = arg;
	uint8_t hdr[4];
	size_t done = 0;

	smg_store_be32(hdr, (uint32_t)p->len);
	if (write(p->fd, hdr, 4) != 4)
		return NULL;
	while (done < p->len) {
		ssize_t k = write(p->fd, p->reply + done, p->len - done);
		if (k <= 0)
			break;
		done += (size_t)k;
	}
	return NULL;
}

/* Send one whole reply body from a thread (a large one outgrows the socket
 * buffer before the client reads). */
static void peer_reply(struct peer *p, int fd, const void *body, size_t len)
{
	*p = (struct peer){.fd = fd, .reply = body, .len = len};
	CHECK_EQ(pthread_create(&p->t, NULL, peer_write, p), 0);
}

struct room {
	uint8_t *buf;
	size_t cap, asked;
	unsigned calls;
	bool refuse;
};

static uint8_t *room_fn(void *arg, size_t len)
{
	struct room *r = arg;

	r->calls++;
	r->asked = len;
	return r->refuse || len > r->cap ? NULL : r->buf;
}

/* Discard what the client sent so far (its requests). */
static void drain_requests(int fd)
{
	uint8_t junk[4096];

	while (recv(fd, junk, sizeof(junk), MSG_DONTWAIT) > 0)
		;
}

static int answer_case(struct smg_dsvc_conn *c, int srv, const void *body, size_t len,
		       struct room *room, struct smg_dsvc_reply *rep)
{
	struct peer p;
	int r;

	CHECK_EQ(smg_dsvc_ask(c, "NEXT bulk", NULL, 0, -1), SMG_OK);
	drain_requests(srv);
	peer_reply(&p, srv, body, len);
	r = smg_dsvc_answer_into(c, rep, room_fn, room);
	pthread_join(p.t, NULL);
	return r;
}

int main(void)
{
	char *dir = util_tmpdir(), path[96];
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct smg_dsvc_conn *c;
	struct smg_dsvc_reply rep;
	size_t big = 300000;
	uint8_t *body = malloc(3 + big), *dst = malloc(big);
	struct room room = {.buf = dst, .cap = big};
	int lfd, srv;

	CHECK(dir != NULL && body != NULL && dst != NULL);
	snprintf(path, sizeof(path), "%s/disk.sock", dir);
	memcpy(sa.sun_path, path, strlen(path) + 1);
	lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	CHECK_EQ(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	CHECK_EQ(listen(lfd, 4), 0);
	CHECK_EQ(smg_dsvc_connect(path, &c), SMG_OK);
	srv = accept(lfd, NULL, NULL);
	CHECK(srv >= 0);

	/* A record frame's worth: straight into the caller's buffer, once. */
	memcpy(body, "OK\n", 3);
	util_pattern(body + 3, big, 0, 7);
	CHECK_EQ(answer_case(c, srv, body, 3 + big, &room, &rep), SMG_OK);
	CHECK(rep.payload == dst && rep.payload_len == big && room.calls == 1 &&
	      room.asked == big);
	CHECK(memcmp(dst, body + 3, big) == 0);

	/* Shorter than a line's worth: the bytes read with the line move over. */
	room.calls = 0;
	CHECK_EQ(answer_case(c, srv, "OK\nabcdefghij", 13, &room, &rep), SMG_OK);
	CHECK(rep.payload == dst && rep.payload_len == 10 && room.calls == 1);
	CHECK(memcmp(dst, "abcdefghij", 10) == 0);

	/* Empty (a phase that is done): no buffer asked for. */
	room.calls = 0;
	CHECK_EQ(answer_case(c, srv, "OK\n", 3, &room, &rep), SMG_OK);
	CHECK(rep.payload_len == 0 && room.calls == 0);

	/* A service error: its code and text; the connection goes on. */
	CHECK_EQ(answer_case(c, srv, "ERR -12 not now\n", 16, &room, &rep),
		 SMG_ERR_STATE);
	CHECK(room.calls == 0 && strcmp(smg_dsvc_errmsg(c), "not now") == 0);
	CHECK_EQ(answer_case(c, srv, "OK\n", 3, &room, &rep), SMG_OK);

	/* An answer nobody collected: call drops its service error and
	 * answers its own request. */
	struct peer p;
	CHECK_EQ(smg_dsvc_ask(c, "NEXT iter", NULL, 0, -1), SMG_OK);
	peer_reply(&p, srv, "ERR -12 stale\n", 14);
	pthread_join(p.t, NULL);
	peer_reply(&p, srv, "OK 1 2 3\n", 9);
	CHECK_EQ(smg_dsvc_call(c, "PENDING", NULL, 0, -1, &rep), SMG_OK);
	pthread_join(p.t, NULL);
	CHECK(rep.nfields == 3 && strcmp(rep.fields[2], "3") == 0);
	drain_requests(srv);

	/* The caller refuses the buffer: the stream cannot be resynchronised,
	 * the connection is dead from then on. (A reply the socket buffer
	 * holds: nobody reads the rest of it.) */
	room.refuse = true;
	CHECK_EQ(answer_case(c, srv, body, 3 + 4096, &room, &rep), SMG_ERR_NOMEM);
	CHECK_EQ(smg_dsvc_ask(c, "NEXT bulk", NULL, 0, -1), SMG_ERR_EOF);
	smg_dsvc_close(c);
	close(srv);

	/* No end of line within a line's worth: malformed, dead. */
	CHECK_EQ(smg_dsvc_connect(path, &c), SMG_OK);
	srv = accept(lfd, NULL, NULL);
	memset(body, 'x', 400);
	room.refuse = false;
	room.calls = 0;
	CHECK_EQ(answer_case(c, srv, body, 400, &room, &rep), SMG_ERR_PROTO);
	CHECK(room.calls == 0);
	CHECK_EQ(smg_dsvc_ask(c, "NEXT bulk", NULL, 0, -1), SMG_ERR_EOF);
	smg_dsvc_close(c);
	close(srv);
	close(lfd);
	util_rmdir(dir);
	free(dir);
	free(body);
	free(dst);
	return check_result("storage_svc_client");
}
