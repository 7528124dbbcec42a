/* Test-bed tools of smg-nettool (test/tools/nettool.c): capture (announcement frames on
 * an interface, parsed by smg_announce_parse), probe (ICMP echo + a UDP flow at a fixed
 * interval, counting what was lost), udp-echo (the VM's side of that flow). */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/base.h"
#include "engine/engine.h"
#include "nettool.h"

#define CAPTURE_SNAP	2048
#define CAPTURE_RCVBUF	(8 << 20)
#define PROBE_MAX	(1u << 16) /* ICMP sequence numbers are 16-bit */
#define PROBE_DRAIN_MS	300	   /* wait for late replies after the last probe */
#define PROBE_ICMP_LEN	16	   /* header + 8-byte payload */
#define ICMP_ECHO	8
#define ICMP_ECHOREPLY	0
#define ICMP6_ECHO	128
#define ICMP6_ECHOREPLY 129

static int uint_arg(const char *s, unsigned max, unsigned *out)
{
	char *end;
	unsigned long v;

	if (s[0] < '0' || s[0] > '9')
		return -1;
	v = strtoul(s, &end, 10);
	if (*end != '\0' || v > max)
		return -1;
	*out = (unsigned)v;
	return 0;
}

static void fmt_ip(const struct smg_announce_frame *f, char *out, size_t cap)
{
	if (f->kind == SMG_ANNOUNCE_GARP)
		inet_ntop(AF_INET, f->ip, out, (socklen_t)cap);
	else if (f->kind == SMG_ANNOUNCE_NA)
		inet_ntop(AF_INET6, f->ip, out, (socklen_t)cap);
	else
		snprintf(out, cap, "%s", "");
}

struct cap_counts {
	unsigned kinds[4], bad, other;
};

static void capture_one(const uint8_t *buf, size_t len, const uint8_t *mac,
			struct cap_counts *c)
{
	struct smg_announce_frame f;
	char ip[INET6_ADDRSTRLEN], ev[320];
	int r;

	if (mac != NULL && (len < 12 || memcmp(buf + 6, mac, SMG_MAC_LEN) != 0))
		return;
	r = smg_announce_parse(buf, len, &f);
	if (r == SMG_ERR_UNKNOWN_TYPE) {
		c->other++;
		return;
	}
	if (r != SMG_OK) {
		c->bad++;
		snprintf(ev, sizeof(ev),
			 "{\"event\":\"bad_frame\",\"len\":%zu,\"err\":\"%s\"}", len,
			 smg_strerror(r));
		nettool_emit(ev);
		return;
	}
	c->kinds[f.kind]++;
	fmt_ip(&f, ip, sizeof(ip));
	snprintf(ev, sizeof(ev),
		 "{\"event\":\"frame\",\"kind\":\"%s\",\"mac\":\"%02x:%02x:%02x:%02x:%"
		 "02x:%02x\","
		 "\"ip\":\"%s\",\"len\":%zu,\"t_mono_us\":%llu}",
		 smg_announce_kind_name(f.kind), f.mac[0], f.mac[1], f.mac[2], f.mac[3],
		 f.mac[4], f.mac[5], ip, len, (unsigned long long)(smg_now_ns() / 1000));
	nettool_emit(ev);
}

