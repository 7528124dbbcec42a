/* The network side of a migration for all NICs of one domain on this
 * host: the destination builds them before resume and switches them on
 * and announces them at resume; the source switches them off at pause
 * (on again if the migration aborts) and removes them after commit.
 * Names: namespace <prefix><domain>-<n>, vif v<n>-<domain> when that fits
 * IFNAMSIZ, else v<n>_<3 characters><8 hex of BLAKE2b(domain)> (never a
 * truncation two domains share: 'webserver-a' and 'webserver-b' once
 * both became v0-webserver and the second migration removed the first
 * VM's vif), eth<n> inside. A host runs one copy of a domain at a time,
 * so names only need to be unique per host; a vif that exists already is
 * never taken over (smg_netid_dest_prepare refuses). */
#include <net/if.h>
#include <stdio.h>
#include <string.h>

#include "base/base.h"
#include "engine/backend.h"
#include "engine/engine.h"

#include <sodium.h>

#define DEFAULT_PREFIX4 24
#define DEFAULT_PREFIX6 64

void smg_netid_vif_name(const char *domain, unsigned idx,
			char out[static SMG_NETID_IFNAME_MAX])
{
	uint8_t h[crypto_generichash_BYTES_MIN];

	if ((size_t)snprintf(out, SMG_NETID_IFNAME_MAX, "v%u-%s", idx, domain) <
	    SMG_NETID_IFNAME_MAX)
		return;
	crypto_generichash(h, sizeof(h), (const uint8_t *)domain, strlen(domain), NULL,
			   0);
	snprintf(out, SMG_NETID_IFNAME_MAX, "v%u_%.3s%02x%02x%02x%02x", idx, domain, h[0],
		 h[1], h[2], h[3]);
}

int smg_netid_from_nic(const struct smg_netid_host *host, const char *domain,
		       unsigned idx, const struct smg_nic *nic, struct smg_netid *out)
{
	unsigned p4 = host->prefix4 ? host->prefix4 : DEFAULT_PREFIX4;
	unsigned p6 = host->prefix6 ? host->prefix6 : DEFAULT_PREFIX6;
	int n;

	memset(out, 0, sizeof(*out));
	if (idx > 9 || nic->n_ipv4 > SMG_VNIC_ADDRS_MAX ||
	    nic->n_ipv6 > SMG_VNIC_ADDRS_MAX || p4 > 32 || p6 > 128)
		return SMG_ERR_INVAL;
	n = snprintf(out->vm_ns, sizeof(out->vm_ns), "%s%s-%u", host->ns_prefix, domain,
		     idx);
	if (n < 0 || (size_t)n >= sizeof(out->vm_ns))
		return SMG_ERR_INVAL;
	smg_netid_vif_name(domain, idx, out->vif);
	snprintf(out->ifname, sizeof(out->ifname), "eth%u", idx);
	snprintf(out->bridge, sizeof(out->bridge), "%s", host->bridge);
	memcpy(out->nic.mac, nic->mac, SMG_MAC_LEN);
	out->nic.n_ipv4 = nic->n_ipv4;
	out->nic.n_ipv6 = nic->n_ipv6;
	for (unsigned i = 0; i < nic->n_ipv4; i++) {
		memcpy(out->nic.ipv4[i], nic->ipv4[i], 4);
		out->nic.ipv4_prefix[i] = (uint8_t)p4;
	}
	for (unsigned i = 0; i < nic->n_ipv6; i++) {
		memcpy(out->nic.ipv6[i], nic->ipv6[i], 16);
		out->nic.ipv6_prefix[i] = (uint8_t)p6;
	}
	return SMG_OK;
}

int smg_netid_remove_all(const struct smg_netid_host *host, const char *domain,
			 const struct smg_nic *nics, unsigned n)
{
	struct smg_netid id;
	int r, first = SMG_OK;

	for (unsigned i = 0; i < n; i++)
		if ((r = smg_netid_from_nic(host, domain, i, &nics[i], &id)) != 0 ||
		    (r = smg_netid_remove(&id)) != 0)
			first = first != SMG_OK ? first : r;
	return first;
}

int smg_netid_dest_prepare(const struct smg_netid_host *host, const char *domain,
			   const struct smg_nic *nics, unsigned n)
{
	struct smg_netid id;
	int r;

	for (unsigned i = 0; i < n; i++)
		if ((r = smg_netid_from_nic(host, domain, i, &nics[i], &id)) != 0 ||
		    (r = smg_netid_prepare(&id)) != 0) {
			smg_netid_remove_all(host, domain, nics, i);
			return r;
		}
	return SMG_OK;
}

int smg_netid_set_links(const struct smg_netid_host *host, const char *domain,
			const struct smg_nic *nics, unsigned n, bool up)
{
	struct smg_netid id;
	int r, first = SMG_OK;

	for (unsigned i = 0; i < n; i++)
		if ((r = smg_netid_from_nic(host, domain, i, &nics[i], &id)) != 0 ||
		    (r = smg_netid_set_link(&id, up)) != 0)
			first = first != SMG_OK ? first : r;
	return first;
}

int smg_netid_settle(const struct smg_netid_host *host, const char *domain,
		     bool runs_here, unsigned *n)
{
	static const struct smg_nic none;
	struct smg_netid id;
	int r, first = SMG_OK;

	*n = 0;
	for (unsigned i = 0; i < SMG_DOMAIN_NICS_MAX; i++) {
		if ((r = smg_netid_from_nic(host, domain, i, &none, &id)) != 0)
			return r;
		if (if_nametoindex(id.vif) == 0)
			continue;
		(*n)++;
		r = runs_here ? smg_netid_set_link(&id, true) : smg_netid_remove(&id);
		first = first != SMG_OK ? first : r;
	}
	return first;
}

int smg_netid_dest_resume(const struct smg_netid_host *host, const char *domain,
			  const struct smg_nic *nics, unsigned n,
			  const struct smg_announce_sched *sched,
			  smg_announce_event_fn ev, void *arg, struct smg_announce **out)
{
	struct smg_netid ids[SMG_DOMAIN_NICS_MAX];
	struct smg_announce_target t[SMG_DOMAIN_NICS_MAX];
	char ev_text[160];
	int r;

	*out = NULL;
	if (n == 0)
		return SMG_OK;
	if (n > SMG_DOMAIN_NICS_MAX)
		return SMG_ERR_INVAL;
	/* The moment the network side of the resume starts: what
	 * bench/network measures fdb_move_ms from. */
	if (ev != NULL) {
		snprintf(ev_text, sizeof(ev_text),
			 "{\"event\":\"nic_resume\",\"domain\":\"%.64s\",\"nics\":%u,"
			 "\"t_mono_us\":%llu}",
			 domain, n, (unsigned long long)(smg_now_ns() / 1000));
		ev(arg, ev_text);
	}
	if ((r = smg_netid_set_links(host, domain, nics, n, true)) != 0)
		return r;
	for (unsigned i = 0; i < n; i++) {
		smg_netid_from_nic(host, domain, i, &nics[i], &ids[i]);
		t[i] = (struct smg_announce_target){ids[i].vm_ns, ids[i].ifname,
						    &ids[i].nic};
	}
	/* start() copies what it needs; ids may go out of scope after it. */
	return smg_announce_start(t, n, sched, ev, arg, out);
}
