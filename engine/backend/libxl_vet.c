/* The xen destination's view of the sender's libxl config (a
 * libxl_domain_config as JSON, docs/hostdef.md): an allow-list. A new
 * config is written from the fields that describe the guest itself (type,
 * memory, vCPUs, guest-visible platform flags) plus what this host's
 * definition says (disk images in its storage directory, vifs on its
 * bridges with the matched MACs, its kernel/ramdisk/cmdline/firmware).
 * Any field that would make dom0 open a path, attach a device, run a
 * script or a device model of the sender's choosing is refused by name, so
 * a bad request fails loudly instead of being trimmed in silence. Pure and
 * libxl-free: unit-tested and fuzzed off dom0 (fuzz_libxl_vet). */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "base/base.h"
#include "engine/backend/libxl_vet.h"

#define JSON_DEPTH_MAX 16

struct vet {
	const struct smg_vm_build *b;
	char *domain;
	size_t domain_cap;
	char *why;
	size_t why_len;
};

static int no(struct vet *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int no(struct vet *v, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(v->why, v->why_len, fmt, ap);
	va_end(ap);
	return SMG_ERR_POLICY;
}

static bool in(const char *k, const char *const *list)
{
	for (; *list != NULL; list++)
		if (strcmp(k, *list) == 0)
			return true;
	return false;
}

/* A value that turns nothing on: absent, zero, false, a default. libxl
 * writes defbools as "<default>"/"True"/"False" and enums by name, so
 * "False", "none", "disabled" are off too; an object is unset when each
 * of its members is. */
static bool unset_depth(struct json_object *o, int depth)
{
	static const char *const off[] = {"",	     "default",	 "<default>",
					  "unknown", "False",	 "false",
					  "none",    "disabled", NULL};

	switch (json_object_get_type(o)) {
	case json_type_null:
		return true;
	case json_type_boolean:
		return !json_object_get_boolean(o);
	case json_type_int:
		return json_object_get_int64(o) == 0;
	case json_type_string:
		return in(json_object_get_string(o), off);
	case json_type_array:
		return json_object_array_length(o) == 0;
	case json_type_object:
		if (depth >= JSON_DEPTH_MAX)
			return false;
		json_object_object_foreach(o, k, v)
		{
			(void)k;
			if (!unset_depth(v, depth + 1))
				return false;
		}
		return true;
	default:
		return false;
	}
}

static bool unset(struct json_object *o)
{
	return unset_depth(o, 0);
}

/* What each refused field would do on dom0, for the operator; NULL for a
 * key not known to name a host resource. */
static const char *danger_find(const char *k)
{
	static const struct {
		const char *key, *what;
	} t[] = {
	    {"pcidevs", "host PCI devices"},
	    {"p9s", "9p shares of dom0 directories"},
	    {"vtpms", "vTPM backends"},
	    {"usbctrls", "USB controllers"},
	    {"usbdevs", "host USB devices"},
	    {"usbdevice", "host USB devices"},
	    {"usbdevice_list", "host USB devices"},
	    {"channels", "channels to dom0 sockets or files"},
	    {"vfbs", "framebuffers served by dom0"},
	    {"vkbs", "keyboard backends"},
	    {"dtdevs", "device-tree passthrough"},
	    {"rdms", "reserved host memory"},
	    {"pvcallsifs", "PV calls backends"},
	    {"vdispls", "display backends"},
	    {"vsnds", "sound backends"},
	    {"virtios", "virtio backends"},
	    {"device_model", "a device-model binary"},
	    {"device_model_user", "a device-model user"},
	    {"device_model_stubdomain", "a stub domain"},
	    {"stubdomain_kernel", "a stub-domain kernel"},
	    {"stubdomain_ramdisk", "a stub-domain ramdisk"},
	    {"stubdomain_cmdline", "a stub-domain command line"},
	    {"extra", "extra device-model arguments"},
	    {"extra_pv", "extra device-model arguments"},
	    {"extra_hvm", "extra device-model arguments"},
	    {"bootloader", "a bootloader run in dom0"},
	    {"bootloader_args", "bootloader arguments"},
	    {"ioports", "host I/O ports"},
	    {"irqs", "host interrupts"},
	    {"iomem", "host memory ranges"},
	    {"device_tree", "a device tree file"},
	    {"xsdata", "xenstore entries"},
	    {"platformdata", "xenstore entries"},
	    {"driver_domain", "a driver domain"},
	    {"script", "a hotplug script run by dom0 as root"},
	    {"backend_domid", "a driver domain"},
	    {"backend_domname", "a driver domain"},
	    {"serial", "a dom0 serial device"},
	    {"serial_list", "dom0 serial devices"},
	    {"pvshim_path", "a shim binary"},
	    {"pvshim_cmdline", "a shim command line"},
	    {"pvshim_extra", "a shim command line"},
	    {"e820_host", "the host's memory map"},
	    {"gfx_passthru", "host graphics"},
	    {"ifname", "a dom0 interface name"},
	    {"gatewaydev", "a dom0 interface"},
	    {"kernel", "a kernel file"},
	    {"ramdisk", "a ramdisk file"},
	    {"firmware", "a firmware file"},
	    {"system_firmware", "a firmware file"},
	    {"smbios_firmware", "a firmware file"},
	    {"acpi_firmware", "a firmware file"},
	};
	for (size_t i = 0; i < SMG_ARRAY_LEN(t); i++)
		if (strcmp(k, t[i].key) == 0)
			return t[i].what;
	return NULL;
}

static const char *danger(const char *k)
{
	const char *what = danger_find(k);

	return what != NULL ? what : "an unknown setting";
}

/* The bytes libxl may see from the sender: [A-Za-z0-9._:,=+-<>]. */
static bool text_ok(const char *s)
{
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && strchr("._:,=+-<>", *s) == NULL)
			return false;
	return true;
}

