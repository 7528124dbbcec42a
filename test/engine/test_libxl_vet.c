/* The xen destination's allow-list over a sender's libxl config: a legit
 * config comes out naming only this host's images, bridges and kernel;
 * one malicious field per case is refused by name (a dom0 path, a hotplug
 * script, PCI, 9p, a kernel this host does not have, a device model, ...).
 * Pure JSON work: runs off dom0. */
#include <string.h>

#include "base/base.h"
#include "check.h"
#include "engine/backend/libxl_vet.h"

static struct smg_hostdef_vm def = {.pattern = "web-*",
				    .types = SMG_HOSTDEF_TYPE_PVH | SMG_HOSTDEF_TYPE_HVM};
static struct smg_vm_build b;

#define NIC                                                                             \
	"{\"devid\":0,\"mac\":\"00:16:3e:00:00:01\",\"bridge\":\"xenbr0\",\"nictype\":" \
	"\"vif\"}"
#define DISK                        \
	"{\"pdev_path\":\"/dev/vg/" \
	"web-1\",\"vdev\":\"xvda\",\"format\":\"raw\",\"readwrite\":1}"

static char *legit(const char *c_extra, const char *b_extra, const char *top_extra,
		   const char *disk, const char *nic)
{
	static char buf[4096];

	snprintf(buf, sizeof(buf),
		 "{\"c_info\":{\"type\":\"pvh\",\"name\":\"web-1\",\"uuid\":"
		 "\"5d6e6f3a-8f1b-4d2a-9b5e-0c1d2e3f4a5b\"%s},"
		 "\"b_info\":{\"max_vcpus\":2,\"avail_vcpus\":[0,1],\"max_memkb\":"
		 "131072,\"target_memkb\":131072,\"type.pvh\":{\"pvshim\":false}%s},"
		 "\"disks\":[%s],\"nics\":[%s],\"on_reboot\":\"restart\"%s}",
		 c_extra, b_extra, disk, nic, top_extra);
	return buf;
}

static void refused(const char *what, const char *json, const char *want)
{
	char *out = NULL, name[64], why[256];
	int r = smg_libxl_vet(json, strlen(json), &b, &out, name, sizeof(name), why,
			      sizeof(why));

	printf("%-24s -> %s\n", what, why);
	CHECK(r == SMG_ERR_POLICY);
	CHECK(out == NULL);
	if (strstr(why, want) == NULL) {
		fprintf(stderr, "%s: wanted '%s' in '%s'\n", what, want, why);
		CHECK(0);
	}
	free(out);
}

