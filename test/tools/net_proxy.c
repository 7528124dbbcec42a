/* smg-nettool proxy: a TCP relay for the switch namespace that plays the
 * hostile or broken network between two hosts. It forwards every
 * connection it accepts to --to and, on one chosen connection and
 * direction, at one byte offset, does one thing wrong:
 *   cut      forward the bytes before the offset, then close both sides
 *   corrupt  flip the lowest bit of the byte at the offset
 *   replay   send the frame holding the offset twice (DESIGN §3 framing:
 *            a 4-byte big-endian length, then that many bytes)
 *   delay    at the offset, hold both directions for --delay-ms
 * With --arm-signal the fault waits for SIGUSR1 and --at-byte counts from
 * where the stream is at that moment: a test arms it when the migration
 * reaches a phase (from the sender's JSON events).
 * Events (one JSON line each): proxy_ready (with the port, for --listen
 * PORT 0), conn, fault, conn_closed. Sockets are non-blocking with one
 * buffer per direction so neither end can wedge the relay. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/base.h"
#include "nettool.h"

#define PROXY_CONNS_MAX	 32
#define PROXY_CHUNK	 65536
#define PROXY_FRAME_MAX	 (4u << 20) /* larger "frames" are not frames: no replay */
#define PROXY_ADDR_MAX	 128
#define PROXY_CONNECT_MS 5000

enum fault { F_NONE, F_CUT, F_CORRUPT, F_REPLAY, F_DELAY };

struct dir {
	int from, to;
	uint64_t off; /* bytes read from `from` so far */
	uint8_t *out; /* bytes waiting for `to` */
	size_t out_len, out_sent;
	bool eof;
	/* replay: frame boundary tracking */
	uint8_t hdr[4];
	unsigned hdr_got;
	uint64_t frame_left; /* body bytes left in the current frame */
	uint8_t *rec;	     /* copy of the frame being recorded */
	size_t rec_len, rec_cap;
};

struct pair {
	int a, b; /* a: accepted client, b: upstream */
	unsigned idx;
	struct dir d[2]; /* 0: client->server, 1: server->client */
	uint64_t hold_until_ms;
	bool dead;
};

struct proxy {
	enum fault fault;
	unsigned conn, dir;
	uint64_t at;
	unsigned delay_ms;
	bool fired;
	bool need_arm, at_fixed;
	struct sockaddr_storage to;
	socklen_t to_len;
	struct pair *pairs[PROXY_CONNS_MAX];
	unsigned accepted;
};

static volatile sig_atomic_t px_armed;

static void on_arm(int sig)
{
	(void)sig;
	px_armed = 1;
}

static int parse_addr(const char *text, struct sockaddr_storage *ss, socklen_t *len)
{
	char host[PROXY_ADDR_MAX], *port;
	struct addrinfo hints = {.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV}, *ai;

	if (strlen(text) >= sizeof(host))
		return -1;
	memcpy(host, text, strlen(text) + 1);
	if ((port = strrchr(host, ':')) == NULL)
		return -1;
	*port++ = '\0';
	if (host[0] == '[' && port[-2] == ']') {
		port[-2] = '\0';
		memmove(host, host + 1, strlen(host));
	}
	if (getaddrinfo(host, port, &hints, &ai) != 0)
		return -1;
	memcpy(ss, ai->ai_addr, ai->ai_addrlen);
	*len = ai->ai_addrlen;
	freeaddrinfo(ai);
	return 0;
}

static void emit_fault(struct proxy *px, const char *what, uint64_t off)
{
	char ev[160];

	px->fired = true;
	snprintf(ev, sizeof(ev),
		 "{\"event\":\"fault\",\"fault\":\"%s\",\"conn\":%u,\"dir\":\"%s\","
		 "\"offset\":%llu}",
		 what, px->conn, px->dir == 0 ? "c2s" : "s2c", (unsigned long long)off);
	nettool_emit(ev);
}

static int out_append(struct dir *d, const uint8_t *p, size_t n)
{
	uint8_t *nb;

	/* realloc(ptr, 0) frees ptr: never ask for an empty buffer. */
	if (n == 0)
		return 0;
	if ((nb = realloc(d->out, d->out_len + n)) == NULL)
		return -1;

	memcpy(nb + d->out_len, p, n);
	d->out = nb;
	d->out_len += n;
	return 0;
}

