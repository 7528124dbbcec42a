/* Host definitions: parser errors name their line, matching of domains,
 * peers, MAC ranges and IP prefixes, and the file-permission rule. */
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/base.h"
#include "check.h"

static const char good[] =
    "storage /var/lib/secmig/images\n"
    "bridge xenbr0 hbr\n"
    "limit vm memory=8G vcpus=4 disks=2 disk=100G\n"
    "limit total memory=16G sessions=3\n"
    "vm web-*   # the web tier\n"
    "  from src1\n"
    "  memory 2G\n"
    "  nic bridge=xenbr0 mac=52:54:00:00:00:00/24 ip=10.0.0.0/24 ip=fd00::/64\n"
    "  kernel /boot/vmlinuz\n"
    "  cmdline console=hvc0 root=/dev/xvda1\n"
    "  type pvh\n"
    "  vtpm yes\n"
    "vm *\n"
    "  nic bridge=hbr mac=52:54:00:12:34:56\n";

static int parse(const char *t, struct smg_hostdef **d, char *err, size_t n)
{
	return smg_hostdef_parse(t, strlen(t), "defs", d, err, n);
}

static void bad(const char *t, const char *want)
{
	struct smg_hostdef *d = NULL;
	char err[256];

	CHECK(parse(t, &d, err, sizeof(err)) == SMG_ERR_CONFIG);
	CHECK(d == NULL);
	if (strstr(err, want) == NULL) {
		fprintf(stderr, "wanted '%s' in '%s'\n", want, err);
		CHECK(0);
	}
}

int main(void)
{
	struct smg_hostdef *d = NULL;
	const struct smg_hostdef_vm *vm;
	char err[256];
	uint8_t mac[6], ip[16];

	CHECK(parse(good, &d, err, sizeof(err)) == SMG_OK);
	if (d == NULL) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	CHECK(strcmp(d->storage, "/var/lib/secmig/images") == 0);
	CHECK_EQ(d->vm.memory, 8ull << 30);
	CHECK_EQ(d->vm.vcpus, 4);
	CHECK_EQ(d->total.sessions, 3);
	CHECK_EQ(d->total.disk, SMG_HOSTDEF_TOTAL_DISK_DEFAULT); /* untouched */
	CHECK_EQ(d->n_vms, 2);
	vm = smg_hostdef_find(d, "web-1", "src1");
	CHECK(vm == &d->vms[0]);
	CHECK(smg_hostdef_find(d, "web-1", "src2") == &d->vms[1]); /* not from src2 */
	CHECK(smg_hostdef_find(d, "db", NULL) == &d->vms[1]);
	CHECK_EQ(vm->max.memory, 2ull << 30);
	CHECK_EQ(vm->types, SMG_HOSTDEF_TYPE_PVH);
	CHECK(vm->vtpm);
	CHECK(strcmp(vm->cmdline, "console=hvc0 root=/dev/xvda1") == 0);
	CHECK(smg_mac_parse("52:54:00:ab:cd:ef", mac) == 0);
	CHECK(smg_hostdef_nic_mac_ok(&vm->nics[0], mac));
	CHECK(smg_mac_parse("52:54:01:ab:cd:ef", mac) == 0);
	CHECK(!smg_hostdef_nic_mac_ok(&vm->nics[0], mac));
	CHECK(smg_mac_parse("52:54:00:12:34:56", mac) == 0);
	CHECK(smg_hostdef_nic_mac_ok(&d->vms[1].nics[0], mac));
	mac[5] ^= 1;
	CHECK(!smg_hostdef_nic_mac_ok(&d->vms[1].nics[0], mac));
	memcpy(ip, (uint8_t[]){10, 0, 0, 77}, 4);
	CHECK(smg_hostdef_nic_ip_ok(&vm->nics[0], 4, ip));
	memcpy(ip, (uint8_t[]){10, 0, 1, 77}, 4);
	CHECK(!smg_hostdef_nic_ip_ok(&vm->nics[0], 4, ip));
	CHECK(!smg_hostdef_nic_ip_ok(&d->vms[1].nics[0], 4, ip)); /* no prefix: none */
	smg_hostdef_free(d);

	bad("bridge x\n", "missing 'storage");
	bad("storage rel/dir\n", "defs:1: storage");
	bad("storage /a/../b\n", "defs:1:");
	bad("storage /s\nvm a\n  nic bridge=nope mac=52:54:00:00:00:01\n",
	    "defs:3: nic: bridge");
	bad("storage /s\nbridge b\nvm a\n  nic bridge=b mac=53:54:00:00:00:01\n",
	    "unicast");
	bad("storage /s\nbridge b\nvm a\n  nic bridge=b mac=52:54:00:00:00:01/8\n",
	    "24 fixed");
	bad("storage /s\nvm a\n  kernel /boot/x y\n", "defs:3: kernel");
	bad("storage /s\nvm a\n  kernel /boot/a,b\n", "kernel");
	bad("storage /s\nvm a/b\n", "pattern");
	bad("storage /s\nlimit vm memory=lots\n", "memory");
	bad("storage /s\nlimit vm bogus=1\n", "unknown key");
	bad("storage /s\nfrom x\n", "misplaced");
	bad("storage /s\nvm a\n  type xen\n", "type");
	bad("storage /s\nvm a\n  cmdline a\"b\n", "quotes");
	bad("storage /s\n\x01\n", "control");

	/* A file someone else may write is not this host's definition. */
	char dir[] = "/tmp/smg-hostdef.XXXXXX", path[64];
	if (mkdtemp(dir) != NULL) {
		snprintf(path, sizeof(path), "%s/defs", dir);
		int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
		CHECK(fd >= 0 && write(fd, good, strlen(good)) == (ssize_t)strlen(good));
		close(fd);
		CHECK(smg_hostdef_load(path, &d, err, sizeof(err)) == SMG_OK);
		smg_hostdef_free(d);
		chmod(path, 0622);
		CHECK(smg_hostdef_load(path, &d, err, sizeof(err)) == SMG_ERR_PERM);
		CHECK(strstr(err, "writable") != NULL);
		chmod(path, 0644);
		CHECK(smg_hostdef_load(path, &d, err, sizeof(err)) == SMG_OK);
		smg_hostdef_free(d);
		unlink(path);
		rmdir(dir);
	}
	return check_result("test_base_hostdef");
}
