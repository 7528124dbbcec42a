/* rtnetlink for the VM NIC: switch a vif's carrier (on the downtime path,
 * so no fork/exec), and watch a bridge's forwarding database until it
 * forwards a MAC through a given port. The kernel is the only sender on
 * these sockets (nl_pid 0 is checked); lengths are still checked with the
 * NLMSG_ and RTA_ macros before any field is read. */
#include <errno.h>
#include <linux/neighbour.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/base.h"
#include "engine/engine.h"

#define NL_BUF 16384

static int nl_open(unsigned groups, int *out)
{
	struct sockaddr_nl sa = {.nl_family = AF_NETLINK, .nl_groups = groups};
	int fd;

	*out = -1;
	if ((fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE)) < 0)
		return smg_err_sys(errno);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		int e = errno;

		close(fd);
		return smg_err_sys(e);
	}
	*out = fd;
	return SMG_OK;
}

/* Read one datagram from the kernel; *n = 0 for one from anyone else. */
static int nl_recv(int fd, void *buf, size_t cap, size_t *n)
{
	struct sockaddr_nl from;
	socklen_t fl = sizeof(from);
	ssize_t got;

	*n = 0;
	do
		got = recvfrom(fd, buf, cap, 0, (struct sockaddr *)&from, &fl);
	while (got < 0 && errno == EINTR);
	if (got < 0)
		return smg_err_sys(errno);
	if (from.nl_pid == 0)
		*n = (size_t)got;
	return SMG_OK;
}

int smg_netid_set_link(const struct smg_netid *id, bool up)
{
	struct {
		struct nlmsghdr nh;
		struct ifinfomsg ifi;
	} req;
	char buf[NL_BUF];
	struct nlmsghdr *nh;
	unsigned idx;
	size_t n;
	int fd, r;

	if ((idx = if_nametoindex(id->vif)) == 0) {
		smg_err("netid: vif %s: %s", id->vif, strerror(errno));
		return SMG_ERR_NOT_FOUND;
	}
	if ((r = nl_open(0, &fd)) != 0)
		return r;
	memset(&req, 0, sizeof(req));
	req.nh.nlmsg_len = sizeof(req);
	req.nh.nlmsg_type = RTM_NEWLINK;
	req.nh.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
	req.nh.nlmsg_seq = 1;
	req.ifi.ifi_family = AF_UNSPEC;
	req.ifi.ifi_index = (int)idx;
	req.ifi.ifi_flags = up ? IFF_UP : 0;
	req.ifi.ifi_change = IFF_UP;
	if (send(fd, &req, sizeof(req), 0) != (ssize_t)sizeof(req)) {
		r = smg_err_sys(errno);
		goto out;
	}
	r = SMG_ERR_PROTO;
	while (r == SMG_ERR_PROTO) {
		if ((r = nl_recv(fd, buf, sizeof(buf), &n)) != 0)
			goto out;
		r = SMG_ERR_PROTO;
		for (nh = (struct nlmsghdr *)buf; NLMSG_OK(nh, n);
		     nh = NLMSG_NEXT(nh, n)) {
			const struct nlmsgerr *e = NLMSG_DATA(nh);

			if (nh->nlmsg_type != NLMSG_ERROR || nh->nlmsg_seq != 1 ||
			    nh->nlmsg_len < NLMSG_LENGTH(sizeof(*e)))
				continue;
			r = e->error == 0 ? SMG_OK : smg_err_sys(-e->error);
			if (r != 0)
				smg_err("netid: set %s %s: %s", id->vif,
					up ? "up" : "down", strerror(-e->error));
			break;
		}
	}
out:
	close(fd);
	return r;
}

/* Does this RTM_NEWNEIGH say bridge `br` forwards `mac` through `port`? */
static bool fdb_match(const struct nlmsghdr *nh, unsigned br, unsigned port,
		      const uint8_t mac[SMG_MAC_LEN])
{
	const struct ndmsg *nd = NLMSG_DATA(nh);
	const struct rtattr *rta;
	bool mac_ok = false, master_ok = false;
	int len;

	if (nh->nlmsg_type != RTM_NEWNEIGH || nh->nlmsg_len < NLMSG_LENGTH(sizeof(*nd)) ||
	    nd->ndm_family != AF_BRIDGE || (unsigned)nd->ndm_ifindex != port)
		return false;
	len = (int)(nh->nlmsg_len - NLMSG_LENGTH(sizeof(*nd)));
	for (rta = (const struct rtattr *)((const char *)nd + NLMSG_ALIGN(sizeof(*nd)));
	     RTA_OK(rta, len); rta = RTA_NEXT(rta, len)) {
		if (rta->rta_type == NDA_LLADDR && RTA_PAYLOAD(rta) == SMG_MAC_LEN)
			mac_ok = memcmp(RTA_DATA(rta), mac, SMG_MAC_LEN) == 0;
		else if (rta->rta_type == NDA_MASTER &&
			 RTA_PAYLOAD(rta) == sizeof(uint32_t))
			master_ok = *(const uint32_t *)RTA_DATA(rta) == br;
	}
	return mac_ok && master_ok;
}