int main(void)
{
	char *out = NULL, name[64], why[256];
	const char *j;

	b.def = &def;
	b.memory_bytes = 128ull << 20;
	b.vcpus = 2;
	b.n_disks = 1;
	snprintf(b.disk_path[0], sizeof(b.disk_path[0]), "/srv/images/web-1.0.img");
	b.n_nics = 1;
	smg_mac_parse("00:16:3e:00:00:01", b.nics[0].mac);
	snprintf(b.bridge[0], sizeof(b.bridge[0]), "br-web");

	j = legit("", "", "", DISK, NIC);
	CHECK(smg_libxl_vet(j, strlen(j), &b, &out, name, sizeof(name), why,
			    sizeof(why)) == 0);
	CHECK(strcmp(name, "web-1") == 0);
	CHECK(out != NULL && strstr(out, "/srv/images/web-1.0.img") != NULL);
	CHECK(out != NULL && strstr(out, "/dev/vg/web-1") == NULL);
	CHECK(out != NULL && strstr(out, "br-web") != NULL &&
	      strstr(out, "xenbr0") == NULL);
	CHECK(out != NULL && strstr(out, "\"max_memkb\":131072") != NULL);
	free(out);
	out = NULL;

	/* What libxl_retrieve_domain_configuration writes: defbools as
	 * "True"/"False", enums by name, host-local placement. */
	j = legit(",\"run_hotplug_scripts\":\"True\",\"driver_domain\":\"False\","
		  "\"pool_name\":\"Pool-0\",\"hap\":\"True\",\"domid\":7",
		  ",\"arch_arm\":{\"gic_version\":\"default\",\"vuart\":\"unknown\"},"
		  "\"device_model_stubdomain\":\"False\",\"numa_placement\":\"True\","
		  "\"cpumap\":[0,1,2,3],\"sched_params\":{\"sched\":\"credit2\","
		  "\"weight\":256},\"tee\":\"none\",\"altp2m\":\"disabled\"",
		  "", DISK, NIC);
	CHECK(smg_libxl_vet(j, strlen(j), &b, &out, name, sizeof(name), why,
			    sizeof(why)) == 0);
	if (out == NULL)
		fprintf(stderr, "retrieved-style config refused: %s\n", why);
	CHECK(out != NULL && strstr(out, "cpumap") == NULL);
	CHECK(out != NULL && strstr(out, "domid") == NULL); /* ours to pick */
	free(out);
	out = NULL;
	refused("stub domain on",
		legit("", ",\"device_model_stubdomain\":\"True\"", "", DISK, NIC),
		"b_info.device_model_stubdomain (a stub domain)");
	refused("disk that does not travel", legit("", "", "", DISK "," DISK, NIC),
		"2 disks, the plan moves 1");
	refused("disk hotplug script",
		legit("", "", "",
		      "{\"pdev_path\":\"/x\",\"vdev\":\"xvda\",\"script\":\"/tmp/own\"}",
		      NIC),
		"disks[].script (a hotplug script run by dom0 as root)");
	refused("vif hotplug script",
		legit("", "", "", DISK,
		      "{\"mac\":\"00:16:3e:00:00:01\",\"script\":\"/tmp/own\"}"),
		"nics[].script");
	refused("PCI device", legit("", "", ",\"pcidevs\":[{\"bus\":1}]", DISK, NIC),
		"config.pcidevs (host PCI devices)");
	refused("9p share",
		legit("", "", ",\"p9s\":[{\"tag\":\"r\",\"path\":\"/\"}]", DISK, NIC),
		"config.p9s (9p shares of dom0 directories)");
	refused("kernel", legit("", ",\"kernel\":\"/root/vmlinuz\"", "", DISK, NIC),
		"names b_info.kernel and this host's definition has none");
	refused("device model",
		legit("", ",\"device_model\":\"/tmp/qemu\"", "", DISK, NIC),
		"b_info.device_model (a device-model binary)");
	refused("bootloader", legit("", ",\"bootloader\":\"/tmp/pygrub\"", "", DISK, NIC),
		"b_info.bootloader");
	refused("MAC not the plan's",
		legit("", "", "", DISK, "{\"mac\":\"00:16:3e:00:00:02\"}"),
		"MAC differs");
	refused("vif name",
		legit("", "", "", DISK,
		      "{\"mac\":\"00:16:3e:00:00:01\",\"ifname\":\"vif1.0\"}"),
		"nics[].ifname");
	refused("xenstore data", legit(",\"xsdata\":{\"a\":\"b\"}", "", "", DISK, NIC),
		"c_info.xsdata");
	refused("channels", legit("", "", ",\"channels\":[{\"name\":\"x\"}]", DISK, NIC),
		"config.channels");
	refused("unknown field", legit("", "", ",\"frob\":1", DISK, NIC),
		"config.frob (an unknown setting)");
	refused("more memory than planned",
		legit("", ",\"max_memkb\":99999999", "", DISK, NIC), "max_memkb");
	refused("pv guest, pvh/hvm only",
		"{\"c_info\":{\"type\":\"pv\",\"name\":\"web-1\"},\"b_info\":{},"
		"\"disks\":[" DISK "],\"nics\":[" NIC "]}",
		"guest type pv is not allowed");
	refused("not JSON", "{\"c_info\":", "not one JSON");
	/* fuzz_libxl_vet's first finding: an allowed field carried any bytes
	 * (here a uuid of control and high bytes) on to libxl */
	refused("uuid of raw bytes",
		"{\"c_info\":{\"type\":\"pvh\",\"name\":\"web-1\",\"uuid\":"
		"\"5d6e\x01\xfe p9s\"},"
		"\"b_info\":{},\"disks\":[" DISK "],\"nics\":[" NIC "]}",
		"c_info.uuid to a value outside");
	/* the second finding: "nics" given twice, the last a string: json-c
	 * asserted (the receiver aborted) on the length of a non-list */
	refused("nics not a list",
		"{\"c_info\":{\"type\":\"pvh\",\"name\":\"web-1\"},\"b_info\":{},"
		"\"disks\":[" DISK "],\"nics\":[],\"nics\":\"restart\"}",
		"nics is not a list");
	refused(
	    "disks not a list",
	    "{\"c_info\":{\"type\":\"pvh\",\"name\":\"web-1\"},\"b_info\":{},\"disks\":7,"
	    "\"nics\":[" NIC "]}",
	    "disks is not a list");
	/* the third finding: an allowed field's value may be an object, and
	 * its keys went to libxl unchecked ("serial" under max_memkb) */
	refused("host key inside an allowed value",
		legit("", ",\"target_memkb\":{\"serial\":[\"pty\"]}", "", DISK, NIC),
		"b_info.target_memkb to a value outside");
	refused("key of raw bytes inside an allowed value",
		legit("", ",\"tsc_mode\":{\"a b\":1}", "", DISK, NIC),
		"b_info.tsc_mode to a value outside");
	refused("max_memkb not a number",
		legit("", ",\"max_memkb\":{\"b\":[]}", "", DISK, NIC),
		"b_info.max_memkb is over");
	refused("string with a space",
		legit("", ",\"tsc_mode\":\"native -x /tmp\"", "", DISK, NIC),
		"b_info.tsc_mode to a value outside");
	refused("deep nesting",
		"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["
		"[[[[["
		"]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]"
		"]]]]]",
		"not one JSON");

	/* With a kernel in this host's definition, the host's file is used. */
	snprintf(def.kernel, sizeof(def.kernel), "/var/lib/secmig/kernels/vmlinuz");
	j = legit("", ",\"kernel\":\"/root/vmlinuz\"", "", DISK, NIC);
	CHECK(smg_libxl_vet(j, strlen(j), &b, &out, name, sizeof(name), why,
			    sizeof(why)) == 0);
	CHECK(out != NULL && strstr(out, "/var/lib/secmig/kernels/vmlinuz") != NULL &&
	      strstr(out, "/root/vmlinuz") == NULL);
	free(out);
	return check_result("test_engine_libxl_vet");
}
