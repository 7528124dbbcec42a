/* Named fault-injection points (CRIU's enum faults): SMG_FI=name[,name]
 * switches them on; tests use them to crash either side at each phase. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/base.h"
#include "engine/engine.h"
#include "engine/internal.h"

static const char *const fault_names[SMG_FI_MAX_] = {
    [SMG_FI_SRC_AFTER_ROUND0] = "src_after_round0",
    [SMG_FI_SRC_AFTER_PAUSE] = "src_after_pause",
    [SMG_FI_SRC_AFTER_COMMIT] = "src_after_commit",
    [SMG_FI_DST_AFTER_ROUND0] = "dst_after_round0",
    [SMG_FI_DST_BEFORE_READY] = "dst_before_ready",
    [SMG_FI_DST_AFTER_COMMIT] = "dst_after_commit",
    [SMG_FI_DST_NO_DONE] = "dst_no_done",
    [SMG_FI_DST_BAD_ROOT] = "dst_bad_root",
    [SMG_FI_DST_WRITE_FAIL] = "dst_write_fail",
    [SMG_FI_DST_BAD_DISK] = "dst_bad_disk",
    [SMG_FI_DST_SLOW_DATA] = "dst_slow_data",
    [SMG_FI_SRC_STARVE_CHAN] = "src_starve_chan",
    [SMG_FI_SRC_IN_SETUP] = "src_in_setup",
    [SMG_FI_SRC_IN_VERIFY] = "src_in_verify",
    [SMG_FI_SRC_BEFORE_COMMIT] = "src_before_commit",
};

bool smg_fault_on(enum smg_fault f)
{
	const char *env = getenv("SMG_FI"), *p;
	size_t n;

	if (env == NULL || (unsigned)f >= SMG_FI_MAX_)
		return false;
	n = strlen(fault_names[f]);
	for (p = env; (p = strstr(p, fault_names[f])) != NULL; p += n)
		if ((p == env || p[-1] == ',') && (p[n] == '\0' || p[n] == ','))
			return true;
	return false;
}

unsigned smg_fault_stall_ms(unsigned dflt)
{
	const char *stall = getenv("SMG_FI_STALL_MS");
	uint64_t ms;

	if (smg_parse_uint(stall, 600000, &ms) == SMG_OK && ms > 0)
		return (unsigned)ms;
	return dflt;
}

#define STALL_STEP_MS 10

static void fault_at(enum smg_fault f, struct smg_live *l)
{
	unsigned ms;

	if (!smg_fault_on(f))
		return;
	/* network tests (test/net/test_net_faults.sh): SMG_FI_STALL_MS=N turns
	 * the crash into a pause of N ms at the same point, a window in which
	 * a test cuts the link or SIGKILLs a process at exactly this phase. */
	if ((ms = smg_fault_stall_ms(0)) > 0) {
		smg_warn("fault injection: %s: stalling %u ms", fault_names[f], ms);
		for (unsigned t = 0; t < ms && !smg_live_poked(l); t += STALL_STEP_MS)
			usleep(STALL_STEP_MS * 1000);
		return;
	}
	smg_warn("fault injection: %s: exiting now", fault_names[f]);
	_exit(70);
}

void smg_fault_crash(enum smg_fault f)
{
	fault_at(f, NULL);
}

void smg_fault_point(enum smg_fault f, struct smg_live *l)
{
	fault_at(f, l);
}