/* An allowed field's value: numbers, booleans, and strings of
 * [A-Za-z0-9._:,=+-] (enum names, a uuid, "True"), in arrays and objects
 * at most JSON_DEPTH_MAX deep. No byte of the sender's reaches libxl or a
 * device model outside that set. */
static bool value_ok(struct json_object *o, int depth)
{
	if (depth > JSON_DEPTH_MAX)
		return false;
	switch (json_object_get_type(o)) {
	case json_type_null:
	case json_type_boolean:
	case json_type_int:
	case json_type_double:
		return true;
	case json_type_string:
		return json_object_get_string_len(o) <= 128 &&
		       text_ok(json_object_get_string(o));
	case json_type_array:
		for (size_t i = 0; i < json_object_array_length(o); i++)
			if (!value_ok(json_object_array_get_idx(o, i), depth + 1))
				return false;
		return true;
	case json_type_object: {
		/* Its keys reach libxl too: the same bytes, and never a
		 * key that names a host resource (fuzz_libxl_vet: "serial"
		 * inside b_info.max_memkb). */
		json_object_object_foreach(o, k, v)
		{
			if (strlen(k) > 64 || !text_ok(k) || danger_find(k) != NULL ||
			    !value_ok(v, depth + 1))
				return false;
		}
		return true;
	}
	default:
		return false;
	}
}

static bool uuid_ok(struct json_object *o)
{
	const char *s = json_object_get_string(o);

	if (!json_object_is_type(o, json_type_string) || strlen(s) != 36)
		return false;
	for (int i = 0; i < 36; i++)
		if ((i == 8 || i == 13 || i == 18 || i == 23)
			? s[i] != '-'
			: !isxdigit((unsigned char)s[i]))
			return false;
	return true;
}

/* Copy the allowed keys of src into dst; refuse any other key that is set. */
static int filter(struct vet *v, const char *where, struct json_object *src,
		  struct json_object *dst, const char *const *allowed,
		  const char *const *owned)
{
	if (!json_object_is_type(src, json_type_object))
		return no(v, "xen: %s is not an object", where);
	json_object_object_foreach(src, k, val)
	{
		char key[48];

		smg_log_escape(k, key, sizeof(key));
		if (in(k, allowed)) {
			if (strcmp(k, "uuid") == 0 ? !uuid_ok(val) : !value_ok(val, 0))
				return no(
				    v,
				    "xen: the sender's config sets %s.%s to a value "
				    "outside what this host passes on: refused",
				    where, key);
			json_object_object_add(dst, k, json_object_get(val));
		} else if (owned != NULL && in(k, owned)) {
			continue; /* this host decides it; the sender's value is unused */
		} else if (!unset(val)) {
			return no(v, "xen: the sender's config sets %s.%s (%s): refused",
				  where, key, danger(k));
		}
	}
	return SMG_OK;
}

