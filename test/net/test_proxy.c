/* `smg-nettool proxy` (test/tools/net_proxy.c) on loopback: every fault does exactly what
 * it says, on the chosen connection, direction and byte, and nothing else. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/base.h"
#include "check.h"

#define IO_TIMEOUT_MS 3000

struct px {
	pid_t pid;
	FILE *out;
	unsigned port;
};

static int listen_any(unsigned *port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t sl = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    listen(fd, 8) != 0 || getsockname(fd, (struct sockaddr *)&sa, &sl) != 0)
		return -1;
	*port = ntohs(sa.sin_port);
	return fd;
}

static int proxy_start(struct px *p, unsigned upstream, const char *const *extra)
{
	char to[64], line[256];
	const char *argv[24] = {getenv("SMG_NETTOOL"), "proxy", "--listen",
				"127.0.0.1:0",	       "--to",	to};
	int pfd[2], n = 6;

	snprintf(to, sizeof(to), "127.0.0.1:%u", upstream);
	for (; extra != NULL && *extra != NULL && n < 22; extra++)
		argv[n++] = *extra;
	argv[n] = NULL;
	if (argv[0] == NULL || pipe(pfd) != 0)
		return -1;
	if ((p->pid = fork()) == 0) {
		dup2(pfd[1], STDOUT_FILENO);
		close(pfd[0]);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	close(pfd[1]);
	p->out = fdopen(pfd[0], "r");
	if (fgets(line, sizeof(line), p->out) == NULL ||
	    sscanf(line, "{\"event\":\"proxy_ready\",\"port\":%u}", &p->port) != 1)
		return -1;
	return 0;
}

/* Arm the fault and wait until the proxy says it is armed (progress, not a
 * guessed time: a loaded machine may take long to run it). */
static void proxy_arm(struct px *p)
{
	char line[256];

	kill(p->pid, SIGUSR1);
	while (fgets(line, sizeof(line), p->out) != NULL)
		if (strstr(line, "\"event\":\"armed\"") != NULL)
			return;
	CHECK(!"the proxy never said it was armed");
}

static void proxy_stop(struct px *p)
{
	kill(p->pid, SIGTERM);
	waitpid(p->pid, NULL, 0);
	fclose(p->out);
}

static int connect_to(unsigned port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET,
				 .sin_port = htons((uint16_t)port)};
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
		return -1;
	return fd;
}

/* Read until n bytes, EOF or the timeout; returns bytes read. */
static size_t read_some(int fd, uint8_t *buf, size_t n, int timeout_ms)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	size_t got = 0;
	ssize_t r;

	while (got < n && poll(&p, 1, timeout_ms) > 0) {
		if ((r = read(fd, buf + got, n - got)) <= 0)
			break;
		got += (size_t)r;
	}
	return got;
}

static void write_all(int fd, const uint8_t *buf, size_t n)
{
	ssize_t r;

	for (size_t off = 0; off < n; off += (size_t)r)
		if ((r = write(fd, buf + off, n - off)) <= 0)
			return;
}

struct conn {
	int c, s; /* client side, server side */
};

static int open_pair(int lfd, unsigned proxy_port, struct conn *k)
{
	k->c = connect_to(proxy_port);
	k->s = accept(lfd, NULL, NULL);
	return k->c >= 0 && k->s >= 0 ? 0 : -1;
}

static void close_pair(struct conn *k)
{
	close(k->c);
	close(k->s);
}

static uint8_t data[100000], got[200000];

static void test_clean_and_corrupt(int lfd, unsigned up)
{
	static const char *const args[] = {"--fault",	"corrupt", "--conn", "1",
					   "--at-byte", "1000",	   NULL};
	struct px p;
	struct conn k0, k1;

	CHECK_EQ(proxy_start(&p, up, args), 0);
	/* Connection 0 is not the target: bytes pass untouched both ways. */
	CHECK_EQ(open_pair(lfd, p.port, &k0), 0);
	write_all(k0.c, data, sizeof(data));
	CHECK_EQ(read_some(k0.s, got, sizeof(data), IO_TIMEOUT_MS), sizeof(data));
	CHECK(memcmp(got, data, sizeof(data)) == 0);
	write_all(k0.s, data, 5000);
	CHECK_EQ(read_some(k0.c, got, 5000, IO_TIMEOUT_MS), 5000);
	CHECK(memcmp(got, data, 5000) == 0);
	/* Connection 1: exactly byte 1000 has its low bit flipped. */
	CHECK_EQ(open_pair(lfd, p.port, &k1), 0);
	write_all(k1.c, data, 3000);
	CHECK_EQ(read_some(k1.s, got, 3000, IO_TIMEOUT_MS), 3000);
	CHECK(memcmp(got, data, 1000) == 0);
	CHECK_EQ(got[1000], data[1000] ^ 1);
	CHECK(memcmp(got + 1001, data + 1001, 1999) == 0);
	close_pair(&k0);
	close_pair(&k1);
	proxy_stop(&p);
}

