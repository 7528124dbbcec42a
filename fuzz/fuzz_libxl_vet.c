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

#include <json-c/json.h>

#include "base/base.h"
#include "engine/backend/libxl_vet.h"

/* No key of the output may name a host resource, at any depth. */
static void walk(struct json_object *o, int depth)
{
	static const char *const bad[] = {
	    "script",  "pcidevs", "p9s",  "device_model", "bootloader", "channels",
	    "usbdevs", "vtpms",	  "vfbs", "ifname",	  "serial",	NULL};

	if (depth > 32)
		abort();
	if (json_object_is_type(o, json_type_array)) {
		for (size_t i = 0; i < json_object_array_length(o); i++)
			walk(json_object_array_get_idx(o, i), depth + 1);
		return;
	}
	if (!json_object_is_type(o, json_type_object))
		return;
	json_object_object_foreach(o, k, v)
	{
		for (int i = 0; bad[i] != NULL; i++)
			if (strcmp(k, bad[i]) == 0)
				abort();
		if (strcmp(k, "pdev_path") == 0 &&
		    strcmp(json_object_get_string(v), "/srv/img/x.0.img") != 0)
			abort();
		walk(v, depth + 1);
	}
}

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
	struct json_object *j = json_tokener_parse(out);
	if (j == NULL)
		abort();
	walk(j, 0);
	json_object_put(j);
	if (smg_libxl_vet(out, strlen(out), &b, &again, name, sizeof(name), why,
			  sizeof(why)) != 0 ||
	    strcmp(out, again) != 0)
		abort();
	free(out);
	free(again);
	return 0;
}