static int scan(int fd, unsigned br, unsigned port, const uint8_t mac[SMG_MAC_LEN],
		bool *found, bool *dump_done)
{
	char buf[NL_BUF] __attribute__((aligned(NLMSG_ALIGNTO)));
	struct nlmsghdr *nh;
	size_t n;
	int r;

	if ((r = nl_recv(fd, buf, sizeof(buf), &n)) != 0)
		return r == SMG_ERR_SYS && smg_err_errno() == ENOBUFS ? SMG_OK : r;
	for (nh = (struct nlmsghdr *)buf; NLMSG_OK(nh, n); nh = NLMSG_NEXT(nh, n)) {
		if (nh->nlmsg_type == NLMSG_DONE && dump_done != NULL)
			*dump_done = true;
		if (fdb_match(nh, br, port, mac))
			*found = true;
	}
	return SMG_OK;
}

static int dump_fdb(unsigned br, unsigned port, const uint8_t mac[SMG_MAC_LEN],
		    bool *found)
{
	struct {
		struct nlmsghdr nh;
		struct ndmsg nd;
		struct rtattr master;
		uint32_t br;
	} req;
	bool done = false;
	uint64_t deadline = smg_now_ms() + 5000;
	struct pollfd pfd;
	int fd, r;

	if ((r = nl_open(0, &fd)) != 0)
		return r;
	memset(&req, 0, sizeof(req));
	req.nh.nlmsg_len = sizeof(req);
	req.nh.nlmsg_type = RTM_GETNEIGH;
	req.nh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	req.nd.ndm_family = AF_BRIDGE;
	req.master.rta_type = NDA_MASTER;
	req.master.rta_len = RTA_LENGTH(sizeof(uint32_t));
	req.br = br;
	if (send(fd, &req, sizeof(req), 0) != (ssize_t)sizeof(req)) {
		r = smg_err_sys(errno);
		goto out;
	}
	pfd.fd = fd;
	pfd.events = POLLIN;
	while (!done && r == SMG_OK && smg_now_ms() < deadline)
		if (poll(&pfd, 1, 100) > 0)
			r = scan(fd, br, port, mac, found, &done);
	if (!done && r == SMG_OK)
		r = SMG_ERR_TIMEOUT;
out:
	close(fd);
	return r;
}

int smg_netid_watch_fdb(const char *bridge, const char *port,
			const uint8_t mac[static SMG_MAC_LEN], unsigned timeout_ms,
			uint64_t *when_ns)
{
	unsigned br, pi;
	bool found = false;
	uint64_t deadline = smg_now_ms() + timeout_ms;
	struct pollfd pfd;
	int fd, r, left;

	*when_ns = 0;
	if ((br = if_nametoindex(bridge)) == 0 || (pi = if_nametoindex(port)) == 0) {
		smg_err("netid: bridge %s / port %s: %s", bridge, port, strerror(errno));
		return SMG_ERR_NOT_FOUND;
	}
	/* Subscribe before looking, so a move between the two is not missed. */
	if ((r = nl_open(RTMGRP_NEIGH, &fd)) != 0)
		return r;
	if ((r = dump_fdb(br, pi, mac, &found)) != 0)
		goto out;
	pfd.fd = fd;
	pfd.events = POLLIN;
	while (!found) {
		left = (int)(deadline - smg_now_ms());
		if (smg_now_ms() >= deadline) {
			r = SMG_ERR_TIMEOUT;
			goto out;
		}
		if (poll(&pfd, 1, left) > 0 &&
		    (r = scan(fd, br, pi, mac, &found, NULL)) != 0)
			goto out;
	}
	*when_ns = smg_now_ns();
out:
	close(fd);
	return r;
}