/* Queue buf, following its length-prefixed frames; record the frame that
 * holds offset `at` and queue it a second time right after its end. */
static void replay_track(struct proxy *px, struct dir *d, const uint8_t *buf, size_t n,
			 uint64_t base, bool armed)
{
	size_t flushed = 0;

	for (size_t i = 0; i < n;) {
		bool recording = d->rec != NULL;

		if (d->frame_left == 0 && d->hdr_got < 4) {
			d->hdr[d->hdr_got++] = buf[i++];
			if (d->hdr_got == 4) {
				d->frame_left = smg_load_be32(d->hdr);
				if (armed && !px->fired && d->frame_left > 0 &&
				    base + i + d->frame_left > px->at &&
				    d->frame_left + 4 <= PROXY_FRAME_MAX &&
				    (d->rec = malloc(d->frame_left + 4)) != NULL) {
					memcpy(d->rec, d->hdr, 4);
					d->rec_len = 4;
				}
				d->hdr_got = 0;
			}
			continue;
		}
		size_t take = n - i < d->frame_left ? n - i : (size_t)d->frame_left;

		if (recording) {
			memcpy(d->rec + d->rec_len, buf + i, take);
			d->rec_len += take;
		}
		d->frame_left -= take;
		i += take;
		if (d->frame_left == 0 && d->rec != NULL) {
			emit_fault(px, "replay", base + i - d->rec_len);
			out_append(d, buf + flushed, i - flushed);
			flushed = i;
			out_append(d, d->rec, d->rec_len);
			free(d->rec);
			d->rec = NULL;
		}
	}
	out_append(d, buf + flushed, n - flushed);
}

static void pair_close(struct pair *p)
{
	char ev[96];

	if (p->dead)
		return;
	p->dead = true;
	close(p->a);
	close(p->b);
	for (int i = 0; i < 2; i++) {
		free(p->d[i].out);
		free(p->d[i].rec);
		p->d[i].out = p->d[i].rec = NULL;
	}
	snprintf(ev, sizeof(ev), "{\"event\":\"conn_closed\",\"conn\":%u}", p->idx);
	nettool_emit(ev);
}

/* Read what `from` has, apply the fault, queue it for `to`. */
static void pump_read(struct proxy *px, struct pair *p, unsigned di)
{
	struct dir *d = &p->d[di];
	uint8_t buf[PROXY_CHUNK];
	/* stream: the connection and direction the fault is for; target: and
	 * it is armed. Replay follows frame boundaries on the stream from its
	 * first byte, armed or not, so it knows where frames start. */
	bool stream =
	    px->fault != F_NONE && !px->fired && p->idx == px->conn && di == px->dir;
	bool armed = !px->need_arm || px_armed;
	bool target = stream && armed;
	ssize_t n;
	size_t keep;

	n = read(d->from, buf, sizeof(buf));
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		/* Pass the half-close on once nothing is left to forward (else
		 * pump_write does when it has written the rest). */
		d->eof = true;
		if (d->out_len == 0)
			shutdown(d->to, SHUT_WR);
		return;
	}
	keep = (size_t)n;
	if (target && px->need_arm && !px->at_fixed) {
		px->at += d->off; /* relative to where the stream was when armed */
		px->at_fixed = true;
	}
	if (target && d->off + keep > px->at) {
		size_t at = (size_t)(px->at - d->off);

		if (px->fault == F_CUT) {
			out_append(d, buf, at);
			emit_fault(px, "cut", px->at);
			/* Flush what came before the cut, then drop the link. */
			(void)write(d->to, d->out + d->out_sent,
				    d->out_len - d->out_sent);
			pair_close(p);
			return;
		}
		if (px->fault == F_CORRUPT) {
			buf[at] ^= 0x01;
			emit_fault(px, "corrupt", px->at);
		} else if (px->fault == F_DELAY) {
			p->hold_until_ms = smg_now_ms() + px->delay_ms;
			emit_fault(px, "delay", px->at);
		}
	}
	if (stream && px->fault == F_REPLAY)
		replay_track(px, d, buf, keep, d->off, armed);
	else
		out_append(d, buf, keep);
	d->off += keep;
}