/* secmig net capture --if IF [--timeout-ms T] [--count N] [--mac MAC] */
int nettool_capture(int argc, char **argv)
{
	static const struct option opts[] = {{"if", required_argument, NULL, 'i'},
					     {"timeout-ms", required_argument, NULL, 't'},
					     {"count", required_argument, NULL, 'n'},
					     {"mac", required_argument, NULL, 'm'},
					     {NULL, 0, NULL, 0}};
	const char *ifname = NULL;
	unsigned timeout_ms = 5000, count = 0, idx;
	uint8_t mac[SMG_MAC_LEN], buf[CAPTURE_SNAP];
	bool have_mac = false;
	struct cap_counts c = {0};
	struct sockaddr_ll sll, from;
	socklen_t fl;
	struct pollfd pfd;
	uint64_t deadline;
	char ev[256];
	ssize_t n;
	int o, fd;

	optind = 0;
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if ((o == 'i' && (ifname = optarg) == NULL) ||
		    (o == 't' && uint_arg(optarg, 3600000, &timeout_ms) != 0) ||
		    (o == 'n' && uint_arg(optarg, 1000000, &count) != 0) ||
		    (o == 'm' && smg_vnic_parse_mac(optarg, mac) != 0) || o == '?')
			return nettool_usage("capture: bad option");
		have_mac |= o == 'm';
	}
	if (ifname == NULL || optind < argc)
		return nettool_usage("capture: --if is required");
	if ((idx = if_nametoindex(ifname)) == 0) {
		smg_err("net: capture: interface %s: %s", ifname, strerror(errno));
		return NETTOOL_EXIT_BACKEND;
	}
	if ((fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ALL))) < 0) {
		smg_err("net: capture: AF_PACKET: %s (needs CAP_NET_RAW)",
			strerror(errno));
		return NETTOOL_EXIT_FAIL;
	}
	memset(&sll, 0, sizeof(sll));
	sll.sll_family = AF_PACKET;
	sll.sll_protocol = htons(ETH_P_ALL);
	sll.sll_ifindex = (int)idx;
	/* A busy link (the test's own ping flood) must not push announcements
	 * out of the queue while we are descheduled. */
	int rcvbuf = CAPTURE_RCVBUF;
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof(rcvbuf)) != 0)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	if (bind(fd, (struct sockaddr *)&sll, sizeof(sll)) != 0) {
		smg_err("net: capture: bind %s: %s", ifname, strerror(errno));
		close(fd);
		return NETTOOL_EXIT_FAIL;
	}
	nettool_install_stop();
	nettool_emit("{\"event\":\"capture_ready\"}");
	deadline = smg_now_ms() + timeout_ms;
	pfd.fd = fd;
	pfd.events = POLLIN;
	while (!nettool_stopped() && smg_now_ms() < deadline &&
	       (count == 0 || c.kinds[1] + c.kinds[2] + c.kinds[3] < count)) {
		if (poll(&pfd, 1, (int)(deadline - smg_now_ms())) <= 0)
			continue;
		fl = sizeof(from);
		if ((n = recvfrom(fd, buf, sizeof(buf), MSG_TRUNC,
				  (struct sockaddr *)&from, &fl)) < 0 ||
		    from.sll_pkttype == PACKET_OUTGOING)
			continue;
		/* MSG_TRUNC reports the real length: hand the parser only what
		 * was actually copied. */
		capture_one(buf, (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf),
			    have_mac ? mac : NULL, &c);
	}
	close(fd);
	snprintf(
	    ev, sizeof(ev),
	    "{\"event\":\"capture_done\",\"rarp\":%u,\"garp\":%u,\"na\":%u,\"bad\":%u,"
	    "\"other\":%u}",
	    c.kinds[SMG_ANNOUNCE_RARP], c.kinds[SMG_ANNOUNCE_GARP],
	    c.kinds[SMG_ANNOUNCE_NA], c.bad, c.other);
	nettool_emit(ev);
	return NETTOOL_EXIT_OK;
}

struct flow {
	int fd;
	unsigned sent, recv, dup;
	uint8_t *seen; /* one byte per sequence number */
};

static void flow_note(struct flow *f, uint64_t seq)
{
	if (seq >= f->sent || seq >= PROBE_MAX)
		return; /* not one of ours */
	if (f->seen[seq]) {
		f->dup++;
		return;
	}
	f->seen[seq] = 1;
	f->recv++;
}

/* Longest run of consecutive probes without an answer. */
static unsigned flow_max_gap(const struct flow *f)
{
	unsigned run = 0, best = 0;

	for (unsigned i = 0; i < f->sent; i++) {
		run = f->seen[i] ? 0 : run + 1;
		best = run > best ? run : best;
	}
	return best;
}

