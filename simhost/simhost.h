/* simhost: the simulated hypervisor host that the sim backend migrates
 * domains of (`secmig sim host`). It plays the hypervisor's part, not the
 * engine's: a daemon holding domains on DIR/sim.sock and the client of that
 * socket (the sim backend, `secmig sim`, `secmig demo`), the domain config,
 * the shared-memory layout of a domain (the foreign mapping the backend
 * reads and writes), the self-verifying workload its vCPU threads run, and
 * the guest vTPM it runs next to a domain. It uses engine/backend.h for the
 * domain description's types (NICs, disks, the SMG_DOMAIN_* limits) only;
 * the engine reaches it through the sim backend (engine/backend/sim.c). */
#ifndef SMG_SIMHOST_H
#define SMG_SIMHOST_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "attest/attest.h"
#include "engine/backend.h"

#define SMG_SIM_PAGE_SIZE 4096u
#define SMG_SIM_VCPUS_MAX 16u
#define SMG_SIM_MEM_MIN	  (1ull << 20)	/* 1 MiB */
#define SMG_SIM_MEM_MAX	  (64ull << 30) /* 64 GiB */
#define SMG_SIM_TRACE_MAX 16384u	/* entries of a recorded write trace */
#define SMG_SIM_REGS_LEN  64u		/* the vCPU-like register blob */
#define SMG_SIM_LINE_MAX  1024u		/* one config line */
#define SMG_SIM_SOCK_NAME "sim.sock"
/* "trace = -": the recorded trace came with the migrated state (a config
 * the destination wrote); never a path a sender chose. */
#define SMG_SIM_TRACE_MIGRATED "-"
#define SMG_SIM_MSG_MAX	       (SMG_DOMAIN_CONFIG_MAX + 512) /* one request/reply */

enum smg_sim_workload {
	SMG_SIM_IDLE = 0,
	SMG_SIM_UNIFORM,
	SMG_SIM_HOTSPOT,
	SMG_SIM_TRACE,
};

struct smg_sim_config {
	char name[SMG_DOMAIN_NAME_MAX];
	uint64_t mem_bytes;
	unsigned vcpus;
	enum smg_sim_workload workload;
	uint64_t dirty_rate; /* bytes/s over all vCPUs */
	unsigned hot_writes; /* hot-spot: X % of writes ... */
	unsigned hot_pages;  /* ... go to Y % of the pages */
	unsigned zero_pct;   /* share of pages that stay zero */
	uint64_t seed;
	char trace_path[SMG_DOMAIN_PATH_MAX];
	unsigned n_nics, n_disks;
	struct smg_nic nics[SMG_DOMAIN_NICS_MAX];
	struct smg_disk disks[SMG_DOMAIN_DISKS_MAX];
	/* "placement = region=eu-west region=eu-central tier=gold" */
	unsigned n_labels;
	char labels[SMG_DOMAIN_LABELS_MAX][SMG_DOMAIN_LABEL_MAX];
	bool vtpm; /* "vtpm = yes": the host runs a swtpm for it */
};

/* Parse config text. On error returns SMG_ERR_CONFIG and writes
 * "line N: what" to err. Bounded: any byte string is safe input. */
int smg_sim_config_parse(const char *text, size_t len, struct smg_sim_config *cfg,
			 char *err, size_t errlen);
/* Read and parse a config file (capped at SMG_DOMAIN_CONFIG_MAX). */
int smg_sim_config_load(const char *path, char **text, size_t *len,
			struct smg_sim_config *cfg, char *err, size_t errlen);
/* Load a trace file (one page number per line) into out; returns count. */
int smg_sim_trace_load(const char *path, uint32_t *out, size_t max, size_t *n, char *err,
		       size_t errlen);

/* ---- shared memory layout ------------------------------------------------
 * [struct smg_sim_shared, padded to SMG_SIM_HDR_SIZE][dirty bitmap, page
 * aligned][guest frames]. Shared between the sim host (which runs the
 * vCPUs) and send/recv (which map it like Xen foreign mappings); all three
 * are local processes of the same operator. */
#define SMG_SIM_MAGIC	 0x534d4753494d0001ull
#define SMG_SIM_HDR_SIZE (128u * 1024)

struct smg_sim_vcpu {
	uint64_t seed;	/* initial PRNG state */
	uint64_t prng;	/* current PRNG state */
	uint64_t count; /* writes done */
	uint8_t regs[SMG_SIM_REGS_LEN];
	_Atomic uint32_t parked; /* writer acknowledges pause */
	uint32_t pad_;
};

struct smg_sim_shared {
	uint64_t magic;
	uint64_t npages;
	uint64_t nz; /* frames [0, nz) carry data, [nz, npages) stay zero */
	uint64_t bitmap_off, mem_off, total_size;
	uint64_t domain_seed;
	uint32_t page_size, vcpus;
	uint32_t workload, hot_writes, hot_pages, pad_;
	uint64_t dirty_rate;
	_Atomic uint32_t logdirty;
	_Atomic uint32_t paused;
	_Atomic uint32_t throttle;
	_Atomic uint32_t quit;
	_Atomic uint64_t writes;
	struct smg_sim_vcpu vcpu[SMG_SIM_VCPUS_MAX];
	uint32_t trace_len;
	uint32_t trace[SMG_SIM_TRACE_MAX];
};

