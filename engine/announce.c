/* Network clean-up: after the VM resumes on the destination, tell the
 * switches where it lives now. Like QEMU's announce-self we inject frames
 * as if the guest sent them (on the NIC inside the VM's namespace), so
 * every bridge on the way re-learns the MAC on the destination's port:
 * a RARP per round, plus a gratuitous ARP per IPv4 and an unsolicited
 * neighbour advertisement per IPv6 address, which refresh the peers'
 * ARP/ND caches too (what a virtio guest does on VIRTIO_NET_S_ANNOUNCE). */
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "base/base.h"
#include "engine/engine.h"

#define ANNOUNCE_TARGETS_MAX 16
#define LINK_POLL_NS	     2000000L /* 2 ms */
#define LINK_WAIT_POLLS	     500      /* at most 1 s for the carrier */

struct ann_sock {
	int fd;
	char ifname[SMG_NETID_IFNAME_MAX];
	char netns[SMG_NETID_NAME_MAX];
	struct smg_vnic nic;
};

struct smg_announce {
	pthread_t thread;
	struct smg_announce_sched sched;
	smg_announce_event_fn ev;
	void *arg;
	size_t n;
	struct ann_sock socks[ANNOUNCE_TARGETS_MAX];
	int result;
};

/* Open the socket with this thread inside namespace `netns`, then come back. A
 * socket keeps the namespace it was created in, which is all we need. */
static int open_packet_socket(const char *netns, const char *ifname, int *out)
{
	char path[128];
	int self = -1, ns = -1, fd = -1, r = SMG_OK;
	unsigned idx;
	struct sockaddr_ll sll;

	*out = -1;
	if (netns != NULL) {
		snprintf(path, sizeof(path), "/run/netns/%s", netns);
		if ((self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC)) < 0 ||
		    (ns = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
			r = smg_err_sys(errno);
			smg_err("announce: namespace %s: %s", netns, strerror(errno));
			goto out;
		}
		if (setns(ns, CLONE_NEWNET) != 0) {
			r = smg_err_sys(errno);
			smg_err("announce: setns %s: %s", netns, strerror(errno));
			goto out;
		}
	}
	/* Protocol 0: send only, the socket never queues received frames. */
	if ((fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0)) < 0 ||
	    (idx = if_nametoindex(ifname)) == 0) {
		r = smg_err_sys(errno);
		smg_err("announce: %s: %s", ifname, strerror(errno));
		goto back;
	}
	memset(&sll, 0, sizeof(sll));
	sll.sll_family = AF_PACKET;
	sll.sll_ifindex = (int)idx;
	if (bind(fd, (struct sockaddr *)&sll, sizeof(sll)) != 0) {
		r = smg_err_sys(errno);
		smg_err("announce: bind %s: %s", ifname, strerror(errno));
		goto back;
	}
	*out = fd;
	fd = -1;
back:
	if (self >= 0 && setns(self, CLONE_NEWNET) != 0) {
		/* We could not come home: this thread is in the wrong place. */
		smg_err("announce: cannot return to own namespace: %s", strerror(errno));
		abort();
	}
out:
	if (fd >= 0)
		close(fd);
	if (ns >= 0)
		close(ns);
	if (self >= 0)
		close(self);
	return r;
}

static void mac_text(const uint8_t mac[SMG_MAC_LEN], char out[18])
{
	snprintf(out, 18, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3],
		 mac[4], mac[5]);
}

static int send_frame(struct ann_sock *s, enum smg_announce_kind kind, const uint8_t *ip)
{
	uint8_t buf[SMG_ANNOUNCE_FRAME_MAX];
	size_t len;
	int r;

	if ((r = smg_announce_build(kind, s->nic.mac, ip, buf, sizeof(buf), &len)) != 0)
		return r;
	if (send(s->fd, buf, len, 0) != (ssize_t)len) {
		r = smg_err_sys(errno);
		smg_peer_log(SMG_LOG_WARN, "announce: %s on %s: %s",
			     smg_announce_kind_name(kind), s->ifname, strerror(errno));
	}
	return r;
}

static int announce_once(struct smg_announce *a, struct ann_sock *s, unsigned round,
			 unsigned delay_ms)
{
	char mac[18];
	unsigned i, sent = 0;
	int r, first = SMG_OK;

	if ((r = send_frame(s, SMG_ANNOUNCE_RARP, NULL)) == 0)
		sent++;
	first = r;
	for (i = 0; i < s->nic.n_ipv4; i++)
		if ((r = send_frame(s, SMG_ANNOUNCE_GARP, s->nic.ipv4[i])) == 0)
			sent++;
		else if (first == SMG_OK)
			first = r;
	for (i = 0; i < s->nic.n_ipv6; i++)
		if ((r = send_frame(s, SMG_ANNOUNCE_NA, s->nic.ipv6[i])) == 0)
			sent++;
		else if (first == SMG_OK)
			first = r;
	if (a->ev != NULL) {
		json_object *j = json_object_new_object();
		mac_text(s->nic.mac, mac);
		json_object_object_add(j, "event", json_object_new_string("announce"));
		json_object_object_add(j, "mac", json_object_new_string(mac));
		json_object_object_add(j, "ifname", json_object_new_string(s->ifname));
		json_object_object_add(j, "netns", json_object_new_string(s->netns));
		json_object_object_add(j, "round", json_object_new_uint64(round));
		json_object_object_add(j, "rounds",
				       json_object_new_uint64(a->sched.rounds));
		json_object_object_add(j, "delay_ms", json_object_new_uint64(delay_ms));
		json_object_object_add(j, "rarp", json_object_new_int(1));
		json_object_object_add(j, "garp", json_object_new_uint64(s->nic.n_ipv4));
		json_object_object_add(j, "na", json_object_new_uint64(s->nic.n_ipv6));
		json_object_object_add(j, "sent", json_object_new_uint64(sent));
		json_object_object_add(j, "t_mono_us",
				       json_object_new_uint64(smg_now_ns() / 1000));
		a->ev(a->arg, json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN));
		json_object_put(j);
	}
	return first;
}