static void pump_write(struct pair *p, unsigned di)
{
	struct dir *d = &p->d[di];
	ssize_t n = write(d->to, d->out + d->out_sent, d->out_len - d->out_sent);

	if (n < 0) {
		if (errno != EAGAIN && errno != EINTR)
			pair_close(p);
		return;
	}
	d->out_sent += (size_t)n;
	if (d->out_sent == d->out_len) {
		d->out_sent = d->out_len = 0;
		if (d->eof)
			shutdown(d->to, SHUT_WR);
	}
}

/* Non-blocking connect bounded by PROXY_CONNECT_MS: a signal (SIGUSR1
 * arming the fault) must not abort it, nor a dead upstream hang us. */
static int connect_upstream(const struct proxy *px)
{
	struct pollfd p;
	socklen_t el = sizeof(int);
	int fd, e = 0;

	if ((fd = socket(px->to.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
			 0)) < 0)
		return -1;
	if (connect(fd, (const struct sockaddr *)&px->to, px->to_len) != 0) {
		if (errno != EINPROGRESS && errno != EINTR)
			goto fail;
		p = (struct pollfd){.fd = fd, .events = POLLOUT};
		for (uint64_t end = smg_now_ms() + PROXY_CONNECT_MS; smg_now_ms() < end;)
			if (poll(&p, 1, 100) > 0)
				break;
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &el) != 0 || e != 0 ||
		    !(p.revents & POLLOUT)) {
			errno = e != 0 ? e : ETIMEDOUT;
			goto fail;
		}
	}
	return fd;
fail:
	e = errno;
	close(fd);
	errno = e;
	return -1;
}

