/* The qemu VM definition and the plan's description (qemu_vm.c): a host's
 * own file parses with every key; the sender's description may not name
 * anything on the destination host (refused by name, SMG_ERR_POLICY); a
 * description round-trips and is matched field by field. */
#include <string.h>

#include "base/base.h"
#include "check.h"
#include "engine/backend/qemu_internal.h"

static const char good[] =
    "# a VM\n"
    "name = vm1\n"
    "memory = 256M\n"
    "vcpus = 2\n"
    "machine = pc-i440fx-7.2\n"
    "accel = tcg\n"
    "kernel = /srv/k/vmlinuz\n"
    "initrd = /srv/k/initrd.gz\n"
    "cmdline = console=ttyS0 quiet root=/dev/vda\n"
    "ram = /dev/shm/vm1.ram\n"
    "serial = /var/log/vm1.serial\n"
    "nic = mac=52:54:00:12:34:56,tap=qt0,bridge=br0,ipv4=10.0.0.5/24,"
    "ipv6=fd00::5\n"
    "disk = export=vm1.0,nbd=/run/secmig/nbd.sock\n"
    "disk = export=shared.0,nbd=/run/nbd.sock,shared=yes\n"
    "vtpm = yes\n"
    "placement = region=eu tier=gold\n";

static int parse(const char *t, enum smg_qemu_def_mode m, struct smg_qemu_vm *vm,
		 char *err)
{
	return smg_qemu_vm_parse(t, strlen(t), m, vm, err, 256);
}

static void local_file(void)
{
	struct smg_qemu_vm vm;
	char err[256];

	CHECK_EQ(parse(good, SMG_QEMU_DEF_LOCAL, &vm, err), SMG_OK);
	CHECK(strcmp(vm.name, "vm1") == 0);
	CHECK_EQ(vm.mem_bytes, 256u << 20);
	CHECK_EQ(vm.vcpus, 2);
	CHECK(strcmp(vm.accel, "tcg") == 0);
	CHECK(strcmp(vm.cmdline, "console=ttyS0 quiet root=/dev/vda") == 0);
	CHECK_EQ(vm.n_nics, 1);
	CHECK(strcmp(vm.nics[0].tap, "qt0") == 0 &&
	      strcmp(vm.nics[0].bridge, "br0") == 0);
	CHECK(strcmp(vm.nics[0].model, "e1000") == 0);
	CHECK_EQ(vm.nics[0].id.n_ipv4, 1);
	CHECK_EQ(vm.nics[0].prefix4[0], 24);
	CHECK_EQ(vm.nics[0].prefix6[0], 128);
	CHECK_EQ(vm.n_disks, 2);
	CHECK(!vm.disks[0].shared && vm.disks[1].shared);
	CHECK(vm.vtpm);
	CHECK_EQ(vm.n_labels, 2);
	CHECK(strcmp(vm.qemu, "/usr/bin/qemu-system-x86_64") == 0); /* default */
}

