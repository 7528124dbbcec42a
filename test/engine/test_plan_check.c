/* smg_plan_check and the sim backend's own config: a plan that fits the
 * definition becomes a build naming this host's images and the matched
 * NICs, and the config the sim host stores is written from that build
 * (never the sender's disk or trace paths). The capacity ledger adds up
 * sessions in total and per peer and gives back what it took.
 * `test_engine_plan_check --seeds DIR` writes the fuzz seeds for fuzz_plan. */
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "base/base.h"
#include "check.h"
#include "engine/backend/sim.h"
#include "engine/internal.h"
#include "proto/proto.h"
#include "secmig.pb-c.h"

static const char defs_text[] =
    "storage /srv/img\nbridge br0\nlimit total memory=1G sessions=2\n"
    "limit peer sessions=1\nvm web-*\n  from src\n"
    "  nic bridge=br0 mac=52:54:00:10:00:00/40 ip=10.1.0.0/24\n";
static const char cfg_text[] = "name = web-1\nmemory = 16M\nvcpus = 2\n"
			       "workload = trace\ntrace = /etc/passwd\ndirty_rate = 1M\n"
			       "disk = /home/a/web-1.img\n"
			       "nic = mac=52:54:00:10:00:05,ipv4=10.1.0.5\n";

static size_t pack_plan(uint8_t *buf, size_t cap, const char *cfg, uint64_t mem)
{
	Smg__Plan p = SMG__PLAN__INIT;
	Smg__NicSpec nic = SMG__NIC_SPEC__INIT, *nicp = &nic;
	Smg__DiskSpec disk = SMG__DISK_SPEC__INIT, *diskp = &disk;
	static uint8_t mac[6] = {0x52, 0x54, 0, 0x10, 0, 5}, ip[4] = {10, 1, 0, 5};
	ProtobufCBinaryData v4 = {4, ip};
	uint8_t hash[32];

	crypto_generichash(hash, sizeof(hash), (const uint8_t *)cfg, strlen(cfg), NULL,
			   0);
	p.migration_id = "00112233445566778899aabbccddeeff";
	p.domain_name = "web-1";
	p.domain_config = (ProtobufCBinaryData){strlen(cfg), (uint8_t *)cfg};
	p.config_hash = (ProtobufCBinaryData){32, hash};
	p.memory_bytes = mem;
	p.page_size = 4096;
	p.vcpus = 2;
	p.backend = "sim";
	nic.mac = (ProtobufCBinaryData){6, mac};
	nic.n_ipv4 = 1;
	nic.ipv4 = &v4;
	p.n_nics = 1;
	p.nics = &nicp;
	disk.size = 8 << 20;
	disk.chunk_size = 1 << 20;
	p.n_disks = 1;
	p.disks = &diskp;
	p.storage_mode = SMG__STORAGE_MODE__STORAGE_WAIO;
	if (protobuf_c_message_get_packed_size(&p.base) > cap)
		return 0;
	return protobuf_c_message_pack(&p.base, buf);
}

static int seeds(const char *dir, const struct smg_hostdef *d)
{
	uint8_t buf[4096];
	char path[256];
	size_t n = pack_plan(buf, sizeof(buf), cfg_text, 16 << 20);
	FILE *f;

	(void)d;
	snprintf(path, sizeof(path), "%s/plan", dir);
	if ((f = fopen(path, "wb")) == NULL || fwrite(buf, 1, n, f) != n)
		return 1;
	fclose(f);
	n = pack_plan(buf, sizeof(buf), "name = web-1\nmemory = 64G\n", 64ull << 30);
	snprintf(path, sizeof(path), "%s/big", dir);
	if ((f = fopen(path, "wb")) == NULL || fwrite(buf, 1, n, f) != n)
		return 1;
	fclose(f);
	return 0;
}