static void accept_one(struct proxy *px, int lfd)
{
	struct pair *p;
	char ev[96];
	int a, b, one = 1;

	if ((a = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) < 0)
		return;
	if (px->accepted >= PROXY_CONNS_MAX || (p = calloc(1, sizeof(*p))) == NULL) {
		close(a);
		return;
	}
	if ((b = connect_upstream(px)) < 0) {
		smg_warn("net: proxy: upstream: %s", strerror(errno));
		close(a);
		free(p);
		return;
	}
	setsockopt(a, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(b, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	p->a = a;
	p->b = b;
	p->idx = px->accepted;
	p->d[0].from = a, p->d[0].to = b;
	p->d[1].from = b, p->d[1].to = a;
	px->pairs[px->accepted++] = p;
	snprintf(ev, sizeof(ev), "{\"event\":\"conn\",\"conn\":%u}", p->idx);
	nettool_emit(ev);
}

static void step(struct proxy *px, int lfd)
{
	struct pollfd pfd[1 + 2 * PROXY_CONNS_MAX];
	struct pair *map[1 + 2 * PROXY_CONNS_MAX];
	unsigned n = 1, i;
	uint64_t now = smg_now_ms();
	int timeout = 200;

	pfd[0] = (struct pollfd){.fd = lfd, .events = POLLIN};
	for (i = 0; i < px->accepted; i++) {
		struct pair *p = px->pairs[i];
		bool held = p->hold_until_ms > now;

		if (p->dead)
			continue;
		if (held && (int)(p->hold_until_ms - now) < timeout)
			timeout = (int)(p->hold_until_ms - now);
		for (unsigned di = 0; di < 2; di++) {
			struct dir *d = &p->d[di];
			short ev = 0;

			if (!held && d->out_len == 0 && !d->eof)
				ev |= POLLIN;
			if (!held && d->out_len > 0)
				ev |= POLLOUT;
			pfd[n] = (struct pollfd){.fd = ev & POLLOUT ? d->to : d->from,
						 .events = ev};
			map[n++] = p;
		}
	}
	if (poll(pfd, n, timeout) <= 0)
		return;
	if (pfd[0].revents & POLLIN)
		accept_one(px, lfd);
	for (i = 1; i < n; i++) {
		struct pair *p = map[i];
		unsigned di = (i - 1) % 2;

		if (p->dead || pfd[i].revents == 0)
			continue;
		if (pfd[i].events & POLLOUT)
			pump_write(p, di);
		else
			pump_read(px, p, di);
		if (!p->dead && p->d[0].eof && p->d[1].eof && p->d[0].out_len == 0 &&
		    p->d[1].out_len == 0)
			pair_close(p);
	}
}

static int parse_fault(const char *s, enum fault *f)
{
	static const char *const names[] = {"none", "cut", "corrupt", "replay", "delay"};

	for (size_t i = 0; i < SMG_ARRAY_LEN(names); i++)
		if (strcmp(s, names[i]) == 0) {
			*f = (enum fault)i;
			return 0;
		}
	return -1;
}

/* secmig net proxy --listen ADDR:PORT --to ADDR:PORT [--fault F] [--conn K]
 *   [--dir c2s|s2c] [--at-byte N] [--delay-ms MS] */
int nettool_proxy(int argc, char **argv)
{
	static const struct option opts[] = {{"listen", required_argument, NULL, 'l'},
					     {"to", required_argument, NULL, 't'},
					     {"fault", required_argument, NULL, 'f'},
					     {"conn", required_argument, NULL, 'c'},
					     {"dir", required_argument, NULL, 'd'},
					     {"at-byte", required_argument, NULL, 'a'},
					     {"delay-ms", required_argument, NULL, 'w'},
					     {"arm-signal", no_argument, NULL, 'S'},
					     {NULL, 0, NULL, 0}};
	struct proxy px = {.delay_ms = 10000};
	struct sockaddr_storage ls;
	socklen_t ll = 0;
	const char *listen_at = NULL, *to = NULL;
	char ev[96], *end;
	int o, lfd, one = 1;

	optind = 0;
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		bool bad = false;

		if (o == 'l')
			listen_at = optarg;
		else if (o == 't')
			to = optarg;
		else if (o == 'f')
			bad = parse_fault(optarg, &px.fault) != 0;
		else if (o == 'c')
			bad = (px.conn = (unsigned)strtoul(optarg, &end, 10)) >=
				  PROXY_CONNS_MAX ||
			      *end != '\0';
		else if (o == 'd')
			bad = strcmp(optarg, "c2s") != 0 && strcmp(optarg, "s2c") != 0,
			px.dir = strcmp(optarg, "s2c") == 0;
		else if (o == 'a')
			px.at = strtoull(optarg, &end, 10),
			bad = *end != '\0' || *optarg == '-';
		else if (o == 'S')
			px.need_arm = true;
		else if (o == 'w')
			px.delay_ms = (unsigned)strtoul(optarg, &end, 10),
			bad = *end != '\0' || px.delay_ms > 3600000;
		else
			bad = true;
		if (bad)
			return nettool_usage("proxy: bad option");
	}
	if (listen_at == NULL || to == NULL || optind < argc ||
	    parse_addr(listen_at, &ls, &ll) != 0 ||
	    parse_addr(to, &px.to, &px.to_len) != 0)
		return nettool_usage("proxy: --listen ADDR:PORT and --to ADDR:PORT");
	if ((lfd = socket(ls.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
	    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	    bind(lfd, (struct sockaddr *)&ls, ll) != 0 || listen(lfd, 16) != 0 ||
	    getsockname(lfd, (struct sockaddr *)&ls, &ll) != 0) {
		smg_err("net: proxy: listen %s: %s", listen_at, strerror(errno));
		if (lfd >= 0)
			close(lfd);
		return NETTOOL_EXIT_NETWORK;
	}
	nettool_install_stop();
	signal(SIGUSR1, on_arm);
	signal(SIGPIPE,
	       SIG_IGN); /* a peer gone mid-write is a closed pair, not our death */
	snprintf(ev, sizeof(ev), "{\"event\":\"proxy_ready\",\"port\":%u}",
		 ntohs(((struct sockaddr_in *)&ls)->sin_port));
	nettool_emit(ev);
	for (bool told = false; !nettool_stopped();) {
		step(&px, lfd);
		/* A test that armed us waits for this line, not a guessed time. */
		if (px_armed && !told) {
			nettool_emit("{\"event\":\"armed\"}");
			told = true;
		}
	}
	for (unsigned i = 0; i < px.accepted; i++) {
		pair_close(px.pairs[i]);
		free(px.pairs[i]);
	}
	close(lfd);
	return NETTOOL_EXIT_OK;
}