static void test_cut(int lfd, unsigned up, const char *dir)
{
	const char *const args[] = {"--fault",	 "cut",	 "--dir", dir,
				    "--at-byte", "5000", NULL};
	bool c2s = strcmp(dir, "c2s") == 0;
	struct px p;
	struct conn k;
	int from, to;

	CHECK_EQ(proxy_start(&p, up, args), 0);
	CHECK_EQ(open_pair(lfd, p.port, &k), 0);
	from = c2s ? k.c : k.s;
	to = c2s ? k.s : k.c;
	write_all(from, data, 20000);
	/* Exactly the bytes before the cut arrive, then the link is gone. */
	CHECK_EQ(read_some(to, got, 20000, IO_TIMEOUT_MS), 5000);
	CHECK(memcmp(got, data, 5000) == 0);
	CHECK_EQ(read_some(from, got, 1, IO_TIMEOUT_MS), 0);
	close_pair(&k);
	proxy_stop(&p);
}

/* Regression: a cut at the very next byte after an emptied buffer used to
 * realloc(ptr, 0) and free the buffer twice. */
static void test_cut_at_zero(int lfd, unsigned up)
{
	static const char *const args[] = {"--fault", "cut", "--at-byte", "100", NULL};
	struct px p;
	struct conn k;
	int st;

	CHECK_EQ(proxy_start(&p, up, args), 0);
	CHECK_EQ(open_pair(lfd, p.port, &k), 0);
	write_all(k.c, data, 100);
	CHECK_EQ(read_some(k.s, got, 100, IO_TIMEOUT_MS), 100);
	usleep(50000);
	write_all(k.c, data, 10);
	CHECK_EQ(read_some(k.s, got, 10, IO_TIMEOUT_MS), 0);
	kill(p.pid, SIGTERM);
	waitpid(p.pid, &st, 0);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	fclose(p.out);
	close_pair(&k);
}

/* Frames as DESIGN §3 puts them on the wire: 4-byte length, then body. */
static size_t make_frames(uint8_t *buf, unsigned count, size_t *starts)
{
	size_t off = 0;

	for (unsigned i = 0; i < count; i++) {
		size_t len = 100 + i * 37;

		starts[i] = off;
		smg_store_be32(buf + off, (uint32_t)len);
		memset(buf + off + 4, 'a' + (int)i, len);
		off += 4 + len;
	}
	return off;
}

static void test_replay(int lfd, unsigned up)
{
	uint8_t frames[4096], want[8192];
	size_t starts[10], n, f3_len, wn;
	char at[32];
	const char *args[] = {"--fault", "replay", "--at-byte", at, NULL};
	struct px p;
	struct conn k;

	n = make_frames(frames, 10, starts);
	/* A byte in the middle of frame 3: frame 3 goes out twice. */
	snprintf(at, sizeof(at), "%zu", starts[3] + 20);
	f3_len = starts[4] - starts[3];
	memcpy(want, frames, starts[4]);
	memcpy(want + starts[4], frames + starts[3], f3_len);
	memcpy(want + starts[4] + f3_len, frames + starts[4], n - starts[4]);
	wn = n + f3_len;
	CHECK_EQ(proxy_start(&p, up, args), 0);
	CHECK_EQ(open_pair(lfd, p.port, &k), 0);
	/* Dribble it in small writes so frames straddle reads. */
	for (size_t off = 0; off < n; off += 97) {
		write_all(k.c, frames + off, n - off < 97 ? n - off : 97);
		usleep(200);
	}
	/* All of it, then the end of the stream (our FIN, relayed): exactly
	 * wn bytes, however long a loaded machine takes. */
	shutdown(k.c, SHUT_WR);
	CHECK_EQ(read_some(k.s, got, wn + 1, IO_TIMEOUT_MS), wn);
	CHECK(memcmp(got, want, wn) == 0);
	close_pair(&k);
	proxy_stop(&p);
}