static bool word_ok(const char *s, size_t max, const char *extra)
{
	size_t n = strlen(s);

	if (n == 0 || n >= max)
		return false;
	for (; *s; s++)
		if (!islower((unsigned char)*s) && !isdigit((unsigned char)*s) &&
		    strchr(extra, *s) == NULL)
			return false;
	return true;
}

/* The host's files for direct boot or firmware: the sender may ask for
 * one only if this host's definition has one. */
static int boot_files(struct vet *v, const char *where, struct json_object *src,
		      struct json_object *dst, const char *const *keys,
		      const char *const *ours)
{
	for (size_t i = 0; keys[i] != NULL; i++) {
		struct json_object *o;
		bool asked = json_object_object_get_ex(src, keys[i], &o) && !unset(o);

		if (asked && ours[i][0] == '\0')
			return no(v,
				  "xen: the sender's config names %s.%s and this host's "
				  "definition has none: refused",
				  where, keys[i]);
		if (ours[i][0] != '\0')
			json_object_object_add(dst, keys[i],
					       json_object_new_string(ours[i]));
	}
	return SMG_OK;
}

static const char *const b_allowed[] = {"max_vcpus",
					"avail_vcpus",
					"max_memkb",
					"target_memkb",
					"video_memkb",
					"shadow_memkb",
					"tsc_mode",
					"max_grant_frames",
					"max_maptrack_frames",
					"max_grant_version",
					"event_channels",
					"device_model_version",
					"timer_mode",
					"nested_hvm",
					"apic",
					"acpi",
					"localtime",
					"rtc_timeoffset",
					"disable_migrate",
					"cpuid",
					"claim_mode",
					"dm_restrict",
					"tee",
					"arch_x86",
					"altp2m",
					"vpmu",
					"vmtrace_buf_kb",
					"iommu_memkb",
					"sched_params",
					NULL};
/* Host-local placement: this host chooses (defaults). */
static const char *const b_local[] = {
    "cpumap",	      "nodemap",      "vcpu_hard_affinity", "vcpu_soft_affinity",
    "numa_placement", "blkdev_start", "exec_ssidref",	    NULL};
static const char *const hvm_allowed[] = {"pae",
					  "apic",
					  "acpi",
					  "acpi_s3",
					  "acpi_s4",
					  "acpi_laptop_slate",
					  "nx",
					  "viridian",
					  "viridian_enable",
					  "viridian_disable",
					  "hpet",
					  "vpt_align",
					  "mmio_hole_memkb",
					  "timer_mode",
					  "nested_hvm",
					  "altp2m",
					  "hdtype",
					  "nographic",
					  "xen_platform_pci",
					  "vendor_device",
					  "vga",
					  "mca_caps",
					  "bios",
					  "usb",
					  "usbversion",
					  "vkb_device",
					  "rdm_mem_boundary_memkb",
					  "ms_vm_genid",
					  "rdm",
					  "timeoffset",
					  NULL};
static const char *const pvh_allowed[] = {"pvshim", NULL};
static const char *const pv_allowed[] = {"slack_memkb", "features", NULL};

