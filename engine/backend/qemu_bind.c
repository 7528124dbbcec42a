/* qemu backend: the incoming VM bound to this host's definitions
 * (docs/hostdef.md, docs/qemu.md "Destination"). Two files of this host
 * describe an incoming VM: the host definitions' `vm` block, which
 * plan_check matched against the plan and turned into a build (sizes, the
 * matched NICs and their bridges, the disk service's names for the disks,
 * vTPM), and STATE_DIR/qemu/NAME.vm, how this host runs it under QEMU
 * (binary, machine, accel, RAM file, serial log, tap names, NIC models, the
 * disk service's NBD socket). Neither comes from the sender. Here the .vm
 * file must agree with the build on every resource the build decides, and
 * the block's kernel, ramdisk, cmdline and firmware, where it gives them,
 * are what QEMU boots. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "base/base.h"
#include "engine/backend/qemu_internal.h"

static int refuse(struct smg_vm_build *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int refuse(struct smg_vm_build *b, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(b->why, sizeof(b->why), fmt, ap);
	va_end(ap);
	return SMG_ERR_POLICY;
}

static int bind_nics(struct smg_qemu_vm *vm, struct smg_vm_build *b)
{
	if (vm->n_nics != b->n_nics)
		return refuse(b,
			      "qemu: this host's %s.vm has %u NICs, its definitions "
			      "matched %u",
			      vm->name, vm->n_nics, b->n_nics);
	for (unsigned i = 0; i < vm->n_nics; i++) {
		struct smg_qemu_nic *n = &vm->nics[i];

		if (strcmp(n->bridge, b->bridge[i]) != 0)
			return refuse(b,
				      "qemu: NIC %u: %s.vm puts it on bridge %s, the "
				      "definitions on %s",
				      i, vm->name, n->bridge, b->bridge[i]);
		/* The matched NIC (its addresses checked against the
		 * definitions' prefixes) is what the engine and the
		 * announcement use; the .vm file adds only prefix lengths. */
		if (memcmp(n->id.mac, b->nics[i].mac, sizeof(n->id.mac)) != 0 ||
		    n->id.n_ipv4 != b->nics[i].n_ipv4 ||
		    n->id.n_ipv6 != b->nics[i].n_ipv6 ||
		    memcmp(n->id.ipv4, b->nics[i].ipv4,
			   sizeof(n->id.ipv4[0]) * n->id.n_ipv4) != 0 ||
		    memcmp(n->id.ipv6, b->nics[i].ipv6,
			   sizeof(n->id.ipv6[0]) * n->id.n_ipv6) != 0)
			return refuse(
			    b,
			    "qemu: NIC %u: %s.vm's MAC or addresses are not the "
			    "plan's",
			    i, vm->name);
		n->id = b->nics[i];
	}
	return SMG_OK;
}

static int bind_disks(const struct smg_qemu_vm *vm, struct smg_vm_build *b)
{
	unsigned k = 0;

	for (unsigned i = 0; i < vm->n_disks; i++) {
		if (vm->disks[i].shared)
			continue;
		if (k >= b->n_disks)
			return refuse(b,
				      "qemu: %s.vm has more travelling disks than the "
				      "plan",
				      vm->name);
		/* The engine creates disk k in this host's disk service under
		 * the build's name; QEMU must open that export. */
		if (strcmp(vm->disks[i].export_name, b->disk_name[k]) != 0)
			return refuse(b,
				      "qemu: disk %u: %s.vm opens export %s, this "
				      "host's disk service receives it as %s",
				      k, vm->name, vm->disks[i].export_name,
				      b->disk_name[k]);
		k++;
	}
	if (k != b->n_disks)
		return refuse(b, "qemu: %s.vm has %u travelling disks, the plan %u",
			      vm->name, k, b->n_disks);
	return SMG_OK;
}

static int take(struct smg_vm_build *b, const char *what, const char *from, char *to)
{
	if (from[0] == '\0')
		return SMG_OK;
	if (strlen(from) >= SMG_QEMU_VALUE_MAX)
		return refuse(b, "qemu: the definitions' %s is too long", what);
	if (strcmp(from, to) != 0 && to[0] != '\0')
		smg_info("qemu: %s from this host's definitions, not the .vm file", what);
	snprintf(to, SMG_QEMU_VALUE_MAX, "%s", from);
	return SMG_OK;
}

int smg_qemu_vm_bind(struct smg_qemu_vm *vm, struct smg_vm_build *b)
{
	const struct smg_hostdef_vm *d = b->def;
	int r;

	if (d == NULL)
		return refuse(b, "qemu: no host definition for '%s'", vm->name);
	if (d->types != 0 && !(d->types & SMG_HOSTDEF_TYPE_HVM))
		return refuse(b,
			      "qemu: the definition of '%s' allows no hvm guest "
			      "(a QEMU machine)",
			      vm->name);
	if (vm->mem_bytes != b->memory_bytes || vm->vcpus != b->vcpus)
		return refuse(b, "qemu: %s.vm's memory or vCPUs differ from the plan's",
			      vm->name);
	/* The guest's vTPM travels in QEMU's device state, not as the
	 * engine's vTPM (b->vtpm stays false); the definitions must still
	 * let this host give it one. */
	if (vm->vtpm && !d->vtpm)
		return refuse(b,
			      "qemu: '%s' has a vTPM, this host's definitions give it "
			      "none (vtpm yes)",
			      vm->name);
	if (b->vtpm)
		return refuse(b, "qemu: the plan moves an engine vTPM; a QEMU guest's "
				 "vTPM travels in its device state");
	if ((r = bind_nics(vm, b)) != SMG_OK || (r = bind_disks(vm, b)) != SMG_OK)
		return r;
	if ((r = take(b, "kernel", d->kernel, vm->kernel)) != SMG_OK ||
	    (r = take(b, "ramdisk", d->ramdisk, vm->initrd)) != SMG_OK ||
	    (r = take(b, "cmdline", d->cmdline, vm->cmdline)) != SMG_OK ||
	    (r = take(b, "firmware", d->firmware, vm->firmware)) != SMG_OK)
		return r;
	if (vm->kernel[0] == '\0' && vm->firmware[0] == '\0')
		return refuse(b, "qemu: nothing to boot '%s' with (kernel or firmware)",
			      vm->name);
	return SMG_OK;
}