struct smg_sim_mem {
	int fd;
	size_t size;
	struct smg_sim_shared *sh;
	_Atomic uint64_t *bitmap;
	uint8_t *pages;
};

uint64_t smg_sim_mem_size(uint64_t npages);
/* Create an anonymous shared memory object (memfd) for cfg; fill=true writes
 * every data frame at generation 1 (a running domain), false leaves all
 * frames zero (a skeleton for an incoming migration). */
int smg_sim_mem_create(const struct smg_sim_config *cfg, bool fill,
		       struct smg_sim_mem *m);
/* Map an existing memfd (received over the sim host socket); populate
 * allocates every frame at once (fallocate, like Xen's populate_physmap)
 * instead of one allocation per first write. The sim destination does not:
 * its skeleton gets memory as pages arrive (docs/hostdef.md). */
int smg_sim_mem_map(int fd, bool populate, struct smg_sim_mem *m);
void smg_sim_mem_unmap(struct smg_sim_mem *m);

/* ---- the workload ------------------------------------------------------ */
/* Fill one frame with its content at generation gen. */
void smg_sim_page_fill(const struct smg_sim_shared *sh, uint64_t pfn, uint64_t gen,
		       uint8_t *page);
/* The frame vCPU v's next write goes to (advances *prng). */
uint64_t smg_sim_pick(const struct smg_sim_shared *sh, unsigned v, uint64_t *prng,
		      uint64_t k);
/* Register blob as a function of the vCPU's counters. */
void smg_sim_regs(uint64_t prng, uint64_t count, uint8_t regs[static SMG_SIM_REGS_LEN]);
/* One write by vCPU v: picks a frame, bumps its generation, rewrites it,
 * then sets its dirty bit if log-dirty is on. */
void smg_sim_write_one(struct smg_sim_mem *m, unsigned v);

/* Log-dirty harvest: OR the dirty bits into bitmap and clear them. */
void smg_sim_logdirty_peek_clear(struct smg_sim_mem *m, uint64_t *bitmap,
				 uint64_t *dirty);

struct smg_sim_verify {
	uint64_t pages, ok, zero;
	uint64_t lost, stale, misplaced, corrupted;
	uint64_t bad_state; /* vCPU counters inconsistent with the PRNG replay */
	uint64_t first_bad_pfn;
};
/* Replay every vCPU's writes from its seed and check each frame. Domain
 * must be paused. Returns SMG_OK or SMG_ERR_INTEGRITY. */
int smg_sim_verify(const struct smg_sim_mem *m, struct smg_sim_verify *out);

/* Device state blob: every vCPU's PRNG, counter and registers + the trace. */
int smg_sim_state_save(const struct smg_sim_mem *m, uint8_t **blob, size_t *len);
/* Parse an untrusted blob (it came over the network) into the header. */
int smg_sim_state_restore(struct smg_sim_mem *m, const uint8_t *blob, size_t len);

/* Writer threads ("vCPUs") of one domain. */
struct smg_sim_vcpus;
int smg_sim_vcpus_start(struct smg_sim_mem *m, struct smg_sim_vcpus **out);
void smg_sim_vcpus_stop(struct smg_sim_vcpus *vs);
/* Set paused and wait for every writer to park (or to unpark). */
void smg_sim_pause(struct smg_sim_mem *m, bool paused);

/* ---- guest vTPM (vtpm.c): one swtpm per domain with "vtpm = yes" --- */
/* State in HOST_DIR/vtpm/NAME (recreated empty); incoming: no startup, the
 * instance waits for the migrated state. */
int smg_sim_vtpm_start(const char *host_dir, const char *name, bool incoming,
		       struct smg_swtpm *out);
/* Stop the instance (by PID) and remove its state directory. */
void smg_sim_vtpm_stop(const char *host_dir, const char *name, struct smg_swtpm *sw);

/* ---- sim host daemon and its client ----------------------------------- */
/* Serve DIR/sim.sock until SIGTERM/SIGINT. */
int smg_sim_host_run(const char *state_dir);
/* Connect to the sim host: DIR or a socket path. */
int smg_sim_client_connect(const char *dir_or_sock, int *fd);
/* A migration's calls are bounded: a host that does not answer one within
 * this long fails it with SMG_ERR_TIMEOUT and the connection is shut (its
 * lease ends as if the process had died). `secmig sim` (verify of a big VM)
 * keeps no bound. */
#define SMG_SIM_CALL_TIMEOUT_MS 120000
int smg_sim_client_bound(int fd, unsigned ms);
/* One request: "VERB args" + optional payload after a newline. reply gets
 * the payload after "OK"; *rfd a passed fd (or -1). Returns SMG_OK, or the
 * error code the host sent with its message in reply. */
int smg_sim_client_call(int fd, const char *req, const void *payload, size_t plen,
			char *reply, size_t cap, int *rfd);

#endif