static int vet_type_union(struct vet *v, struct json_object *src, struct json_object *dst,
			  const char *type)
{
	/* HVM: this host's firmware image (system_firmware); hvmloader's
	 * own override stays this host's default. */
	static const char *const fw_keys[] = {"system_firmware", "firmware", NULL};
	static const char *const boot_keys[] = {"kernel", "ramdisk", "cmdline", NULL};
	/* Set by this host (display servers, keymap, boot order) or above. */
	static const char *const hvm_owned[] = {
	    "vnc",  "sdl",	"spice",	   "keymap", "soundhw",
	    "boot", "firmware", "system_firmware", NULL};
	static const char *const pv_owned[] = {"kernel", "ramdisk", "cmdline", NULL};
	const struct smg_hostdef_vm *def = v->b->def;
	const char *fw[] = {def->firmware, "", NULL};
	const char *boot[] = {def->kernel, def->ramdisk, def->cmdline, NULL};
	struct json_object *u, *out = json_object_new_object();
	char key[16];
	int r;

	snprintf(key, sizeof(key), "type.%s", type);
	json_object_object_add(dst, key, out);
	if (!json_object_object_get_ex(src, key, &u))
		return SMG_OK;
	if (!strcmp(type, "hvm")) {
		if ((r = boot_files(v, key, u, out, fw_keys, fw)) != SMG_OK)
			return r;
		return filter(v, key, u, out, hvm_allowed, hvm_owned);
	}
	if (!strcmp(type, "pv")) {
		if ((r = boot_files(v, key, u, out, boot_keys, boot)) != SMG_OK)
			return r;
		return filter(v, key, u, out, pv_allowed, pv_owned);
	}
	return filter(v, key, u, out, pvh_allowed, NULL);
}

static int vet_b_info(struct vet *v, struct json_object *src, struct json_object *dst,
		      const char *type)
{
	static const char *const boot_keys[] = {"kernel", "ramdisk", "cmdline", NULL};
	const struct smg_hostdef_vm *def = v->b->def;
	const char *boot[] = {def->kernel, def->ramdisk, def->cmdline, NULL};
	const char *local[SMG_ARRAY_LEN(b_local) + 8];
	struct json_object *o;
	size_t n = 0;
	int r;

	if (!json_object_is_type(src, json_type_object))
		return no(v, "xen: b_info is not an object");
	if (json_object_object_get_ex(src, "max_memkb", &o) &&
	    (!json_object_is_type(o, json_type_int) ||
	     (uint64_t)json_object_get_int64(o) > v->b->memory_bytes / 1024))
		return no(v, "xen: b_info.max_memkb is over the memory the plan asked "
			     "for (or not a number)");
	if (json_object_object_get_ex(src, "max_vcpus", &o) &&
	    (!json_object_is_type(o, json_type_int) || json_object_get_int64(o) < 1 ||
	     (uint64_t)json_object_get_int64(o) > v->b->vcpus))
		return no(v, "xen: b_info.max_vcpus differs from the plan's vcpus");
	if ((r = boot_files(v, "b_info", src, dst, boot_keys, boot)) != SMG_OK)
		return r;
	for (size_t i = 0; b_local[i] != NULL; i++)
		local[n++] = b_local[i];
	local[n++] = "kernel";
	local[n++] = "ramdisk";
	local[n++] = "cmdline";
	local[n++] = "type.hvm"; /* the guest type's union: below */
	local[n++] = "type.pvh";
	local[n++] = "type.pv";
	local[n++] = NULL;
	if ((r = filter(v, "b_info", src, dst, b_allowed, local)) != SMG_OK)
		return r;
	/* the union is keyed by the type; a union for another type is refused */
	json_object_object_foreach(src, k, val)
	{
		if (strncmp(k, "type.", 5) == 0 && strcmp(k + 5, type) != 0 &&
		    !unset(val))
			return no(v,
				  "xen: b_info carries settings for another guest type");
	}
	return vet_type_union(v, src, dst, type);
}