static void test_delay(int lfd, unsigned up)
{
	static const char *const args[] = {"--fault",	 "delay", "--at-byte", "10",
					   "--delay-ms", "300",	  NULL};
	struct px p;
	struct conn k;
	uint64_t t0;

	CHECK_EQ(proxy_start(&p, up, args), 0);
	CHECK_EQ(open_pair(lfd, p.port, &k), 0);
	write_all(k.c, data, 5);
	CHECK_EQ(read_some(k.s, got, 5, IO_TIMEOUT_MS), 5);
	t0 = smg_now_ms();
	write_all(k.c, data + 5, 20);
	/* The stall holds the link: nothing past the offset for 300 ms,
	 * in either direction, then everything, intact. */
	CHECK_EQ(read_some(k.s, got, 20, 100), 0);
	write_all(k.s, data, 8);
	CHECK_EQ(read_some(k.c, got + 100, 8, 100), 0);
	CHECK_EQ(read_some(k.s, got, 20, IO_TIMEOUT_MS), 20);
	CHECK(smg_now_ms() - t0 >= 300);
	CHECK(memcmp(got, data + 5, 20) == 0);
	CHECK_EQ(read_some(k.c, got, 8, IO_TIMEOUT_MS), 8);
	close_pair(&k);
	proxy_stop(&p);
}

/* --arm-signal: nothing happens until SIGUSR1; the offset counts from there. */
static void test_armed(int lfd, unsigned up)
{
	static const char *const args[] = {"--fault", "corrupt",      "--at-byte",
					   "10",      "--arm-signal", NULL};
	struct px p;
	struct conn k;

	CHECK_EQ(proxy_start(&p, up, args), 0);
	CHECK_EQ(open_pair(lfd, p.port, &k), 0);
	write_all(k.c, data, 100);
	CHECK_EQ(read_some(k.s, got, 100, IO_TIMEOUT_MS), 100);
	CHECK(memcmp(got, data, 100) == 0);
	proxy_arm(&p);
	write_all(k.c, data + 100, 100);
	CHECK_EQ(read_some(k.s, got, 100, IO_TIMEOUT_MS), 100);
	CHECK(memcmp(got, data + 100, 10) == 0);
	CHECK_EQ(got[10], data[110] ^ 1);
	CHECK(memcmp(got + 11, data + 111, 89) == 0);
	close_pair(&k);
	proxy_stop(&p);
}

/* Armed replay still knows the frame boundaries from the stream's start:
 * after SIGUSR1, the frame holding the next byte past --at-byte repeats. */
static void test_replay_armed(int lfd, unsigned up)
{
	static const char *const args[] = {"--fault", "replay",	      "--at-byte",
					   "0",	      "--arm-signal", NULL};
	uint8_t frames[4096], want[8192];
	size_t starts[10], n, f5;
	struct px p;
	struct conn k;

	n = make_frames(frames, 10, starts);
	CHECK_EQ(proxy_start(&p, up, args), 0);
	CHECK_EQ(open_pair(lfd, p.port, &k), 0);
	write_all(k.c, frames, starts[5]);
	CHECK_EQ(read_some(k.s, got, starts[5], IO_TIMEOUT_MS), starts[5]);
	proxy_arm(&p);
	write_all(k.c, frames + starts[5], n - starts[5]);
	f5 = starts[6] - starts[5];
	memcpy(want, frames + starts[5], f5);
	memcpy(want + f5, frames + starts[5], n - starts[5]);
	shutdown(k.c, SHUT_WR);
	CHECK_EQ(read_some(k.s, got, n - starts[5] + f5 + 1, IO_TIMEOUT_MS),
		 n - starts[5] + f5);
	CHECK(memcmp(got, want, n - starts[5] + f5) == 0);
	close_pair(&k);
	proxy_stop(&p);
}

static void test_usage(void)
{
	char cmd[512];

	snprintf(cmd, sizeof(cmd),
		 "%s proxy --listen 127.0.0.1:0 --to nowhere 2>/dev/null",
		 getenv("SMG_NETTOOL"));
	CHECK_EQ(WEXITSTATUS(system(cmd)), 2);
	snprintf(
	    cmd, sizeof(cmd),
	    "%s proxy --listen 127.0.0.1:0 --to 127.0.0.1:1 --fault melt 2>/dev/null",
	    getenv("SMG_NETTOOL"));
	CHECK_EQ(WEXITSTATUS(system(cmd)), 2);
}

int main(void)
{
	unsigned up;
	int lfd;

	if (getenv("SMG_NETTOOL") == NULL)
		return T_SKIP;
	signal(SIGPIPE, SIG_IGN);
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 131 + 7);
	if ((lfd = listen_any(&up)) < 0)
		return 1;
	test_clean_and_corrupt(lfd, up);
	test_cut(lfd, up, "c2s");
	test_cut(lfd, up, "s2c");
	test_cut_at_zero(lfd, up);
	test_replay(lfd, up);
	test_delay(lfd, up);
	test_armed(lfd, up);
	test_replay_armed(lfd, up);
	test_usage();
	close(lfd);
	return check_result("proxy");
}