/* QEMU's self_announce_delay: gaps of initial, initial+step, ... <= max. */
static unsigned round_delay(const struct smg_announce_sched *s, unsigned round)
{
	unsigned long d;

	if (round <= 1)
		return 0;
	d = (unsigned long)s->initial_ms + (unsigned long)(round - 2) * s->step_ms;
	return d < s->max_ms ? (unsigned)d : s->max_ms;
}

/* The NIC was switched on a moment ago (netid_handover.c): the kernel
 * starts its transmit queue only once it has processed the carrier change
 * (linkwatch, asynchronous), and a frame sent before that is dropped
 * silently. Wait, bounded, until every NIC says it is running. */
static void wait_running(struct smg_announce *a)
{
	struct timespec nap = {0, LINK_POLL_NS};
	struct ifreq ifr;

	for (size_t i = 0; i < a->n; i++) {
		memset(&ifr, 0, sizeof(ifr));
		snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", a->socks[i].ifname);
		for (unsigned t = 0; t < LINK_WAIT_POLLS; t++) {
			if (ioctl(a->socks[i].fd, SIOCGIFFLAGS, &ifr) != 0 ||
			    (ifr.ifr_flags & IFF_RUNNING))
				break;
			nanosleep(&nap, NULL);
		}
	}
}

static void *announce_thread(void *p)
{
	struct smg_announce *a = p;
	struct timespec at;
	unsigned round, delay;
	size_t i;
	int r;

	wait_running(a);
	clock_gettime(CLOCK_MONOTONIC, &at);
	for (round = 1; round <= a->sched.rounds; round++) {
		delay = round_delay(&a->sched, round);
		at.tv_nsec += (long)(delay % 1000) * 1000000L;
		at.tv_sec += delay / 1000 + at.tv_nsec / 1000000000L;
		at.tv_nsec %= 1000000000L;
		while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &at, NULL) ==
		       EINTR)
			;
		for (i = 0; i < a->n; i++)
			if ((r = announce_once(a, &a->socks[i], round, delay)) != 0 &&
			    a->result == SMG_OK)
				a->result = r;
	}
	return NULL;
}

static int check_sched(const struct smg_announce_sched *s)
{
	if (s->rounds == 0 || s->rounds > SMG_ANNOUNCE_ROUNDS_MAX || s->max_ms > 60000 ||
	    s->initial_ms > s->max_ms) {
		smg_err(
		    "announce: schedule rounds=%u initial=%u step=%u max=%u out of range "
		    "(1..%u rounds, initial <= max <= 60000 ms)",
		    s->rounds, s->initial_ms, s->step_ms, s->max_ms,
		    SMG_ANNOUNCE_ROUNDS_MAX);
		return SMG_ERR_INVAL;
	}
	return SMG_OK;
}

static void free_announce(struct smg_announce *a)
{
	for (size_t i = 0; i < a->n; i++)
		if (a->socks[i].fd >= 0)
			close(a->socks[i].fd);
	free(a);
}

int smg_announce_start(const struct smg_announce_target *t, size_t n,
		       const struct smg_announce_sched *sched, smg_announce_event_fn ev,
		       void *arg, struct smg_announce **out)
{
	static const struct smg_announce_sched def = SMG_ANNOUNCE_SCHED_DEFAULT;
	struct smg_announce *a;
	int r;

	*out = NULL;
	if (sched == NULL)
		sched = &def;
	if (n == 0 || n > ANNOUNCE_TARGETS_MAX || (r = check_sched(sched)) != 0)
		return SMG_ERR_INVAL;
	if ((a = calloc(1, sizeof(*a))) == NULL)
		return SMG_ERR_NOMEM;
	a->sched = *sched;
	a->ev = ev;
	a->arg = arg;
	for (size_t i = 0; i < n; i++) {
		struct ann_sock *s = &a->socks[i];

		s->fd = -1;
		a->n = i + 1;
		if (t[i].ifname == NULL || t[i].nic == NULL ||
		    strlen(t[i].ifname) >= sizeof(s->ifname) ||
		    (t[i].netns != NULL && strlen(t[i].netns) >= sizeof(s->netns))) {
			r = SMG_ERR_INVAL;
			goto fail;
		}
		snprintf(s->ifname, sizeof(s->ifname), "%s", t[i].ifname);
		snprintf(s->netns, sizeof(s->netns), "%s", t[i].netns ? t[i].netns : "");
		s->nic = *t[i].nic;
		if ((r = open_packet_socket(t[i].netns, t[i].ifname, &s->fd)) != 0)
			goto fail;
	}
	if ((r = pthread_create(&a->thread, NULL, announce_thread, a)) != 0) {
		r = smg_err_sys(r);
		goto fail;
	}
	*out = a;
	return SMG_OK;
fail:
	free_announce(a);
	return r;
}

int smg_announce_join(struct smg_announce *a)
{
	int r;

	if (a == NULL)
		return SMG_ERR_INVAL;
	pthread_join(a->thread, NULL);
	r = a->result;
	free_announce(a);
	return r;
}

int smg_announce_run(const struct smg_announce_target *t, size_t n,
		     const struct smg_announce_sched *sched, smg_announce_event_fn ev,
		     void *arg)
{
	struct smg_announce *a;
	int r;

	if ((r = smg_announce_start(t, n, sched, ev, arg, &a)) != 0)
		return r;
	return smg_announce_join(a);
}
