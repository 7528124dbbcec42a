/* The VM's NICs: a tap per NIC on a host bridge, as QEMU's `-netdev tap`.
 * The destination creates its taps (persistent, enslaved, link down) before
 * QEMU opens them and switches them on at resume; the source takes its taps
 * down while the VM is paused (no frame reaches or leaves the paused copy,
 * and the bridge forgets the MAC on that port) and removes them once the VM
 * lives elsewhere. Hot-path link changes are one rtnetlink request each
 * (engine/netid_nl.c). After resume the VM is announced twice over: QEMU's
 * own announce-self injects RARP through each NIC, so every bridge on the
 * path learns the new port as if the guest had sent it, and secmig's
 * announcement (engine/announce.c) adds gratuitous ARP and unsolicited
 * neighbour advertisements for the VM's addresses on the host bridge. */
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <linux/if_tun.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/base.h"
#include "engine/backend/qemu_internal.h"
#include "engine/engine.h"

#define NL_BUF 4096

struct nl_req {
	struct nlmsghdr nh;
	struct ifinfomsg ifi;
	char attrs[64];
};

static void add_u32_attr(struct nl_req *r, unsigned short type, uint32_t v)
{
	struct rtattr *a = (struct rtattr *)((char *)r + NLMSG_ALIGN(r->nh.nlmsg_len));

	a->rta_type = type;
	a->rta_len = (unsigned short)RTA_LENGTH(sizeof(v));
	memcpy(RTA_DATA(a), &v, sizeof(v));
	r->nh.nlmsg_len = NLMSG_ALIGN(r->nh.nlmsg_len) + RTA_ALIGN(a->rta_len);
}

/* Send one request, wait for its ACK. */
static int nl_call(struct nl_req *req, const char *what)
{
	char buf[NL_BUF];
	struct sockaddr_nl sa = {.nl_family = AF_NETLINK};
	ssize_t n;
	int fd, r = SMG_ERR_PROTO;

	if ((fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE)) < 0)
		return smg_err_sys(errno);
	req->nh.nlmsg_flags |= NLM_F_REQUEST | NLM_F_ACK;
	req->nh.nlmsg_seq = 1;
	if (sendto(fd, req, req->nh.nlmsg_len, 0, (struct sockaddr *)&sa, sizeof(sa)) <
	    0) {
		r = smg_err_sys(errno);
		goto out;
	}
	while (r == SMG_ERR_PROTO && (n = recv(fd, buf, sizeof(buf), 0)) > 0) {
		size_t left = (size_t)n;
		for (struct nlmsghdr *nh = (struct nlmsghdr *)buf; NLMSG_OK(nh, left);
		     nh = NLMSG_NEXT(nh, left)) {
			const struct nlmsgerr *e = NLMSG_DATA(nh);
			if (nh->nlmsg_type != NLMSG_ERROR || nh->nlmsg_seq != 1 ||
			    nh->nlmsg_len < NLMSG_LENGTH(sizeof(*e)))
				continue;
			r = e->error == 0 ? SMG_OK : smg_err_sys(-e->error);
			if (r != SMG_OK)
				smg_err("qemu: %s: %s", what, strerror(-e->error));
			break;
		}
	}
out:
	close(fd);
	return r;
}

static void init_req(struct nl_req *r, unsigned short type, unsigned idx)
{
	memset(r, 0, sizeof(*r));
	r->nh.nlmsg_len = NLMSG_LENGTH(sizeof(struct ifinfomsg));
	r->nh.nlmsg_type = type;
	r->ifi.ifi_family = AF_UNSPEC;
	r->ifi.ifi_index = (int)idx;
}

int smg_qemu_tap_create(const char *tap, const char *bridge)
{
	struct ifreq ifr;
	struct nl_req req;
	unsigned br;
	int fd;

	if ((br = if_nametoindex(bridge)) == 0) {
		smg_err("qemu: bridge %s: %s", bridge, strerror(errno));
		return SMG_ERR_NOT_FOUND;
	}
	if ((fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC)) < 0) {
		smg_err("qemu: /dev/net/tun: %s", strerror(errno));
		return smg_err_sys(errno);
	}
	memset(&ifr, 0, sizeof(ifr));
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", tap);
	/* Persistent: it stays when this descriptor closes, for QEMU to open. */
	if (ioctl(fd, TUNSETIFF, &ifr) != 0 || ioctl(fd, TUNSETPERSIST, 1) != 0) {
		int e = errno;
		smg_err("qemu: tap %s: %s", tap, strerror(e));
		close(fd);
		return e == EBUSY ? SMG_ERR_EXISTS : smg_err_sys(e);
	}
	close(fd);
	init_req(&req, RTM_NEWLINK, if_nametoindex(tap));
	add_u32_attr(&req, IFLA_MASTER, br);
	req.ifi.ifi_change = IFF_UP; /* and down: silent until resume */
	return nl_call(&req, "enslave the tap");
}

int smg_qemu_tap_set(const char *tap, bool up)
{
	struct smg_netid id;

	memset(&id, 0, sizeof(id));
	snprintf(id.vif, sizeof(id.vif), "%s", tap);
	return smg_netid_set_link(&id, up);
}

int smg_qemu_tap_delete(const char *tap)
{
	struct nl_req req;
	unsigned idx = if_nametoindex(tap);

	if (idx == 0)
		return SMG_ERR_NOT_FOUND;
	init_req(&req, RTM_DELLINK, idx);
	return nl_call(&req, "delete the tap");
}

int smg_qemu_announce(struct smg_qmp *q, const struct smg_qemu_vm *vm,
		      struct smg_announce **ann)
{
	static const struct smg_announce_sched sched = SMG_ANNOUNCE_SCHED_DEFAULT;
	struct smg_announce_target t[SMG_DOMAIN_NICS_MAX];
	struct smg_vnic nics[SMG_DOMAIN_NICS_MAX];
	struct json_object *a = json_object_new_object();
	int r;

	*ann = NULL;
	json_object_object_add(a, "initial", json_object_new_int64(sched.initial_ms));
	json_object_object_add(a, "max", json_object_new_int64(sched.max_ms));
	json_object_object_add(a, "rounds", json_object_new_int64(sched.rounds));
	json_object_object_add(a, "step", json_object_new_int64(sched.step_ms));
	if ((r = smg_qmp_call(q, "announce-self", a, -1, SMG_QMP_TIMEOUT_MS, NULL)) !=
	    SMG_OK)
		smg_warn("qemu: announce-self failed: switches learn the VM's new port "
			 "when it sends");
	if (vm->n_nics == 0)
		return r;
	for (unsigned i = 0; i < vm->n_nics; i++) {
		const struct smg_qemu_nic *n = &vm->nics[i];

		memset(&nics[i], 0, sizeof(nics[i]));
		memcpy(nics[i].mac, n->id.mac, SMG_MAC_LEN);
		nics[i].n_ipv4 = n->id.n_ipv4;
		nics[i].n_ipv6 = n->id.n_ipv6;
		memcpy(nics[i].ipv4, n->id.ipv4, sizeof(nics[i].ipv4));
		memcpy(nics[i].ipv6, n->id.ipv6, sizeof(nics[i].ipv6));
		memcpy(nics[i].ipv4_prefix, n->prefix4, sizeof(nics[i].ipv4_prefix));
		memcpy(nics[i].ipv6_prefix, n->prefix6, sizeof(nics[i].ipv6_prefix));
		t[i] = (struct smg_announce_target){NULL, n->bridge, &nics[i]};
	}
	return smg_announce_start(t, vm->n_nics, &sched, NULL, NULL, ann);
}
