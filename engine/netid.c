/* The VM's network identity on a host: a namespace holding the VM's NIC
 * (its MAC, IPv4, IPv6), veth-paired with a vif enslaved to the host's
 * bridge, the way Xen plugs a vif into xenbr0. The kernel in that
 * namespace answers ARP, ND and ping for the VM.
 *
 * Building it (namespace, veth, addresses) runs iproute2's `ip` with an
 * argv, no shell: `ip netns add` is a bind-mount protocol (/run/netns,
 * shared propagation) that every other tool on the host must agree with,
 * and iproute2 is that protocol's reference. It happens before resume on
 * the destination and after commit on the source, off the downtime path.
 * What is on the downtime path (vif carrier on/off) and the fdb watch
 * speak rtnetlink directly (netid_nl.c). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/base.h"
#include "engine/engine.h"

#define IP_ARGV_MAX 16
#define CIDR_MAX    64

extern char **environ;

int smg_vnic_parse_mac(const char *text, uint8_t mac[static SMG_MAC_LEN])
{
	return smg_mac_parse_nic(text, mac);
}

int smg_vnic_add_addr(struct smg_vnic *nic, const char *cidr)
{
	char buf[CIDR_MAX], *slash;
	uint64_t prefix;
	bool v6;

	if (cidr == NULL || strlen(cidr) >= sizeof(buf))
		return SMG_ERR_INVAL;
	memcpy(buf, cidr, strlen(cidr) + 1);
	v6 = strchr(buf, ':') != NULL;
	prefix = v6 ? 128 : 32;
	if ((slash = strchr(buf, '/')) != NULL) {
		*slash = '\0';
		if (smg_parse_uint(slash + 1, v6 ? 128u : 32u, &prefix) != SMG_OK ||
		    prefix == 0)
			return SMG_ERR_INVAL;
	}
	if (v6) {
		if (nic->n_ipv6 >= SMG_VNIC_ADDRS_MAX ||
		    inet_pton(AF_INET6, buf, nic->ipv6[nic->n_ipv6]) != 1)
			return SMG_ERR_INVAL;
		nic->ipv6_prefix[nic->n_ipv6++] = (uint8_t)prefix;
	} else {
		if (nic->n_ipv4 >= SMG_VNIC_ADDRS_MAX ||
		    inet_pton(AF_INET, buf, nic->ipv4[nic->n_ipv4]) != 1)
			return SMG_ERR_INVAL;
		nic->ipv4_prefix[nic->n_ipv4++] = (uint8_t)prefix;
	}
	return SMG_OK;
}

static int check_id(const struct smg_netid *id)
{
	if (!smg_name_ok(id->vm_ns, sizeof(id->vm_ns)) ||
	    !smg_name_ok(id->vif, sizeof(id->vif)) ||
	    !smg_name_ok(id->bridge, sizeof(id->bridge)) ||
	    !smg_name_ok(id->ifname, sizeof(id->ifname))) {
		smg_err(
		    "netid: bad name (namespace '%s', vif '%s', bridge '%s', nic '%s'): "
		    "use letters, digits, '-', '_', '.'; interface names < 16",
		    id->vm_ns, id->vif, id->bridge, id->ifname);
		return SMG_ERR_INVAL;
	}
	return SMG_OK;
}

/* Run `ip ARGS...`; quiet: its stderr goes to /dev/null (expected misses). */
static int run_ip(bool quiet, const char *const *args)
{
	const char *argv[IP_ARGV_MAX + 2];
	posix_spawn_file_actions_t fa;
	size_t n = 0;
	int st, r;
	pid_t pid;

	argv[n++] = "ip";
	for (; args[n - 1] != NULL && n <= IP_ARGV_MAX; n++)
		argv[n] = args[n - 1];
	if (n > IP_ARGV_MAX)
		return SMG_ERR_INVAL;
	argv[n] = NULL;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
	if (quiet)
		posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, "/dev/null",
						 O_WRONLY, 0);
	r = posix_spawnp(&pid, "ip", &fa, NULL, (char *const *)argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (r != 0) {
		smg_err("netid: cannot run ip(8): %s (apt-get install iproute2)",
			strerror(r));
		return smg_err_sys(r);
	}
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return smg_err_sys(errno);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		if (!quiet)
			smg_err("netid: 'ip %s %s %s ...' failed", args[0],
				args[1] ? args[1] : "",
				args[1] && args[2] ? args[2] : "");
		return SMG_ERR_BACKEND;
	}
	return SMG_OK;
}

