/* libFuzzer harness: the destination's answer to a PLAN (docs/hostdef.md).
 * The bytes are a PLAN payload from an authenticated but rogue sender:
 * the bounded unpack, smg_plan_check against a fixed set of definitions,
 * the capacity ledger, and the sim backend's own config built from the
 * sender's (smg_sim_build_config). Oracle: a config this host writes
 * parses, names only this host's disk service disks (their images under
 * this host's storage directory) and no trace path. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "engine/backend/sim.h"
#include "engine/internal.h"
#include "proto/proto.h"
#include "secmig.pb-c.h"

static const char defs_text[] =
    "storage /srv/img\nbridge br0\nlimit vm memory=1G disks=4 disk=1G\n"
    "limit total memory=2G sessions=2\nvm *\n  vtpm yes\n"
    "  nic bridge=br0 mac=52:54:00:00:00:00/24 ip=10.0.0.0/8 ip=fd00::/8\n"
    "  nic bridge=br0 mac=52:54:00:00:00:00/24 ip=10.0.0.0/8\n";

static void check_render(const char *text, size_t len, const struct smg_vm_build *b)
{
	struct smg_sim_config c;
	char err[256];

	if (smg_sim_config_parse(text, len, &c, err, sizeof(err)) != 0 ||
	    c.n_disks != b->n_disks || c.n_nics != b->n_nics ||
	    (c.workload == SMG_SIM_TRACE && strcmp(c.trace_path, SMG_SIM_TRACE_MIGRATED)))
		abort();
	for (unsigned i = 0; i < c.n_disks; i++)
		if (strcmp(c.disks[i].path, b->disk_name[i]) != 0 ||
		    strchr(c.disks[i].path, '/') != NULL ||
		    strncmp(b->disk_path[i], "/srv/img/", 9) != 0)
			abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct smg_hostdef *d;
	static struct smg_capacity *cap;
	struct smg_vm_build b;
	ProtobufCMessage *m = NULL;
	uint64_t disk_total;
	char why[256], *text = NULL;
	size_t tlen;

	if (d == NULL) {
		smg_log_set_stream(fopen("/dev/null", "w"));
		if (smg_hostdef_parse(defs_text, strlen(defs_text), "fuzz", &d, why,
				      sizeof(why)) != 0 ||
		    smg_capacity_new(d, &cap) != 0)
			abort();
	}
	if (smg_proto_unpack(SMG_FT_PLAN, data, size, &m) != 0)
		return 0;
	const Smg__Plan *p = (const Smg__Plan *)m;
	if (p->domain_name != NULL && smg_name_ok(p->domain_name, SMG_DOMAIN_NAME_MAX) &&
	    smg_plan_check(p, d, "src", "/srv/img", &b, &disk_total) == 0) {
		if (smg_capacity_reserve(cap, "src", p->memory_bytes, disk_total, why,
					 sizeof(why)) == 0)
			smg_capacity_release(cap, "src", p->memory_bytes, disk_total);
		if (smg_sim_build_config(p->domain_config.data, p->domain_config.len, &b,
					 &text, &tlen) == 0)
			check_render(text, tlen, &b);
		free(text);
	}
	smg_proto_free(m);
	return 0;
}
