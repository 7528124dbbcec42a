/* The migration engine: source and destination state machines, pre-copy
 * policy, the hypervisor backend interface, integrity and hand-over. */
#ifndef SMG_ENGINE_H
#define SMG_ENGINE_H

/* NULL-terminated list of the backends compiled into this build. */
const char *const *smg_engine_backend_names(void);

/* ==== network identity and clean-up (network: engine/netid*.c, ========
 * ==== engine/announce*.c; see docs/network.md) ========================== */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SMG_MAC_LEN	       6
#define SMG_VNIC_ADDRS_MAX     4  /* per family, per NIC */
#define SMG_NETID_NAME_MAX     64 /* namespace name */
#define SMG_NETID_IFNAME_MAX   16 /* IFNAMSIZ */
#define SMG_ANNOUNCE_FRAME_MAX 128

/* A VM NIC's identity, as the VM config gives it. */
struct smg_vnic {
	uint8_t mac[SMG_MAC_LEN];
	unsigned n_ipv4, n_ipv6;
	uint8_t ipv4[SMG_VNIC_ADDRS_MAX][4];
	uint8_t ipv4_prefix[SMG_VNIC_ADDRS_MAX];
	uint8_t ipv6[SMG_VNIC_ADDRS_MAX][16];
	uint8_t ipv6_prefix[SMG_VNIC_ADDRS_MAX];
};

/* "52:54:00:12:34:56" -> mac; only unicast MACs are accepted. */
int smg_vnic_parse_mac(const char *text, uint8_t mac[static SMG_MAC_LEN]);
/* Add "10.0.0.5/24" or "fd00::5/64" (prefix optional: /32, /128). */
int smg_vnic_add_addr(struct smg_vnic *nic, const char *cidr);

/* Where a NIC lives on this host: a namespace holding `ifname` with the
 * VM's MAC and addresses, veth-paired with `vif` on the host's `bridge`. */
struct smg_netid {
	char vm_ns[SMG_NETID_NAME_MAX];
	char vif[SMG_NETID_IFNAME_MAX];
	char bridge[SMG_NETID_IFNAME_MAX];
	char ifname[SMG_NETID_IFNAME_MAX];
	struct smg_vnic nic;
};

/* Build the NIC with its vif down (destination, before resume). */
int smg_netid_prepare(const struct smg_netid *id);
/* vif carrier on (resume) or off (source pauses): raw rtnetlink, fast. */
int smg_netid_set_link(const struct smg_netid *id, bool up);
/* Tear the NIC down (source, after commit; destination, on abort). */
int smg_netid_remove(const struct smg_netid *id);
/* Wait until bridge `bridge` (in this namespace) forwards `mac` through
 * `port`; *when_ns is CLOCK_MONOTONIC of the kernel's notification (or of
 * the check, when it already did). SMG_ERR_TIMEOUT after timeout_ms. */
int smg_netid_watch_fdb(const char *bridge, const char *port,
			const uint8_t mac[static SMG_MAC_LEN], unsigned timeout_ms,
			uint64_t *when_ns);

/* Announcement schedule, QEMU's announce-self: round 1 at once, then
 * gaps of initial, initial+step, ... each capped at max_ms. */
struct smg_announce_sched {
	unsigned rounds;
	unsigned initial_ms;
	unsigned step_ms;
	unsigned max_ms;
};
#define SMG_ANNOUNCE_SCHED_DEFAULT \
	{                          \
		5, 50, 100, 550    \
	}
#define SMG_ANNOUNCE_ROUNDS_MAX 100

/* One NIC to announce: sent on `ifname` inside namespace `netns` (NULL:
 * the caller's), as if from the guest, like QEMU injects it on the NIC. */
struct smg_announce_target {
	const char *netns;
	const char *ifname;
	const struct smg_vnic *nic;
};

/* Receives one JSON object (no newline) per announcement round per NIC. */
typedef void (*smg_announce_event_fn)(void *arg, const char *json);

