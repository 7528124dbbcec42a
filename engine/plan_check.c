/* The destination's answer to a plan (docs/hostdef.md): the plan is a
 * request, matched field by field against this host's definitions and its
 * capacity before the backend allocates anything. What passes becomes a
 * struct smg_vm_build that names only this host's resources; what does not
 * is refused with a reason that goes back in the ABORT (exit 5).
 *
 * The capacity ledger counts every incoming migration this receiver holds
 * at once (memory, disk, sessions; in total and per source peer), so four
 * sessions of 64 GiB each cannot add up to what the host never offered. */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "engine/internal.h"
#include "secmig.pb-c.h"
#include "storage/storage.h"

#define LEDGER_PEERS_MAX 64

struct ledger_peer {
	char name[SMG_HOSTDEF_NAME_MAX];
	uint64_t memory, disk;
	unsigned sessions;
};

struct smg_capacity {
	pthread_mutex_t lock;
	const struct smg_hostdef *defs;
	uint64_t memory, disk;
	unsigned sessions;
	struct ledger_peer peers[LEDGER_PEERS_MAX];
};

int smg_capacity_new(const struct smg_hostdef *defs, struct smg_capacity **out)
{
	struct smg_capacity *c;

	*out = NULL;
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return SMG_ERR_NOMEM;
	pthread_mutex_init(&c->lock, NULL);
	c->defs = defs;
	*out = c;
	return SMG_OK;
}

void smg_capacity_free(struct smg_capacity *c)
{
	if (c == NULL)
		return;
	pthread_mutex_destroy(&c->lock);
	free(c);
}

void smg_capacity_set_defs(struct smg_capacity *c, const struct smg_hostdef *defs)
{
	pthread_mutex_lock(&c->lock);
	c->defs = defs;
	pthread_mutex_unlock(&c->lock);
}

static struct ledger_peer *ledger_find(struct smg_capacity *c, const char *peer, bool add)
{
	struct ledger_peer *free_slot = NULL;

	for (unsigned i = 0; i < LEDGER_PEERS_MAX; i++) {
		if (c->peers[i].sessions > 0 && strcmp(c->peers[i].name, peer) == 0)
			return &c->peers[i];
		if (c->peers[i].sessions == 0 && free_slot == NULL)
			free_slot = &c->peers[i];
	}
	if (add && free_slot != NULL) {
		memset(free_slot, 0, sizeof(*free_slot));
		snprintf(free_slot->name, sizeof(free_slot->name), "%s", peer);
	}
	return add ? free_slot : NULL;
}

static int refuse(char *why, size_t n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int refuse(char *why, size_t n, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, n, fmt, ap);
	va_end(ap);
	return SMG_ERR_POLICY;
}

/* Would one more migration of memory and disk from peer fit? With take,
 * reserve it (the caller holds the lock either way). */
static int admit(struct smg_capacity *c, const char *peer, uint64_t memory, uint64_t disk,
		 char *why, size_t why_len, bool take)
{
	const struct smg_hostdef *d = c->defs;
	struct ledger_peer *p, probe = {.sessions = 0};
	int r = SMG_OK;

	/* A check must not take a ledger slot: a peer with nothing in
	 * flight is an empty entry. */
	p = ledger_find(c, peer, take);
	if (!take && p == NULL)
		p = &probe;
	if (c->sessions + 1 > d->total.sessions)
		r = refuse(why, why_len, "capacity: %u incoming migrations already",
			   c->sessions);
	else if (c->memory + memory > d->total.memory)
		r = refuse(why, why_len,
			   "capacity: %llu MiB of memory requested, %llu MiB of %llu "
			   "MiB free for incoming VMs",
			   (unsigned long long)(memory >> 20),
			   (unsigned long long)((d->total.memory - c->memory) >> 20),
			   (unsigned long long)(d->total.memory >> 20));
	else if (c->disk + disk > d->total.disk)
		r = refuse(why, why_len,
			   "capacity: %llu GiB of disk requested, %llu GiB free",
			   (unsigned long long)(disk >> 30),
			   (unsigned long long)((d->total.disk - c->disk) >> 30));
	else if (p == NULL || p->sessions + 1 > d->peer.sessions)
		r = refuse(why, why_len,
			   "capacity: this peer has %u incoming migrations "
			   "already",
			   p != NULL ? p->sessions : 0);
	else if (p->memory + memory > d->peer.memory || p->disk + disk > d->peer.disk)
		r = refuse(why, why_len,
			   "capacity: over this peer's share of memory or disk");
	if (r == SMG_OK && take) {
		c->sessions++;
		c->memory += memory;
		c->disk += disk;
		p->sessions++;
		p->memory += memory;
		p->disk += disk;
	}
	return r;
}