static void icmp_recv(struct flow *f, bool v6)
{
	uint8_t buf[256];
	struct smg_rd rd;
	uint8_t type;
	uint16_t seq;
	ssize_t n;

	while ((n = recv(f->fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0) {
		/* A ping socket hands us the ICMP message only; it may still be
		 * short or another type: check before reading the sequence. */
		smg_rd_init(&rd, buf, (size_t)n);
		if (smg_rd_u8(&rd, &type) != 0 ||
		    type != (v6 ? ICMP6_ECHOREPLY : ICMP_ECHOREPLY) ||
		    smg_rd_skip(&rd, 5) != 0 || smg_rd_u16(&rd, &seq) != 0)
			continue;
		flow_note(f, seq);
	}
}

static void udp_recv(struct flow *f)
{
	uint8_t buf[64];
	ssize_t n;

	while ((n = recv(f->fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0)
		if (n == 8)
			flow_note(f, smg_load_be64(buf));
}

static int probe_send(struct flow *icmp, struct flow *udp, bool v6)
{
	uint8_t pkt[PROBE_ICMP_LEN] = {0}, u[8];

	pkt[0] = v6 ? ICMP6_ECHO : ICMP_ECHO;
	smg_store_be16(pkt + 6, (uint16_t)icmp->sent);
	smg_store_be64(pkt + 8, icmp->sent);
	/* The kernel fills the identifier and checksum of a ping socket. */
	/* A probe the kernel refused (no route yet) counts as sent and lost. */
	(void)send(icmp->fd, pkt, sizeof(pkt), 0);
	icmp->sent++;
	if (udp->fd >= 0) {
		smg_store_be64(u, udp->sent);
		(void)send(udp->fd, u, sizeof(u), 0);
		udp->sent++;
	}
	return SMG_OK;
}

static int open_flow(int family, int type, int proto, const struct sockaddr *to,
		     socklen_t tl, struct flow *f)
{
	if ((f->fd = socket(family, type | SOCK_CLOEXEC, proto)) < 0)
		return -1;
	if (connect(f->fd, to, tl) != 0)
		return -1;
	return (f->seen = calloc(PROBE_MAX, 1)) != NULL ? 0 : -1;
}

/* secmig net probe --to IP [--udp-port P] [--interval-ms MS] [--duration-ms MS]
 * Runs until the duration or SIGTERM, then prints one summary line. */
int nettool_probe(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"to", required_argument, NULL, 't'},
	    {"udp-port", required_argument, NULL, 'u'},
	    {"interval-ms", required_argument, NULL, 'i'},
	    {"duration-ms", required_argument, NULL, 'd'},
	    {NULL, 0, NULL, 0}};
	const char *to = NULL;
	unsigned port = 0, interval = 10, duration = 0;
	struct flow icmp = {.fd = -1}, udp = {.fd = -1};
	struct sockaddr_storage ss;
	struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
	uint64_t start, next, stop_at = 0;
	struct pollfd pfd[2];
	char ev[512];
	bool v6;
	int o, rc = NETTOOL_EXIT_FAIL;

	optind = 0;
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1)
		if ((o == 't' && (to = optarg) == NULL) ||
		    (o == 'u' && uint_arg(optarg, 65535, &port) != 0) ||
		    (o == 'i' &&
		     (uint_arg(optarg, 60000, &interval) != 0 || interval == 0)) ||
		    (o == 'd' && uint_arg(optarg, 3600000, &duration) != 0) || o == '?')
			return nettool_usage("probe: bad option");
	if (to == NULL || optind < argc)
		return nettool_usage("probe: --to IP is required");
	memset(&ss, 0, sizeof(ss));
	v6 = strchr(to, ':') != NULL;
	if (v6 ? inet_pton(AF_INET6, to, &s6->sin6_addr) != 1
	       : inet_pton(AF_INET, to, &s4->sin_addr) != 1)
		return nettool_usage("probe: '%s' is not an IP address", to);
	ss.ss_family = v6 ? AF_INET6 : AF_INET;
	if (open_flow(ss.ss_family, SOCK_DGRAM, v6 ? IPPROTO_ICMPV6 : IPPROTO_ICMP,
		      (struct sockaddr *)&ss, sizeof(ss), &icmp) != 0) {
		smg_err("net: probe: ping socket: %s (sysctl net.ipv4.ping_group_range)",
			strerror(errno));
		goto out;
	}
	if (port != 0) {
		if (v6)
			s6->sin6_port = htons((uint16_t)port);
		else
			s4->sin_port = htons((uint16_t)port);
		if (open_flow(ss.ss_family, SOCK_DGRAM, 0, (struct sockaddr *)&ss,
			      sizeof(ss), &udp) != 0) {
			smg_err("net: probe: udp: %s", strerror(errno));
			goto out;
		}
	}
	nettool_install_stop();
	start = next = smg_now_ms();
	pfd[0] = (struct pollfd){.fd = icmp.fd, .events = POLLIN};
	pfd[1] = (struct pollfd){.fd = udp.fd, .events = POLLIN};
	nettool_emit("{\"event\":\"probe_started\"}");
	for (;;) {
		uint64_t now = smg_now_ms();

		if (stop_at == 0 && (nettool_stopped() || icmp.sent >= PROBE_MAX ||
				     (duration != 0 && now - start >= duration)))
			stop_at = now + PROBE_DRAIN_MS;
		if (stop_at != 0 && now >= stop_at)
			break;
		if (stop_at == 0 && now >= next) {
			probe_send(&icmp, &udp, v6);
			next += interval;
		}
		poll(pfd, udp.fd >= 0 ? 2 : 1,
		     (int)((stop_at ? stop_at : next) > now
			       ? (stop_at ? stop_at : next) - now
			       : 0));
		icmp_recv(&icmp, v6);
		if (udp.fd >= 0)
			udp_recv(&udp);
	}
	snprintf(ev, sizeof(ev),
		 "{\"event\":\"probe\",\"to\":\"%s\",\"interval_ms\":%u,\"icmp_sent\":%u,"
		 "\"icmp_recv\":%u,\"icmp_lost\":%u,\"icmp_max_gap\":%u,\"udp_sent\":%u,"
		 "\"udp_recv\":%u,\"udp_lost\":%u,\"udp_max_gap\":%u}",
		 to, interval, icmp.sent, icmp.recv, icmp.sent - icmp.recv,
		 flow_max_gap(&icmp), udp.sent, udp.recv, udp.sent - udp.recv,
		 udp.fd >= 0 ? flow_max_gap(&udp) : 0);
	nettool_emit(ev);
	rc = NETTOOL_EXIT_OK;
out:
	if (icmp.fd >= 0)
		close(icmp.fd);
	if (udp.fd >= 0)
		close(udp.fd);
	free(icmp.seen);
	free(udp.seen);
	return rc;
}

/* secmig net udp-echo [--port P]: echo every datagram back to its sender. */
int nettool_udp_echo(int argc, char **argv)
{
	static const struct option opts[] = {{"port", required_argument, NULL, 'p'},
					     {NULL, 0, NULL, 0}};
	struct sockaddr_in6 sa = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_ANY_INIT};
	struct sockaddr_storage from;
	socklen_t fl = sizeof(sa);
	unsigned port = 0;
	uint8_t buf[2048];
	char ev[96];
	int o, fd, off = 0;
	ssize_t n;

	optind = 0;
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1)
		if (o != 'p' || uint_arg(optarg, 65535, &port) != 0)
			return nettool_usage("udp-echo: bad option");
	sa.sin6_port = htons((uint16_t)port);
	if ((fd = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0 ||
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off)) != 0 ||
	    bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &fl) != 0) {
		smg_err("net: udp-echo: %s", strerror(errno));
		if (fd >= 0)
			close(fd);
		return NETTOOL_EXIT_FAIL;
	}
	nettool_install_stop();
	snprintf(ev, sizeof(ev), "{\"event\":\"udp_echo_ready\",\"port\":%u}",
		 ntohs(sa.sin6_port));
	nettool_emit(ev);
	while (!nettool_stopped()) {
		fl = sizeof(from);
		if ((n = recvfrom(fd, buf, sizeof(buf), 0, (struct sockaddr *)&from,
				  &fl)) < 0)
			continue;
		sendto(fd, buf, (size_t)n, 0, (struct sockaddr *)&from, fl);
	}
	close(fd);
	return NETTOOL_EXIT_OK;
}