struct smg_announce;
/* Open the sockets now (errors come back at once), send from a thread. */
int smg_announce_start(const struct smg_announce_target *t, size_t n,
		       const struct smg_announce_sched *sched, smg_announce_event_fn ev,
		       void *arg, struct smg_announce **out);
/* Wait for the schedule to finish; frees a. Returns the first send error. */
int smg_announce_join(struct smg_announce *a);
/* Blocking form of start + join. */
int smg_announce_run(const struct smg_announce_target *t, size_t n,
		     const struct smg_announce_sched *sched, smg_announce_event_fn ev,
		     void *arg);

/* Frames: build them, and parse captured bytes (untrusted; fuzzed). */
enum smg_announce_kind {
	SMG_ANNOUNCE_RARP = 1, /* reverse request, QEMU announce-self */
	SMG_ANNOUNCE_GARP = 2, /* gratuitous ARP request, one per IPv4 */
	SMG_ANNOUNCE_NA = 3,   /* unsolicited neighbour advertisement, per IPv6 */
};
struct smg_announce_frame {
	enum smg_announce_kind kind;
	uint8_t mac[SMG_MAC_LEN];
	uint8_t ip[16]; /* IPv4 in the first 4 bytes for GARP; zero for RARP */
};
int smg_announce_build(enum smg_announce_kind kind, const uint8_t mac[static SMG_MAC_LEN],
		       const uint8_t *ip, uint8_t *buf, size_t cap, size_t *len);
/* SMG_OK: a well-formed announcement; SMG_ERR_UNKNOWN_TYPE: some other
 * frame; SMG_ERR_TRUNCATED/SMG_ERR_PROTO: a malformed announcement. */
int smg_announce_parse(const uint8_t *buf, size_t len, struct smg_announce_frame *out);
const char *smg_announce_kind_name(enum smg_announce_kind kind);
/* Hand-over of every NIC of one domain on this host (engine/netid_handover.c).
 * The NICs come from the backend's domain info (struct smg_nic in
 * engine/backend.h: MAC, IPv4, IPv6); the host config names where they go. */
struct smg_nic;
#define SMG_NETID_PREFIX_MAX 32
struct smg_netid_host {
	char ns_prefix[SMG_NETID_PREFIX_MAX]; /* VM namespaces: <prefix><domain>-<n> */
	char bridge[SMG_NETID_IFNAME_MAX];    /* the host bridge (xenbr0, hbr) */
	unsigned prefix4, prefix6;	      /* on-link prefix: 0 = 24 / 64 */
};
/* Name and fill the identity of NIC number idx of domain. */
int smg_netid_from_nic(const struct smg_netid_host *host, const char *domain,
		       unsigned idx, const struct smg_nic *nic, struct smg_netid *out);
/* Destination before resume: build every NIC (vifs down). On failure the
 * ones already built are removed again. */
int smg_netid_dest_prepare(const struct smg_netid_host *host, const char *domain,
			   const struct smg_nic *nics, unsigned n);
/* Destination at resume: vifs up, then start the announcement (join it
 * with smg_announce_join after DONE). */
int smg_netid_dest_resume(const struct smg_netid_host *host, const char *domain,
			  const struct smg_nic *nics, unsigned n,
			  const struct smg_announce_sched *sched,
			  smg_announce_event_fn ev, void *arg, struct smg_announce **out);
/* Source: pause (vifs down), abort (vifs up again), or after commit and on
 * the destination after an abort: remove. Each returns the first error but
 * still handles every NIC. */
int smg_netid_set_links(const struct smg_netid_host *host, const char *domain,
			const struct smg_nic *nics, unsigned n, bool up);
int smg_netid_remove_all(const struct smg_netid_host *host, const char *domain,
			 const struct smg_nic *nics, unsigned n);
/* ==== end network block ================================================== */

#endif