static int vet_c_info(struct vet *v, struct json_object *src, struct json_object *dst,
		      const char **type)
{
	static const char *const allowed[] = {"uuid", "hap", "oos", "passthrough", NULL};
	/* domid: the source's, host-local (libxl retrieve writes it); this
	 * host's libxl picks the new domain's */
	static const char *const owned[] = {
	    "name",  "type", "ssidref", "ssid_label", "pool_name", "run_hotplug_scripts",
	    "domid", NULL};
	static const char *const types[] = {"pv", "pvh", "hvm"};
	struct json_object *o;
	int r;

	if ((r = filter(v, "c_info", src, dst, allowed, owned)) != SMG_OK)
		return r;
	if (!json_object_object_get_ex(src, "name", &o) ||
	    !json_object_is_type(o, json_type_string) ||
	    !smg_name_ok(json_object_get_string(o), v->domain_cap))
		return no(v, "xen: c_info.name is missing or not a name");
	snprintf(v->domain, v->domain_cap, "%s", json_object_get_string(o));
	if (json_object_object_get_ex(src, "passthrough", &o) && !unset(o) &&
	    strcmp(json_object_get_string(o), "disabled") != 0)
		return no(v, "xen: c_info.passthrough (host devices): refused");
	if (!json_object_object_get_ex(src, "type", &o) ||
	    !json_object_is_type(o, json_type_string))
		return no(v, "xen: c_info.type is missing");
	for (unsigned t = 0; t < SMG_ARRAY_LEN(types); t++)
		if (strcmp(json_object_get_string(o), types[t]) == 0) {
			if (!(v->b->def->types & (1u << t)))
				return no(v,
					  "xen: guest type %s is not allowed for this VM "
					  "on this host",
					  types[t]);
			*type = types[t];
			json_object_object_add(dst, "type",
					       json_object_new_string(types[t]));
			json_object_object_add(dst, "name",
					       json_object_new_string(v->domain));
			return SMG_OK;
		}
	return no(v, "xen: c_info.type: pv, pvh or hvm");
}

static int vet_disks(struct vet *v, struct json_object *src, struct json_object *dst)
{
	static const char *const allowed[] = {"readwrite", NULL};
	static const char *const owned[] = {
	    "pdev_path", "vdev",	  "format",	    "backend", "is_cdrom",
	    "removable", "specification", "direct_io_safe", NULL};
	size_t n;

	/* the type first: json-c asserts (aborts) on a length of a non-list */
	if (src != NULL && !json_object_is_type(src, json_type_array))
		return no(v, "xen: disks is not a list");
	n = src != NULL ? json_object_array_length(src) : 0;
	/* A disk that does not travel with the plan would be a dom0 path. */
	if (n != v->b->n_disks)
		return no(v,
			  "xen: the sender's config has %zu disks, the plan moves %u: a "
			  "disk that does not travel would be a dom0 path",
			  n, v->b->n_disks);
	for (size_t i = 0; i < n; i++) {
		struct json_object *d = json_object_array_get_idx(src, i), *o;
		struct json_object *out = json_object_new_object();
		char vdev[8];
		int r;

		json_object_array_add(dst, out);
		if ((r = filter(v, "disks[]", d, out, allowed, owned)) != SMG_OK)
			return r;
		if (json_object_object_get_ex(d, "is_cdrom", &o) && !unset(o))
			return no(v, "xen: disk %zu is a CD-ROM (a dom0 path): refused",
				  i);
		/* Guest-side names are ours too: xvda, xvdb, ... in order. */
		snprintf(vdev, sizeof(vdev), "xvd%c", (char)('a' + i));
		json_object_object_add(out, "pdev_path",
				       json_object_new_string(v->b->disk_path[i]));
		json_object_object_add(out, "vdev", json_object_new_string(vdev));
		json_object_object_add(out, "format", json_object_new_string("raw"));
	}
	return SMG_OK;
}

