/* The network hand-over of a domain's NICs, taken from a real sim VM
 * config: in a private network namespace standing for the destination
 * host (with its bridge), prepare both NICs, resume (vifs up + announce)
 * while capturing on the bridge, pause, remove. Root only (skips else). */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/base.h"
#include "check.h"
#include "engine/backend.h"
#include "engine/engine.h"
#include "simhost/simhost.h"

static const char config[] = "name = vm7\n"
			     "memory = 1M\n"
			     "nic = mac=52:54:00:aa:00:01,ipv4=10.9.0.7,ipv6=fd09::7\n"
			     "nic = mac=52:54:00:aa:00:02,ipv4=10.9.1.7,ipv4=10.9.1.8\n";

static struct smg_netid_host host = {.bridge = "hbr"};
static int events;

static void on_event(void *arg, const char *json)
{
	(void)arg;
	if (strstr(json, "\"event\":\"announce\"") != NULL)
		events++;
}

static bool link_up(const char *ns, const char *ifname)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "ip %s%s link show dev %s 2>/dev/null | grep -q ',UP'",
		 ns ? "-n " : "", ns ? ns : "", ifname);
	return system(cmd) == 0;
}

/* Count well-formed announcements per kind on fd for ms. */
static void capture(int fd, unsigned ms, unsigned counts[4])
{
	uint8_t buf[2048];
	struct smg_announce_frame f;
	struct pollfd p = {.fd = fd, .events = POLLIN};
	uint64_t end = smg_now_ms() + ms;
	ssize_t n;

	while (smg_now_ms() < end && poll(&p, 1, (int)(end - smg_now_ms())) > 0)
		if ((n = recv(fd, buf, sizeof(buf), 0)) > 0 &&
		    smg_announce_parse(buf, (size_t)n, &f) == SMG_OK)
			counts[f.kind]++;
}

int main(void)
{
	struct smg_sim_config cfg;
	struct smg_announce_sched sched = {3, 20, 10, 100};
	struct smg_announce *a;
	struct sockaddr_ll sll = {.sll_family = AF_PACKET};
	struct smg_netid id0, id1;
	unsigned counts[4] = {0};
	char err[128], cmd[256];
	int fd;

	if (geteuid() != 0 || unshare(CLONE_NEWNET) != 0 ||
	    system("ip link add hbr type bridge && ip link set hbr up") != 0) {
		printf("handover: needs root and network namespaces; skipped\n");
		return T_SKIP;
	}
	smg_log_set_level(SMG_LOG_WARN);
	snprintf(host.ns_prefix, sizeof(host.ns_prefix), "smgnet%d-", (int)getpid());
	CHECK_EQ(smg_sim_config_parse(config, sizeof(config) - 1, &cfg, err, sizeof(err)),
		 0);
	CHECK_EQ(cfg.n_nics, 2);
	CHECK_EQ(smg_netid_from_nic(&host, cfg.name, 0, &cfg.nics[0], &id0), 0);
	CHECK_EQ(smg_netid_from_nic(&host, cfg.name, 1, &cfg.nics[1], &id1), 0);
	CHECK(strcmp(id1.vif, "v1-vm7") == 0 && strcmp(id1.ifname, "eth1") == 0);
	CHECK_EQ(id0.nic.ipv4_prefix[0], 24);
	CHECK_EQ(id0.nic.ipv6_prefix[0], 64);

	CHECK_EQ(smg_netid_dest_prepare(&host, cfg.name, cfg.nics, cfg.n_nics), 0);
	CHECK(if_nametoindex("v0-vm7") != 0 && if_nametoindex("v1-vm7") != 0);
	CHECK(!link_up(NULL, "v0-vm7"));
	/* Preparing twice is refused (the namespace exists) and undoes nothing. */
	CHECK(smg_netid_dest_prepare(&host, cfg.name, cfg.nics, 1) != 0);

	fd = socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL));
	sll.sll_protocol = htons(ETH_P_ALL);
	sll.sll_ifindex = (int)if_nametoindex("hbr");
	CHECK(fd >= 0 && bind(fd, (struct sockaddr *)&sll, sizeof(sll)) == 0);
	CHECK_EQ(smg_netid_dest_resume(&host, cfg.name, cfg.nics, cfg.n_nics, &sched,
				       on_event, NULL, &a),
		 0);
	CHECK(link_up(NULL, "v0-vm7") && link_up(NULL, "v1-vm7"));
	/* Every frame is queued on the bound socket by the time the schedule
	 * is over: join, then drain (no race with a loaded machine). */
	CHECK_EQ(smg_announce_join(a), 0);
	capture(fd, 200, counts);
	close(fd);
	/* 3 rounds x 2 NICs; GARP per IPv4 (1 + 2), NA per IPv6 (1 + 0). */
	CHECK_EQ(events, 6);
	CHECK_EQ(counts[SMG_ANNOUNCE_RARP], 6);
	CHECK_EQ(counts[SMG_ANNOUNCE_GARP], 9);
	CHECK_EQ(counts[SMG_ANNOUNCE_NA], 3);

	CHECK_EQ(smg_netid_set_links(&host, cfg.name, cfg.nics, cfg.n_nics, false), 0);
	CHECK(!link_up(NULL, "v1-vm7"));
	CHECK_EQ(smg_netid_remove_all(&host, cfg.name, cfg.nics, cfg.n_nics), 0);
	CHECK_EQ(if_nametoindex("v0-vm7"), 0);
	snprintf(cmd, sizeof(cmd), "ip netns list | grep -q '^%s'", host.ns_prefix);
	CHECK(system(cmd) != 0);
	CHECK_EQ(smg_netid_remove_all(&host, cfg.name, cfg.nics, cfg.n_nics),
		 SMG_ERR_NOT_FOUND);
	return check_result("handover");
}