int main(int argc, char **argv)
{
	struct smg_hostdef *d = NULL;
	struct smg_capacity *cap = NULL;
	struct smg_vm_build b;
	ProtobufCMessage *m = NULL;
	uint8_t buf[4096];
	char err[256], why[256], *text = NULL;
	uint64_t disk_total;
	size_t n, tlen;

	if (smg_hostdef_parse(defs_text, strlen(defs_text), "defs", &d, err,
			      sizeof(err)) != 0) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	if (argc == 3 && strcmp(argv[1], "--seeds") == 0) {
		int r = seeds(argv[2], d);
		smg_hostdef_free(d);
		return r;
	}
	n = pack_plan(buf, sizeof(buf), cfg_text, 16 << 20);
	CHECK_EQ(smg_proto_unpack(SMG_FT_PLAN, buf, n, &m), 0);
	const Smg__Plan *p = (const Smg__Plan *)m;
	CHECK_EQ(smg_plan_check(p, d, "src", "/srv/img", &b, &disk_total), 0);
	CHECK(strcmp(b.disk_name[0], "web-1.0") == 0);
	CHECK(strcmp(b.disk_path[0], "/srv/img/web-1.0.img") == 0);
	CHECK_EQ(disk_total, 8 << 20);
	CHECK_EQ(b.n_nics, 1);
	CHECK(strcmp(b.bridge[0], "br0") == 0);
	/* the stored config: this host's disk service disk, no trace path, same NIC */
	CHECK_EQ(smg_sim_build_config(p->domain_config.data, p->domain_config.len, &b,
				      &text, &tlen),
		 0);
	CHECK(text != NULL && strstr(text, "disk = web-1.0\n") != NULL);
	CHECK(text != NULL && strstr(text, "/home/a") == NULL);
	CHECK(text != NULL && strstr(text, "/etc/passwd") == NULL);
	CHECK(text != NULL && strstr(text, "trace = -\n") != NULL);
	CHECK(text != NULL &&
	      strstr(text, "nic = mac=52:54:00:10:00:05,ipv4=10.1.0.5") != NULL);
	free(text);
	/* another peer has no definition for it */
	CHECK_EQ(smg_plan_check(p, d, "mallory", "/srv/img", &b, &disk_total),
		 SMG_ERR_POLICY);
	CHECK(strstr(b.why, "no definition") != NULL);

	/* the ledger: one session per peer, two in total, 1 GiB in total */
	CHECK_EQ(smg_capacity_new(d, &cap), 0);
	CHECK_EQ(smg_capacity_reserve(cap, "src", 512 << 20, 0, why, sizeof(why)), 0);
	CHECK_EQ(smg_capacity_reserve(cap, "src", 16 << 20, 0, why, sizeof(why)),
		 SMG_ERR_POLICY);
	CHECK(strstr(why, "this peer") != NULL);
	CHECK_EQ(smg_capacity_reserve(cap, "b", 600 << 20, 0, why, sizeof(why)),
		 SMG_ERR_POLICY);
	CHECK(strstr(why, "memory") != NULL);
	CHECK_EQ(smg_capacity_reserve(cap, "b", 512 << 20, 0, why, sizeof(why)), 0);
	CHECK_EQ(smg_capacity_reserve(cap, "c", 1, 0, why, sizeof(why)), SMG_ERR_POLICY);
	smg_capacity_release(cap, "src", 512 << 20, 0);
	CHECK_EQ(smg_capacity_reserve(cap, "c", 512 << 20, 0, why, sizeof(why)), 0);
	smg_capacity_release(cap, "b", 512 << 20, 0);
	smg_capacity_release(cap, "c", 512 << 20, 0);
	smg_capacity_free(cap);

	/* vif names: never a truncation two domains share (webserver-a once
	 * took webserver-b's vif), always within IFNAMSIZ */
	char va[SMG_NETID_IFNAME_MAX], vb[SMG_NETID_IFNAME_MAX], vs[SMG_NETID_IFNAME_MAX];
	smg_netid_vif_name("webserver-a", 0, va);
	smg_netid_vif_name("webserver-b", 0, vb);
	smg_netid_vif_name("vm1", 3, vs);
	printf("vif names: %s %s %s\n", va, vb, vs);
	CHECK(strcmp(va, vb) != 0);
	CHECK(strlen(va) < SMG_NETID_IFNAME_MAX && strlen(vb) < SMG_NETID_IFNAME_MAX);
	CHECK(strcmp(vs, "v3-vm1") == 0);
	smg_netid_vif_name("web-server-1", 0, vs); /* 15 characters: verbatim */
	CHECK(strcmp(vs, "v0-web-server-1") == 0);
	smg_netid_vif_name("web-server-12", 0, vs); /* 16: hashed, never a prefix */
	CHECK(vs[2] == '_' && strlen(vs) < SMG_NETID_IFNAME_MAX);
	/* peer strings in logs: printable, escaped */
	char esc[64];
	smg_log_escape("a\nb\x1b[31m\"c", esc, sizeof(esc));
	CHECK(strcmp(esc, "a\\u000ab\\u001b[31m\\u0022c") == 0);
	smg_proto_free(m);
	smg_hostdef_free(d);
	return check_result("test_engine_plan_check");
}