static int vet_nics(struct vet *v, struct json_object *src, struct json_object *dst)
{
	static const char *const allowed[] = {
	    "devid", "nictype", "rate_bytes_per_interval", "rate_interval_usecs",
	    "mtu",   NULL};
	static const char *const owned[] = {"mac", "bridge", "model", "ip", NULL};
	size_t n;

	if (src != NULL && !json_object_is_type(src, json_type_array))
		return no(v, "xen: nics is not a list");
	n = src != NULL ? json_object_array_length(src) : 0;
	if (n != v->b->n_nics)
		return no(v, "xen: the sender's config has %zu NICs, the plan %u", n,
			  v->b->n_nics);
	for (size_t i = 0; i < n; i++) {
		struct json_object *d = json_object_array_get_idx(src, i), *o;
		struct json_object *out = json_object_new_object();
		const uint8_t *m = v->b->nics[i].mac;
		char mac[24];
		int r;

		json_object_array_add(dst, out);
		if ((r = filter(v, "nics[]", d, out, allowed, owned)) != SMG_OK)
			return r;
		snprintf(mac, sizeof(mac), "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1],
			 m[2], m[3], m[4], m[5]);
		if (!json_object_object_get_ex(d, "mac", &o) ||
		    !json_object_is_type(o, json_type_string) ||
		    strcasecmp(json_object_get_string(o), mac) != 0)
			return no(v, "xen: NIC %zu's MAC differs from the plan's", i);
		if (json_object_object_get_ex(d, "model", &o) && !unset(o)) {
			if (!json_object_is_type(o, json_type_string) ||
			    !word_ok(json_object_get_string(o), 16, "_-"))
				return no(v, "xen: NIC %zu: bad model", i);
			json_object_object_add(out, "model", json_object_get(o));
		}
		json_object_object_add(out, "mac", json_object_new_string(mac));
		json_object_object_add(out, "bridge",
				       json_object_new_string(v->b->bridge[i]));
	}
	return SMG_OK;
}

int smg_libxl_vet(const char *json, size_t len, const struct smg_vm_build *b, char **out,
		  char *name, size_t name_cap, char *why, size_t why_len)
{
	static const char *const top_allowed[] = {
	    "on_poweroff", "on_reboot", "on_watchdog", "on_crash", "on_soft_reset", NULL};
	static const char *const top_owned[] = {"c_info", "b_info", "disks", "nics",
						NULL};
	struct vet v = {b, name, name_cap, why, why_len};
	struct json_tokener *tok = NULL;
	struct json_object *in = NULL, *res = NULL, *o, *c, *bi, *arr;
	const char *type = NULL;
	int r = SMG_ERR_POLICY;

	*out = NULL;
	why[0] = '\0';
	name[0] = '\0';
	if (len > SMG_LIBXL_JSON_MAX || memchr(json, 0, len) != NULL || b == NULL ||
	    b->def == NULL)
		return no(&v, "xen: the sender's config is not one JSON text");
	if ((tok = json_tokener_new_ex(JSON_DEPTH_MAX)) == NULL)
		return SMG_ERR_NOMEM;
	in = json_tokener_parse_ex(tok, json, (int)len);
	if (in == NULL || json_tokener_get_error(tok) != json_tokener_success ||
	    tok->char_offset != (int)len || !json_object_is_type(in, json_type_object)) {
		r = no(&v, "xen: the sender's config is not one JSON object");
		goto out;
	}
	res = json_object_new_object();
	if ((r = filter(&v, "config", in, res, top_allowed, top_owned)) != SMG_OK)
		goto out;
	if (!json_object_object_get_ex(in, "c_info", &o)) {
		r = no(&v, "xen: c_info is missing");
		goto out;
	}
	c = json_object_new_object();
	json_object_object_add(res, "c_info", c);
	if ((r = vet_c_info(&v, o, c, &type)) != SMG_OK)
		goto out;
	bi = json_object_new_object();
	json_object_object_add(res, "b_info", bi);
	if (!json_object_object_get_ex(in, "b_info", &o) ||
	    (r = vet_b_info(&v, o, bi, type)) != SMG_OK) {
		if (r == SMG_OK)
			r = no(&v, "xen: b_info is missing");
		goto out;
	}
	arr = json_object_new_array();
	json_object_object_add(res, "disks", arr);
	if ((r = vet_disks(&v, json_object_object_get_ex(in, "disks", &o) ? o : NULL,
			   arr)) != SMG_OK)
		goto out;
	arr = json_object_new_array();
	json_object_object_add(res, "nics", arr);
	if ((r = vet_nics(&v, json_object_object_get_ex(in, "nics", &o) ? o : NULL,
			  arr)) != SMG_OK)
		goto out;
	if ((*out = strdup(json_object_to_json_string_ext(
		 res, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE))) == NULL)
		r = SMG_ERR_NOMEM;
out:
	json_object_put(res);
	json_object_put(in);
	json_tokener_free(tok);
	return r;
}