/* Each bad line is refused, with its line number. */
static void bad_lines(void)
{
	static const char *const bad[] = {
	    "name = vm1\nmemory = 256M\n",		       /* no ram */
	    "memory = 256M\nram = /r\n",		       /* no name */
	    "name = ../x\nmemory = 256M\nram = /r\n",	       /* name */
	    "name = vm1\nmemory = 255M\nram = /r\n",	       /* not 2M aligned */
	    "name = vm1\nmemory = 8M\nram = /r\n",	       /* too small */
	    "name = vm1\nmemory = 256M\nram = r\n",	       /* relative path */
	    "name = vm1\nmemory = 256M\nram = /a/../b\n",      /* .. */
	    "name = vm1\nmemory = 256M\nram = /a,share=off\n", /* QEMU option injection */
	    "name = vm1\nmemory = 256M\nram = /r\nkernel = /k x\n",
	    "name = vm1\nmemory = 256M\nram = /r\nvcpus = 0\n",
	    "name = vm1\nmemory = 256M\nram = /r\nnic = "
	    "mac=01:00:5e:00:00:01,tap=t,bridge=b\n",
	    "name = vm1\nmemory = 256M\nram = /r\nnic = mac=52:54:00:12:34:56\n", /* no
										     tap
										   */
	    "name = vm1\nmemory = 256M\nram = /r\nnic = "
	    "mac=52:54:00:12:34:56,tap=-x,bridge=b\n",
	    "name = vm1\nmemory = 256M\nram = /r\ndisk = export=.x,nbd=/s\n",
	    "name = vm1\nmemory = 256M\nram = /r\nmachine = pc,accel=kvm\n",
	    "name = vm1\nmemory = 256M\nram = /r\nbogus = 1\n",
	    "name = vm1\nmemory = 256M\nram = /r\ninitrd = /i\n", /* initrd needs kernel
								   */
	    "name = vm1\nmemory = 256M\nram = /r\ndisks = 1\n",	  /* description only */
	    "name = vm1\nno equals sign\n",
	    /* a disk that travels is NAME.k in the disk service */
	    "name = vm1\nmemory = 256M\nram = /r\ndisk = export=other.0,nbd=/s\n",
	    "name = vm1\nmemory = 256M\nram = /r\ndisk = export=vm1.1,nbd=/s\n",
	};
	struct smg_qemu_vm vm;
	char err[256];

	for (size_t i = 0; i < SMG_ARRAY_LEN(bad); i++) {
		int r = parse(bad[i], SMG_QEMU_DEF_LOCAL, &vm, err);
		CHECK(r == SMG_ERR_CONFIG);
		if (r != SMG_ERR_CONFIG)
			fprintf(stderr, "accepted: %s\n", bad[i]);
		CHECK(err[0] != '\0');
	}
	/* a NUL byte and an over-long line */
	char nul[] = "name = vm1\nmem\0ory = 1\n";
	CHECK_EQ(smg_qemu_vm_parse(nul, sizeof(nul) - 1, SMG_QEMU_DEF_LOCAL, &vm, err,
				   sizeof(err)),
		 SMG_ERR_CONFIG);
	char lng[SMG_QEMU_LINE_MAX + 64];
	memset(lng, 'a', sizeof(lng));
	CHECK_EQ(smg_qemu_vm_parse(lng, sizeof(lng), SMG_QEMU_DEF_LOCAL, &vm, err,
				   sizeof(err)),
		 SMG_ERR_CONFIG);
	CHECK(strstr(err, "line 1") != NULL);
}

/* The sender says what the guest is, never where things are here. */
static void plan_refuses_host_resources(void)
{
	static const char *const keys[] = {
	    "kernel = /boot/x",	     "initrd = /x",
	    "ram = /dev/shm/x",	     "serial = /x",
	    "qemu = /bin/sh",	     "firmware = /x",
	    "accel = kvm",	     "cmdline = init=/bin/sh",
	    "disk = export=a,nbd=/s"};
	struct smg_qemu_vm vm;
	char text[256], err[256];

	for (size_t i = 0; i < SMG_ARRAY_LEN(keys); i++) {
		snprintf(text, sizeof(text), "name = vm1\nmemory = 256M\n%s\n", keys[i]);
		CHECK_EQ(parse(text, SMG_QEMU_DEF_PLAN, &vm, err), SMG_ERR_POLICY);
		CHECK(strstr(err, "refused") != NULL);
	}
	CHECK_EQ(parse("name = vm1\nmemory = 256M\nnic = mac=52:54:00:12:34:56,tap=x\n",
		       SMG_QEMU_DEF_PLAN, &vm, err),
		 SMG_ERR_POLICY);
	CHECK_EQ(
	    parse("name = vm1\nmemory = 256M\nnic = mac=52:54:00:12:34:56,bridge=br0\n",
		  SMG_QEMU_DEF_PLAN, &vm, err),
	    SMG_ERR_POLICY);
}

static void describe_and_match(void)
{
	struct smg_qemu_vm local, plan, other;
	char err[256], why[256], *text;
	size_t len;

	CHECK_EQ(parse(good, SMG_QEMU_DEF_LOCAL, &local, err), SMG_OK);
	CHECK_EQ(smg_qemu_vm_describe(&local, &text, &len), SMG_OK);
	CHECK(strstr(text, "/srv") == NULL && strstr(text, "qt0") == NULL);
	CHECK(strstr(text, "disks = 1") != NULL); /* the shared one stays */
	CHECK_EQ(smg_qemu_vm_parse(text, len, SMG_QEMU_DEF_PLAN, &plan, err, sizeof(err)),
		 SMG_OK);
	CHECK_EQ(smg_qemu_vm_match(&local, &plan, why, sizeof(why)), SMG_OK);
	/* the same VM defined on another host: other paths, same guest */
	CHECK_EQ(
	    parse("name = vm1\nmemory = 256M\nvcpus = 2\nmachine = pc-i440fx-7.2\n"
		  "ram = /hugepages/vm1\nnic = mac=52:54:00:12:34:56,tap=t9,bridge=b9,"
		  "ipv4=10.0.0.5/24,ipv6=fd00::5\ndisk = export=vm1.0,nbd=/s\n"
		  "vtpm = yes\n",
		  SMG_QEMU_DEF_LOCAL, &other, err),
	    SMG_OK);
	CHECK_EQ(smg_qemu_vm_match(&other, &plan, why, sizeof(why)), SMG_OK);
	/* each difference is refused */
	plan.mem_bytes += 2u << 20;
	CHECK_EQ(smg_qemu_vm_match(&other, &plan, why, sizeof(why)), SMG_ERR_POLICY);
	CHECK(strstr(why, "memory") != NULL);
	plan.mem_bytes -= 2u << 20;
	plan.nics[0].id.mac[5] ^= 2;
	CHECK_EQ(smg_qemu_vm_match(&other, &plan, why, sizeof(why)), SMG_ERR_POLICY);
	plan.nics[0].id.mac[5] ^= 2;
	plan.nics[0].id.ipv4[0][3] = 6;
	CHECK_EQ(smg_qemu_vm_match(&other, &plan, why, sizeof(why)), SMG_ERR_POLICY);
	plan.nics[0].id.ipv4[0][3] = 5;
	plan.vtpm = false;
	CHECK_EQ(smg_qemu_vm_match(&other, &plan, why, sizeof(why)), SMG_ERR_POLICY);
	plan.vtpm = true;
	snprintf(plan.machine, sizeof(plan.machine), "q35");
	CHECK_EQ(smg_qemu_vm_match(&other, &plan, why, sizeof(why)), SMG_ERR_POLICY);
	free(text);
}

