/* Log-dirty is exact: writers hammer memory while this thread harvests
 * with peek-and-clear and copies every harvested page to a shadow, like a
 * pre-copy round. After a pause and a last harvest the shadow must equal
 * memory byte for byte: a write the log missed would leave a stale page. */
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "check.h"
#include "simhost/simhost.h"

#define HAMMER_WRITES	 20000 /* writes the vCPUs make while we harvest */
#define HAMMER_HARVESTED 1000  /* pages harvested concurrently with them */

static void copy_dirty(struct smg_sim_mem *m, uint8_t *shadow, uint64_t *bm,
		       uint64_t words)
{
	for (uint64_t w = 0; w < words; w++) {
		uint64_t v = bm[w];
		while (v != 0) {
			uint64_t p = w * 64 + (uint64_t)__builtin_ctzll(v);
			v &= v - 1;
			memcpy(shadow + p * SMG_SIM_PAGE_SIZE,
			       m->pages + p * SMG_SIM_PAGE_SIZE, SMG_SIM_PAGE_SIZE);
		}
		bm[w] = 0;
	}
}

static void run(enum smg_sim_workload wl, unsigned vcpus)
{
	struct smg_sim_config cfg = {.name = "hammer",
				     .mem_bytes = 4u << 20,
				     .vcpus = vcpus,
				     .workload = wl,
				     .dirty_rate = 2000ull << 20,
				     .hot_writes = 90,
				     .hot_pages = 2,
				     .zero_pct = 10,
				     .seed = 7};
	struct smg_sim_mem m;
	struct smg_sim_vcpus *vs;
	uint64_t npages = cfg.mem_bytes / SMG_SIM_PAGE_SIZE, words = (npages + 63) / 64,
		 n;
	uint64_t *bm = calloc(words, sizeof(uint64_t)), harvested = 0, writes;
	uint8_t *shadow = malloc(cfg.mem_bytes);
	struct smg_sim_verify v;

	CHECK(smg_sim_mem_create(&cfg, true, &m) == 0);
	CHECK(smg_sim_vcpus_start(&m, &vs) == 0);
	atomic_store(&m.sh->logdirty, 1);
	memcpy(shadow, m.pages, cfg.mem_bytes); /* round 0, while writers run */
	/* Harvest until the writers have really raced us, however the scheduler
	 * treats this loaded machine: a fixed round count finished before the
	 * writers ran at all. The writers always progress, so this ends. */
	for (uint64_t round = 0;
	     round < 20000 || atomic_load(&m.sh->writes) < HAMMER_WRITES ||
	     harvested < HAMMER_HARVESTED;
	     round++) {
		smg_sim_logdirty_peek_clear(&m, bm, &n);
		harvested += n;
		copy_dirty(&m, shadow, bm, words);
		if (n == 0)
			sched_yield();
	}
	smg_sim_pause(&m, true);
	smg_sim_logdirty_peek_clear(&m, bm, &n);
	copy_dirty(&m, shadow, bm, words);
	writes = atomic_load(&m.sh->writes);
	CHECK(writes >= HAMMER_WRITES); /* the writers really ran concurrently */
	CHECK(harvested >= HAMMER_HARVESTED);
	CHECK(memcmp(shadow, m.pages, cfg.mem_bytes) == 0);
	CHECK_EQ(smg_sim_verify(&m, &v), 0);
	/* And the shadow as a memory image verifies too: nothing stale. */
	memcpy(m.pages, shadow, cfg.mem_bytes);
	CHECK_EQ(smg_sim_verify(&m, &v), 0);
	CHECK_EQ(v.stale + v.lost + v.corrupted + v.misplaced, 0);
	smg_sim_vcpus_stop(vs);
	smg_sim_mem_unmap(&m);
	free(bm);
	free(shadow);
}

int main(void)
{
	run(SMG_SIM_UNIFORM, 2);
	run(SMG_SIM_HOTSPOT, 3);
	return check_result("sim_dirty");
}