/* Reserve memory and disk for one incoming migration; release with the
 * same figures when it ends. */
int smg_capacity_reserve(struct smg_capacity *c, const char *peer, uint64_t memory,
			 uint64_t disk, char *why, size_t why_len)
{
	int r;

	pthread_mutex_lock(&c->lock);
	r = admit(c, peer, memory, disk, why, why_len, true);
	pthread_mutex_unlock(&c->lock);
	return r;
}

int smg_capacity_check(struct smg_capacity *c, const char *peer, uint64_t memory,
		       uint64_t disk, char *why, size_t why_len)
{
	int r;

	pthread_mutex_lock(&c->lock);
	r = admit(c, peer, memory, disk, why, why_len, false);
	pthread_mutex_unlock(&c->lock);
	return r;
}

void smg_capacity_release(struct smg_capacity *c, const char *peer, uint64_t memory,
			  uint64_t disk)
{
	struct ledger_peer *p;

	if (c == NULL)
		return;
	pthread_mutex_lock(&c->lock);
	if ((p = ledger_find(c, peer, false)) != NULL) {
		p->sessions--;
		p->memory -= memory;
		p->disk -= disk;
	}
	c->sessions--;
	c->memory -= memory;
	c->disk -= disk;
	pthread_mutex_unlock(&c->lock);
}

static uint64_t cap64(uint64_t def, uint64_t host)
{
	return def != 0 && def < host ? def : host;
}

static int check_sizes(const Smg__Plan *p, const struct smg_hostdef *d,
		       const struct smg_hostdef_vm *vm, uint64_t *disk_total, char *why,
		       size_t n)
{
	uint64_t mem = cap64(vm->max.memory, d->vm.memory);
	uint64_t vcpus = cap64(vm->max.vcpus, d->vm.vcpus);
	uint64_t disks = cap64(vm->max.disks, d->vm.disks);
	uint64_t dsize = cap64(vm->max.disk, d->vm.disk);

	*disk_total = 0;
	if (p->memory_bytes == 0 || p->memory_bytes > mem)
		return refuse(why, n,
			      "memory: %llu MiB requested, this host offers at most "
			      "%llu MiB",
			      (unsigned long long)(p->memory_bytes >> 20),
			      (unsigned long long)(mem >> 20));
	if (p->vcpus == 0 || p->vcpus > vcpus)
		return refuse(why, n, "vcpus: %u requested, at most %llu", p->vcpus,
			      (unsigned long long)vcpus);
	if (p->n_disks > disks || p->n_disks > SMG_DOMAIN_DISKS_MAX)
		return refuse(why, n, "disks: %zu requested, at most %llu", p->n_disks,
			      (unsigned long long)(disks < SMG_DOMAIN_DISKS_MAX
						       ? disks
						       : SMG_DOMAIN_DISKS_MAX));
	for (size_t i = 0; i < p->n_disks; i++) {
		if (p->disks[i]->size > dsize)
			return refuse(why, n,
				      "disk %zu: %llu MiB requested, at most %llu MiB", i,
				      (unsigned long long)(p->disks[i]->size >> 20),
				      (unsigned long long)(dsize >> 20));
		*disk_total += p->disks[i]->size;
	}
	if (p->has_vtpm && !vm->vtpm)
		return refuse(why, n, "vtpm: this host's definition gives the VM none");
	return SMG_OK;
}

static void fmt_mac(const uint8_t *m, char *out, size_t n)
{
	snprintf(out, n, "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4],
		 m[5]);
}