static void argv_from_definition(void)
{
	struct smg_qemu_vm vm;
	char err[256], **argv;
	bool incoming = false, nbd = false, ram = false;

	CHECK_EQ(parse(good, SMG_QEMU_DEF_LOCAL, &vm, err), SMG_OK);
	CHECK_EQ(smg_qemu_argv(&vm, "/var/lib/secmig", true, &argv), SMG_OK);
	for (size_t i = 0; argv[i] != NULL; i++) {
		incoming |= strcmp(argv[i], "defer") == 0;
		nbd |= strstr(argv[i], "driver=nbd") != NULL &&
		       strstr(argv[i], "export=vm1.0") != NULL;
		ram |= strstr(argv[i], "mem-path=/dev/shm/vm1.ram,share=on") != NULL;
	}
	CHECK(incoming && nbd && ram);
	smg_qemu_argv_free(argv);
	/* socket paths past sun_path are refused, not cut */
	char longdir[200];
	memset(longdir, 'd', sizeof(longdir) - 1);
	longdir[0] = '/';
	longdir[sizeof(longdir) - 1] = '\0';
	CHECK(smg_qemu_argv(&vm, longdir, false, &argv) == SMG_ERR_TOO_LONG);
}

static void bind_mem(struct smg_qemu_vm *v, struct smg_vm_build *b)
{
	b->memory_bytes = v->mem_bytes * 2;
}
static void bind_vtpm(struct smg_qemu_vm *v, struct smg_vm_build *b)
{
	b->vtpm = true; /* an engine vTPM: QEMU's travels in its device state */
}
static void bind_bridge(struct smg_qemu_vm *v, struct smg_vm_build *b)
{
	snprintf(b->bridge[0], sizeof(b->bridge[0]), "br-dmz");
}
static void bind_mac(struct smg_qemu_vm *v, struct smg_vm_build *b)
{
	b->nics[0].mac[5] ^= 1;
}
static void bind_addr(struct smg_qemu_vm *v, struct smg_vm_build *b)
{
	b->nics[0].ipv4[0][3] ^= 1;
}
static void bind_export(struct smg_qemu_vm *v, struct smg_vm_build *b)
{
	snprintf(b->disk_name[0], sizeof(b->disk_name[0]), "other.0");
}
static void bind_ndisks(struct smg_qemu_vm *v, struct smg_vm_build *b)
{
	b->n_disks = 2;
	snprintf(b->disk_name[1], sizeof(b->disk_name[1]), "vm1.1");
}
static void bind_nnics(struct smg_qemu_vm *v, struct smg_vm_build *b)
{
	b->n_nics = 0;
}

/* The incoming VM bound to the host definitions' build (qemu_bind.c): the
 * .vm file must agree with what plan_check matched (sizes, vTPM, NICs and
 * bridges, the disk service's names); the definitions' boot lines are what
 * QEMU is started with, whatever the .vm file says. */