#define IP(...) run_ip(false, (const char *const[]){__VA_ARGS__, NULL})

static int add_addrs(const struct smg_netid *id)
{
	char a[INET6_ADDRSTRLEN], cidr[CIDR_MAX];
	unsigned i;
	int r;

	for (i = 0; i < id->nic.n_ipv4; i++) {
		inet_ntop(AF_INET, id->nic.ipv4[i], a, sizeof(a));
		snprintf(cidr, sizeof(cidr), "%s/%u", a, id->nic.ipv4_prefix[i]);
		if ((r = IP("-n", id->vm_ns, "addr", "add", cidr, "dev", id->ifname)) !=
		    0)
			return r;
	}
	for (i = 0; i < id->nic.n_ipv6; i++) {
		inet_ntop(AF_INET6, id->nic.ipv6[i], a, sizeof(a));
		snprintf(cidr, sizeof(cidr), "%s/%u", a, id->nic.ipv6_prefix[i]);
		/* nodad: the address is the VM's and moves with it; a DAD probe
		 * would only delay the NIC and race the announcement. */
		if ((r = IP("-n", id->vm_ns, "addr", "add", cidr, "dev", id->ifname,
			    "nodad")) != 0)
			return r;
	}
	return SMG_OK;
}

int smg_netid_prepare(const struct smg_netid *id)
{
	char mac[18];
	int r;

	if ((r = check_id(id)) != 0)
		return r;
	/* Another VM's vif by that name: never take it over, and never remove
	 * it on the way out (fail: below would). */
	if (if_nametoindex(id->vif) != 0) {
		smg_err("netid: vif %s exists on this host already: not touching it",
			id->vif);
		return SMG_ERR_EXISTS;
	}
	snprintf(mac, sizeof(mac), "%02x:%02x:%02x:%02x:%02x:%02x", id->nic.mac[0],
		 id->nic.mac[1], id->nic.mac[2], id->nic.mac[3], id->nic.mac[4],
		 id->nic.mac[5]);
	if ((r = IP("netns", "add", id->vm_ns)) != 0)
		return r == SMG_ERR_BACKEND ? SMG_ERR_EXISTS : r;
	/* addrgenmode none: no link-local address, so the NIC stays silent
	 * until we announce it (and no DAD for it). */
	if ((r = IP("link", "add", id->vif, "type", "veth", "peer", "name", id->ifname,
		    "netns", id->vm_ns)) != 0 ||
	    /* Xen's vif-bridge trick: the host end gets fe:ff:ff:ff:ff:ff, so a
	     * Linux bridge never adopts a vif's MAC as its own (it takes the
	     * lowest port MAC) and changes address when the vif goes away,
	     * which leaves every neighbour's ARP entry for the host stale. */
	    (r = IP("link", "set", "dev", id->vif, "address", "fe:ff:ff:ff:ff:ff",
		    "addrgenmode", "none")) != 0 ||
	    (r = IP("-n", id->vm_ns, "link", "set", "dev", id->ifname, "address", mac,
		    "addrgenmode", "none")) != 0 ||
	    (r = add_addrs(id)) != 0 ||
	    (r = IP("-n", id->vm_ns, "link", "set", "dev", "lo", "up")) != 0 ||
	    (r = IP("-n", id->vm_ns, "link", "set", "dev", id->ifname, "up")) != 0 ||
	    (r = IP("link", "set", "dev", id->vif, "master", id->bridge)) != 0)
		goto fail;
	smg_info("netid: NIC %s prepared in %s (vif %s on %s, down)", mac, id->vm_ns,
		 id->vif, id->bridge);
	return SMG_OK;
fail:
	smg_netid_remove(id);
	return r;
}

int smg_netid_remove(const struct smg_netid *id)
{
	int r1, r2;

	if (check_id(id) != 0)
		return SMG_ERR_INVAL;
	/* Delete the vif first: that removes both ends at once, while a
	 * namespace's own teardown runs later from a kernel work queue and
	 * would leave the vif on the bridge meanwhile. */
	r1 = run_ip(true, (const char *const[]){"link", "del", "dev", id->vif, NULL});
	r2 = run_ip(true, (const char *const[]){"netns", "del", id->vm_ns, NULL});
	if (r1 != 0 && r2 != 0) {
		smg_warn("netid: nothing to remove for %s / %s", id->vm_ns, id->vif);
		return SMG_ERR_NOT_FOUND;
	}
	smg_info("netid: NIC removed (%s, vif %s)", id->vm_ns, id->vif);
	return SMG_OK;
}
