/* The self-verifying memory catches each of the four faults (lost, stale,
 * misplaced, corrupted page); device state round-trips and the writers
 * continue from it on a second "host". */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/base.h"
#include "check.h"
#include "simhost/simhost.h"

static const struct smg_sim_config cfg = {.name = "v",
					  .mem_bytes = 2u << 20,
					  .vcpus = 2,
					  .workload = SMG_SIM_HOTSPOT,
					  .dirty_rate = 64ull << 20,
					  .hot_writes = 80,
					  .hot_pages = 10,
					  .zero_pct = 25,
					  .seed = 42};

static void run_for_ms(struct smg_sim_mem *m, unsigned ms)
{
	struct smg_sim_vcpus *vs;
	struct timespec ts = {0, (long)ms * 1000000L};

	CHECK(smg_sim_vcpus_start(m, &vs) == 0);
	nanosleep(&ts, NULL);
	smg_sim_pause(m, true);
	smg_sim_vcpus_stop(vs);
	atomic_store(&m->sh->paused, 0);
}

static uint64_t gen_of(struct smg_sim_mem *m, uint64_t pfn)
{
	uint64_t g;

	memcpy(&g, m->pages + pfn * SMG_SIM_PAGE_SIZE + 16, 8);
	return g;
}

static uint8_t *page(struct smg_sim_mem *m, uint64_t pfn)
{
	return m->pages + pfn * SMG_SIM_PAGE_SIZE;
}

int main(void)
{
	struct smg_sim_mem m, d;
	struct smg_sim_verify v;
	uint8_t save[SMG_SIM_PAGE_SIZE], *blob;
	uint64_t hot = 0;
	size_t len;

	CHECK(smg_sim_mem_create(&cfg, true, &m) == 0);
	run_for_ms(&m, 100);
	CHECK(m.sh->vcpu[0].count > 0 && m.sh->vcpu[1].count > 0);
	CHECK_EQ(smg_sim_verify(&m, &v), 0);
	CHECK_EQ(v.ok, v.pages);
	CHECK(v.zero >= v.pages / 4);
	for (uint64_t p = 0; p < m.sh->nz; p++)
		if (gen_of(&m, p) >= 2) {
			hot = p;
			break;
		}
	CHECK(gen_of(&m, hot) >= 2);

	/* lost: the page never arrived (still zero) */
	memcpy(save, page(&m, hot), sizeof(save));
	memset(page(&m, hot), 0, SMG_SIM_PAGE_SIZE);
	CHECK_EQ(smg_sim_verify(&m, &v), SMG_ERR_INTEGRITY);
	CHECK_EQ(v.lost, 1);
	CHECK_EQ(v.first_bad_pfn, hot);
	/* stale: an older version of the page */
	smg_sim_page_fill(m.sh, hot, gen_of(&m, hot) == 0 ? 1 : 1, page(&m, hot));
	CHECK_EQ(smg_sim_verify(&m, &v), SMG_ERR_INTEGRITY);
	CHECK_EQ(v.stale, 1);
	/* misplaced: another frame's content at this address */
	memcpy(page(&m, hot), page(&m, hot + 1), SMG_SIM_PAGE_SIZE);
	CHECK_EQ(smg_sim_verify(&m, &v), SMG_ERR_INTEGRITY);
	CHECK_EQ(v.misplaced, 1);
	/* corrupted: one flipped bit */
	memcpy(page(&m, hot), save, sizeof(save));
	page(&m, hot)[1000] ^= 0x10;
	CHECK_EQ(smg_sim_verify(&m, &v), SMG_ERR_INTEGRITY);
	CHECK_EQ(v.corrupted, 1);
	/* corrupted zero page */
	page(&m, hot)[1000] ^= 0x10;
	page(&m, m.sh->npages - 1)[7] = 1;
	CHECK_EQ(smg_sim_verify(&m, &v), SMG_ERR_INTEGRITY);
	CHECK_EQ(v.corrupted, 1);
	page(&m, m.sh->npages - 1)[7] = 0;
	CHECK_EQ(smg_sim_verify(&m, &v), 0);
	/* a vCPU counter that does not match its PRNG replay */
	m.sh->vcpu[1].count++;
	CHECK_EQ(smg_sim_verify(&m, &v), SMG_ERR_INTEGRITY);
	CHECK(v.bad_state >= 1);
	m.sh->vcpu[1].count--;

	/* Migrate by hand: pages + device state into a skeleton; the writers
	 * continue there from where they stopped and it still verifies. */
	CHECK(smg_sim_state_save(&m, &blob, &len) == 0);
	CHECK(smg_sim_mem_create(&cfg, false, &d) == 0);
	CHECK_EQ(smg_sim_verify(&d, &v), SMG_ERR_INTEGRITY); /* empty skeleton */
	memcpy(d.pages, m.pages, cfg.mem_bytes);
	CHECK(smg_sim_state_restore(&d, blob, len) == 0);
	CHECK_EQ(smg_sim_verify(&d, &v), 0);
	uint64_t before = d.sh->vcpu[0].count;
	run_for_ms(&d, 50);
	CHECK(d.sh->vcpu[0].count > before);
	CHECK_EQ(smg_sim_verify(&d, &v), 0);
	/* Truncated or lying state blobs are refused without damage. */
	for (size_t n = 0; n < len; n += 7)
		CHECK(smg_sim_state_restore(&d, blob, n) != 0);
	blob[8] ^= 1; /* vCPU count */
	CHECK(smg_sim_state_restore(&d, blob, len) != 0);
	free(blob);
	smg_sim_mem_unmap(&m);
	smg_sim_mem_unmap(&d);
	return check_result("sim_verify");
}
