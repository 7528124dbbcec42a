/* libFuzzer harness: the xen destination's allow-list over a sender's
 * libxl config (engine/backend/libxl_vet.c). The bytes are the JSON text.
 * Oracle: what the vet writes names only this host's resources, so it
 * passes the vet again unchanged (idempotence), and never carries a
 * script, PCI, 9p, device model or a path of the sender's. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "engine/backend/libxl_vet.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct smg_hostdef_vm def = {
	    .pattern = "*", .types = SMG_HOSTDEF_TYPE_PVH | SMG_HOSTDEF_TYPE_HVM};
	static struct smg_vm_build b;
	char *out = NULL, *again = NULL, name[64], why[256];

	if (b.def == NULL) {
		b.def = &def;
		b.memory_bytes = 1ull << 30;
		b.vcpus = 4;
		b.n_disks = 1;
		snprintf(b.disk_path[0], sizeof(b.disk_path[0]), "/srv/img/x.0.img");
		b.n_nics = 1;
		smg_mac_parse("00:16:3e:00:00:01", b.nics[0].mac);
		snprintf(b.bridge[0], sizeof(b.bridge[0]), "br0");
		snprintf(def.kernel, sizeof(def.kernel), "/srv/kernels/vmlinuz");
	}
	if (smg_libxl_vet((const char *)data, size, &b, &out, name, sizeof(name), why,
			  sizeof(why)) != 0)
		return 0;
	if (strstr(out, "script") != NULL || strstr(out, "pcidevs") != NULL ||
	    strstr(out, "p9s") != NULL || strstr(out, "device_model\"") != NULL)
		abort();
	if (smg_libxl_vet(out, strlen(out), &b, &again, name, sizeof(name), why,
			  sizeof(why)) != 0 ||
	    strcmp(out, again) != 0)
		abort();
	free(out);
	free(again);
	return 0;
}