static int check_nic(const Smg__NicSpec *ns, const struct smg_hostdef_nic *def,
		     unsigned i, struct smg_nic *out, char *why, size_t n)
{
	char text[64];

	memset(out, 0, sizeof(*out));
	if (ns->mac.len != 6 || ns->n_ipv4 > SMG_DOMAIN_IPS_MAX ||
	    ns->n_ipv6 > SMG_DOMAIN_IPS_MAX)
		return refuse(why, n, "nic %u: malformed", i);
	memcpy(out->mac, ns->mac.data, 6);
	fmt_mac(out->mac, text, sizeof(text));
	if (!smg_hostdef_nic_mac_ok(def, out->mac))
		return refuse(why, n,
			      "nic %u: MAC %s is not one this host lets the VM bring", i,
			      text);
	for (size_t k = 0; k < ns->n_ipv4; k++) {
		if (ns->ipv4[k].len != 4)
			return refuse(why, n, "nic %u: malformed IPv4", i);
		memcpy(out->ipv4[k], ns->ipv4[k].data, 4);
		if (!smg_hostdef_nic_ip_ok(def, 4, out->ipv4[k]))
			return refuse(
			    why, n,
			    "nic %u: IPv4 %u.%u.%u.%u is not one this host lets "
			    "the VM bring",
			    i, out->ipv4[k][0], out->ipv4[k][1], out->ipv4[k][2],
			    out->ipv4[k][3]);
	}
	for (size_t k = 0; k < ns->n_ipv6; k++) {
		if (ns->ipv6[k].len != 16)
			return refuse(why, n, "nic %u: malformed IPv6", i);
		memcpy(out->ipv6[k], ns->ipv6[k].data, 16);
		if (!smg_hostdef_nic_ip_ok(def, 6, out->ipv6[k]))
			return refuse(
			    why, n,
			    "nic %u: an IPv6 address outside this host's prefixes", i);
	}
	out->n_ipv4 = (unsigned)ns->n_ipv4;
	out->n_ipv6 = (unsigned)ns->n_ipv6;
	return SMG_OK;
}

int smg_plan_check(const Smg__Plan *p, const struct smg_hostdef *d, const char *peer,
		   const char *disk_dir, struct smg_vm_build *b, uint64_t *disk_total)
{
	const struct smg_hostdef_vm *vm;
	char *why = b->why;
	size_t n = sizeof(b->why);
	int r;

	memset(b, 0, sizeof(*b));
	*disk_total = 0;
	if ((vm = smg_hostdef_find(d, p->domain_name, peer)) == NULL)
		return refuse(why, n,
			      "no definition for this domain from this peer on this "
			      "host");
	if ((r = check_sizes(p, d, vm, disk_total, why, n)) != SMG_OK)
		return r;
	if (p->n_nics > vm->n_nics || p->n_nics > d->vm.nics ||
	    p->n_nics > SMG_DOMAIN_NICS_MAX)
		return refuse(why, n,
			      "nics: %zu requested, this host's definition has %u",
			      p->n_nics, vm->n_nics);
	for (size_t i = 0; i < p->n_nics; i++) {
		if (p->nics[i]->index != i)
			return refuse(why, n, "nic %zu: out of order", i);
		if ((r = check_nic(p->nics[i], &vm->nics[i], (unsigned)i, &b->nics[i],
				   why, n)) != SMG_OK)
			return r;
		snprintf(b->bridge[i], sizeof(b->bridge[i]), "%s", vm->nics[i].bridge);
	}
	b->n_nics = (unsigned)p->n_nics;
	b->def = vm;
	b->memory_bytes = p->memory_bytes;
	b->vcpus = p->vcpus;
	b->vtpm = p->has_vtpm;
	b->n_disks = (unsigned)p->n_disks;
	/* Disk i is the disk service's D.i, its image D.i.img in the storage
	 * directory (docs/storage.md): names made here, never the sender's. */
	for (unsigned i = 0; i < b->n_disks; i++) {
		int w = snprintf(b->disk_name[i], sizeof(b->disk_name[i]), "%s.%u",
				 p->domain_name, i);
		if (w < 0 || (size_t)w >= sizeof(b->disk_name[i]) ||
		    !smg_dsvc_name_valid(b->disk_name[i], (size_t)w))
			return refuse(why, n, "disk %u: no disk name for this domain", i);
		w = snprintf(b->disk_path[i], sizeof(b->disk_path[i]), "%s/%s.%u.img",
			     disk_dir, p->domain_name, i);
		if (w < 0 || (size_t)w >= sizeof(b->disk_path[i]))
			return refuse(why, n, "storage directory path too long");
		b->disk_size[i] = p->disks[i]->size;
	}
	return SMG_OK;
}
