/* Silence a paused VM's NICs for as long as this process lives. At pause
 * the source attaches an XDP program that drops every frame to both ends
 * of each NIC's veth (the vif: frames from the VM; eth<n> in the VM's
 * namespace: frames to it) through a bpf_link. A link lives as long as
 * its file descriptor: if the sender is SIGKILLed before COMMIT, the
 * kernel detaches the programs and the VM, which the backend resumes when
 * the sender's lease ends, answers again; nothing is left to undo. After
 * COMMIT the source switches the vifs off for good (smg_netid_set_links),
 * so an in-doubt copy stays silent past the process until resolve.
 * The program is two instructions, loaded with the raw bpf(2) syscall. */
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "base/base.h"
#include "engine/backend.h"
#include "engine/engine.h"

#define HOLD_LINKS_MAX (2 * SMG_DOMAIN_NICS_MAX)

struct smg_netid_hold {
	int prog;
	unsigned n;
	int links[HOLD_LINKS_MAX];
};

static int bpf(int cmd, union bpf_attr *a)
{
	return (int)syscall(SYS_bpf, cmd, a, sizeof(*a));
}

static int load_drop(void)
{
	struct bpf_insn insns[2] = {
	    {.code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .imm = XDP_DROP},
	    {.code = BPF_JMP | BPF_EXIT},
	};
	union bpf_attr a;

	memset(&a, 0, sizeof(a));
	a.prog_type = BPF_PROG_TYPE_XDP;
	a.insns = (uintptr_t)insns;
	a.insn_cnt = 2;
	a.license = (uintptr_t) "GPL";
	return bpf(BPF_PROG_LOAD, &a);
}

/* Attach prog to ifname, in namespace netns (NULL: ours). */
static int attach(int prog, const char *netns, const char *ifname)
{
	char path[128];
	union bpf_attr a;
	int self = -1, ns = -1, link = -1, e = 0;

	if (netns != NULL) {
		snprintf(path, sizeof(path), "/run/netns/%s", netns);
		if ((self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC)) < 0 ||
		    (ns = open(path, O_RDONLY | O_CLOEXEC)) < 0 ||
		    setns(ns, CLONE_NEWNET) != 0) {
			e = errno;
			goto out;
		}
	}
	memset(&a, 0, sizeof(a));
	a.link_create.prog_fd = (unsigned)prog;
	a.link_create.target_ifindex = if_nametoindex(ifname);
	a.link_create.attach_type = BPF_XDP;
	/* Generic mode: works on any device, veth included. */
	a.link_create.flags = XDP_FLAGS_SKB_MODE;
	if (a.link_create.target_ifindex == 0 || (link = bpf(BPF_LINK_CREATE, &a)) < 0)
		e = errno;
	if (self >= 0 && setns(self, CLONE_NEWNET) != 0) {
		smg_err("netid: cannot return to own namespace: %s", strerror(errno));
		abort();
	}
out:
	if (ns >= 0)
		close(ns);
	if (self >= 0)
		close(self);
	errno = e;
	return link;
}

void smg_netid_release(struct smg_netid_hold *h)
{
	if (h == NULL)
		return;
	for (unsigned i = 0; i < h->n; i++)
		close(h->links[i]);
	if (h->prog >= 0)
		close(h->prog);
	free(h);
}

int smg_netid_hold(const struct smg_netid_host *host, const char *domain,
		   const struct smg_nic *nics, unsigned n, struct smg_netid_hold **out)
{
	struct smg_netid_hold *h;
	struct smg_netid id;
	int r = SMG_OK, l;

	*out = NULL;
	if (n > SMG_DOMAIN_NICS_MAX)
		return SMG_ERR_INVAL;
	if ((h = calloc(1, sizeof(*h))) == NULL)
		return SMG_ERR_NOMEM;
	if ((h->prog = load_drop()) < 0) {
		r = smg_err_sys(errno);
		smg_err("netid: cannot load the XDP drop program: %s", strerror(errno));
		goto fail;
	}
	for (unsigned i = 0; i < n; i++) {
		if ((r = smg_netid_from_nic(host, domain, i, &nics[i], &id)) != 0)
			goto fail;
		if ((l = attach(h->prog, NULL, id.vif)) < 0 ||
		    (h->links[h->n++] = l, l = attach(h->prog, id.vm_ns, id.ifname)) <
			0) {
			r = smg_err_sys(errno);
			smg_err("netid: cannot silence %s (%s / %s): %s", domain, id.vif,
				id.ifname, strerror(errno));
			goto fail;
		}
		h->links[h->n++] = l;
	}
	*out = h;
	return SMG_OK;
fail:
	smg_netid_release(h);
	return r;
}