static void bind_to_build(void)
{
	static const char defs[] =
	    "storage /srv/images\nbridge br0\n"
	    "vm vm*\n  nic bridge=br0 mac=52:54:00:12:34:00/40 "
	    "ip=10.0.0.0/24 ip=fd00::/64\n"
	    "  kernel /boot/their-own-vmlinuz\n"
	    "  cmdline console=ttyS0 root=/dev/vda ro\n  vtpm yes\n";
	struct smg_hostdef *hd = NULL;
	struct smg_qemu_vm vm, plan;
	struct smg_vm_build b;
	char err[256], **argv, *text;
	size_t len;
	bool kernel = false, append = false;

	CHECK_EQ(smg_hostdef_parse(defs, strlen(defs), "defs", &hd, err, sizeof(err)),
		 SMG_OK);
	CHECK_EQ(parse(good, SMG_QEMU_DEF_LOCAL, &vm, err), SMG_OK);
	CHECK_EQ(smg_qemu_vm_describe(&vm, &text, &len), SMG_OK);
	CHECK_EQ(smg_qemu_vm_parse(text, len, SMG_QEMU_DEF_PLAN, &plan, err, sizeof(err)),
		 SMG_OK);
	free(text);
	/* what plan_check builds from the plan and the definitions */
	memset(&b, 0, sizeof(b));
	b.def = smg_hostdef_find(hd, "vm1", "src");
	CHECK(b.def != NULL);
	b.memory_bytes = plan.mem_bytes;
	b.vcpus = plan.vcpus;
	b.vtpm = false; /* the plan's engine vTPM: none (QEMU's device state) */
	b.n_disks = 1;
	snprintf(b.disk_name[0], sizeof(b.disk_name[0]), "vm1.0");
	b.n_nics = 1;
	b.nics[0] = plan.nics[0].id;
	snprintf(b.bridge[0], sizeof(b.bridge[0]), "br0");

	struct smg_qemu_vm v = vm;
	CHECK_EQ(smg_qemu_vm_bind(&v, &b), SMG_OK);
	CHECK(strcmp(v.kernel, "/boot/their-own-vmlinuz") == 0);
	CHECK(strcmp(v.cmdline, "console=ttyS0 root=/dev/vda ro") == 0);
	CHECK(strcmp(v.initrd, "/srv/k/initrd.gz") == 0); /* the block gives none */
	CHECK_EQ(smg_qemu_argv(&v, "/var/lib/secmig", true, &argv), SMG_OK);
	for (size_t i = 0; argv[i] != NULL; i++) {
		kernel |= strcmp(argv[i], "/boot/their-own-vmlinuz") == 0;
		append |= strcmp(argv[i], "console=ttyS0 root=/dev/vda ro") == 0;
		CHECK(strcmp(argv[i], "/srv/k/vmlinuz") != 0);
	}
	CHECK(kernel && append);
	smg_qemu_argv_free(argv);

	/* every disagreement is refused with a reason */
	struct {
		const char *what;
		void (*mod)(struct smg_qemu_vm *, struct smg_vm_build *);
	} cases[] = {
	    {"memory", bind_mem},
	    {"vTPM", bind_vtpm},
	    {"bridge", bind_bridge},
	    {"MAC", bind_mac},
	    {"addresses", bind_addr},
	    {"export", bind_export},
	    {"travelling disks", bind_ndisks},
	    {"NICs", bind_nnics},
	};
	for (size_t i = 0; i < SMG_ARRAY_LEN(cases); i++) {
		struct smg_vm_build bb = b;
		v = vm;
		cases[i].mod(&v, &bb);
		CHECK_EQ(smg_qemu_vm_bind(&v, &bb), SMG_ERR_POLICY);
		CHECK(strstr(bb.why, cases[i].what) != NULL);
	}
	/* no definition, or one for PV guests only */
	struct smg_vm_build bb = b;
	v = vm;
	bb.def = NULL;
	CHECK_EQ(smg_qemu_vm_bind(&v, &bb), SMG_ERR_POLICY);
	struct smg_hostdef_vm pv = *b.def;
	pv.types = SMG_HOSTDEF_TYPE_PV;
	bb.def = &pv;
	CHECK_EQ(smg_qemu_vm_bind(&v, &bb), SMG_ERR_POLICY);
	CHECK(strstr(bb.why, "hvm") != NULL);
	/* a VM with a vTPM on a host whose definitions give it none */
	struct smg_hostdef_vm notpm = *b.def;
	notpm.vtpm = false;
	bb.def = &notpm;
	v = vm;
	CHECK_EQ(smg_qemu_vm_bind(&v, &bb), SMG_ERR_POLICY);
	CHECK(strstr(bb.why, "vtpm yes") != NULL);
	smg_hostdef_free(hd);
}

int main(void)
{
	local_file();
	bad_lines();
	plan_refuses_host_resources();
	describe_and_match();
	argv_from_definition();
	bind_to_build();
	return check_result("test_qemu_vm");
}
