/* The hypervisor backend interface: one ops struct with a self pointer,
 * shaped after Xen's log-dirty model (xc_shadow_control PEEK/CLEAN, foreign
 * mapping of frame batches, populate_physmap on the destination). The engine
 * only ever sees this header; backends register themselves by name in
 * engine/backend/registry.c and keep their own headers private.
 *
 * One backend handle drives one domain: on the source it attaches to an
 * existing domain (domain_open), on the destination it builds a skeleton from
 * the migrated config (domain_create). Calls on one handle come from one
 * thread, except read_pages/write_pages, which the engine calls concurrently
 * from one thread per data channel on disjoint page sets. */
#ifndef SMG_BACKEND_H
#define SMG_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SMG_DOMAIN_NAME_MAX   64
#define SMG_DOMAIN_CONFIG_MAX (64 * 1024)  /* config text carried in the plan */
#define SMG_DOMAIN_STATE_MAX  (512 * 1024) /* vCPU + device state blob */
#define SMG_DOMAIN_NICS_MAX   8
#define SMG_DOMAIN_DISKS_MAX  8
#define SMG_DOMAIN_IPS_MAX    4 /* per family per NIC */
#define SMG_DOMAIN_PATH_MAX   256
#define SMG_DOMAIN_LABELS_MAX 16 /* placement labels of a VM */
#define SMG_DOMAIN_LABEL_MAX  64 /* "key=value" */

struct smg_nic {
	uint8_t mac[6];
	unsigned n_ipv4, n_ipv6;
	uint8_t ipv4[SMG_DOMAIN_IPS_MAX][4];
	uint8_t ipv6[SMG_DOMAIN_IPS_MAX][16];
};

struct smg_disk {
	char path[SMG_DOMAIN_PATH_MAX];
	uint64_t size; /* bytes; 0 when the backend does not know */
};

/* What the engine learns about a domain; filled by domain_open/create. */
struct smg_domain_info {
	char name[SMG_DOMAIN_NAME_MAX];
	uint64_t pages;	    /* guest frames, numbered 0..pages-1 */
	uint32_t page_size; /* bytes per frame */
	uint32_t vcpus;
	/* The backend's own config text (sim: its key=value file; xen: libxl
	 * config). Sent in the plan and hashed into the manifest. */
	const uint8_t *config;
	size_t config_len;
	unsigned n_nics, n_disks;
	struct smg_nic nics[SMG_DOMAIN_NICS_MAX];
	struct smg_disk disks[SMG_DOMAIN_DISKS_MAX];
	/* Placement: for each key named, the destination must carry one of
	 * the listed values (checked against the host policies at plan time). */
	unsigned n_labels;
	char labels[SMG_DOMAIN_LABELS_MAX][SMG_DOMAIN_LABEL_MAX];
	/* Guest vTPM: a swtpm instance whose control channel is the unix
	 * socket vtpm_ctrl in a 0700 directory (attest/swtpm.c; "": the VM has
	 * no vTPM, or the incoming instance has not been started yet). */
	bool has_vtpm;
	char vtpm_ctrl[SMG_DOMAIN_PATH_MAX];
};

/* What the destination builds an incoming VM from (engine/plan_check.c,
 * docs/hostdef.md): the operator's definition that matched the plan, and
 * the resources this host chose for it. A backend takes disks, NICs,
 * kernel, firmware and vTPM from here only, never from the sender's
 * config, and stores nothing of that config as trusted local config. */
struct smg_hostdef_vm;
struct smg_vm_build {
	const struct smg_hostdef_vm *def;
	uint64_t memory_bytes;
	uint32_t vcpus;
	bool vtpm;
	/* Disks this host's disk service creates: their names there (D.i,
	 * generated here) and the image files they are, in the definitions'
	 * storage directory (the service's: disk serve --defs). */
	unsigned n_disks;
	char disk_name[SMG_DOMAIN_DISKS_MAX][SMG_DOMAIN_NAME_MAX + 16];
	char disk_path[SMG_DOMAIN_DISKS_MAX][SMG_DOMAIN_PATH_MAX];
	uint64_t disk_size[SMG_DOMAIN_DISKS_MAX];
	unsigned n_nics; /* matched against the definition's nic lines */
	struct smg_nic nics[SMG_DOMAIN_NICS_MAX];
	char bridge[SMG_DOMAIN_NICS_MAX][16];
	/* Why a backend refused the sender's config (exit 5, in the ABORT). */
	char why[256];
};

struct smg_backend;

struct smg_backend_ops {
	const char *name;
	void (*close)(struct smg_backend *self);

	/* ---- source side ---------------------------------------------------- */
	int (*domain_open)(struct smg_backend *self, const char *name,
			   struct smg_domain_info *info);
	/* Optional; NULL: every frame 0..pages-1 is the guest's memory. Sets
	 * in bitmap (pages bits) the frames that are the guest's memory now
	 * (Xen: populated; the rest are holes) and their count: the first
	 * round sends only these. A frame that appears or goes later is
	 * reported dirty by logdirty_peek_clear, so the rounds after the
	 * first need nothing more. */
	int (*populated)(struct smg_backend *self, uint64_t *bitmap, uint64_t *count);
	/* Log-dirty (Xen: XEN_DOMCTL_SHADOW_OP_ENABLE_LOGDIRTY / PEEK+CLEAN /
	 * OFF). peek_clear ORs the pages dirtied since the previous call into
	 * bitmap (pages bits, 64 per word) and clears them at the source
	 * atomically, so a write racing with the call lands in this set or in
	 * the next one, never in neither. *dirty is how many bits it set. */
	int (*logdirty_enable)(struct smg_backend *self);
	int (*logdirty_peek_clear)(struct smg_backend *self, uint64_t *bitmap,
				   uint64_t *dirty);
	int (*logdirty_disable)(struct smg_backend *self);
	/* Copy n frames into out (n * page_size bytes): the one copy from
	 * guest memory into an outgoing bulk frame (Xen: foreign map batch). */
	int (*read_pages)(struct smg_backend *self, const uint64_t *pfns, size_t n,
			  uint8_t *out);
	int (*pause)(struct smg_backend *self);
	int (*unpause)(struct smg_backend *self);
	/* Slow the guest's vCPUs to (100 - pct) % of their time (auto-converge). */
	int (*throttle)(struct smg_backend *self, unsigned pct);
	/* Only while paused. *blob is malloc'd; caller frees. */
	int (*save_state)(struct smg_backend *self, uint8_t **blob, size_t *len);
	/* The source records COMMIT durably with the hypervisor host, so a
	 * sender that dies after it leaves the paused copy alone (in doubt)
	 * instead of resuming it. id is the migration id (hex), peer where the
	 * destination listens; resolve reads both back with domain_pending. */
	int (*mark_commit)(struct smg_backend *self, const char *id, const char *peer);
	int (*destroy)(struct smg_backend *self);
	/* In-doubt bookkeeping for `secmig resolve` (no domain attached):
	 * read back what mark_commit recorded for name, and settle it:
	 * resumed=true destroys the paused source copy, false resumes it. */
	int (*domain_pending)(struct smg_backend *self, const char *name, char *id,
			      size_t id_len, char *peer, size_t peer_len);
	int (*domain_settle)(struct smg_backend *self, const char *name, bool resumed);

	/* ---- destination side ----------------------------------------------- */
	/* Build a paused, empty skeleton (every frame reads as zero; memory
	 * is populated as pages arrive) from the destination's build: the
	 * sender's config supplies only allow-listed fields (name, memory,
	 * vCPUs, guest type, ...) that must agree with the build; a field that
	 * would name a host resource, or that the build does not cover, fails
	 * with SMG_ERR_POLICY and the reason in build->why. SMG_ERR_EXISTS if
	 * the name is taken. */
	int (*domain_create)(struct smg_backend *self, const uint8_t *config, size_t len,
			     struct smg_vm_build *build, struct smg_domain_info *info);
	/* Write n frames from data (n * page_size bytes); zero_only writes
	 * zeros and ignores data. */
	int (*write_pages)(struct smg_backend *self, const uint64_t *pfns, size_t n,
			   const uint8_t *data, bool zero_only);
	/* After every write_pages of the migration (the engine waits for all
	 * data channels): xen ends its restore stream here, and the sim
	 * backend refuses pages after it. May take long (the engine keeps the
	 * peer's timeout at bay with PINGs meanwhile). */
	int (*restore_state)(struct smg_backend *self, const uint8_t *blob, size_t len);
	/* Mark the incoming domain as committed (it must survive the receiver
	 * dying from now on), then resume it. */
	int (*mark_committed)(struct smg_backend *self);
	int (*resume)(struct smg_backend *self);
	/* Resume a committed incoming domain whose receiver died between
	 * COMMIT and resume (resolve, on the destination). */
	int (*resume_committed)(struct smg_backend *self, const char *name);

	/* ---- optional: pause records (NULL when the backend's host resumes
	 * a domain whose sender died before COMMIT by itself, like the sim
	 * host's leases) ---------------------------------------------------- */
	/* Source, just before pause: record durably "paused for migration id,
	 * destination peer (the same token mark_commit gets), not committed".
	 * mark_commit later supersedes it; a clean abort or DONE removes it. */
	int (*mark_pause)(struct smg_backend *self, const char *id, const char *peer);
	/* resolve: a domain `name` left paused by a sender that died before
	 * COMMIT (its pause record, no COMMIT record). SMG_ERR_NOT_FOUND when
	 * there is none. Such a domain never ran anywhere else: resolve
	 * resumes it here (domain_settle(name, false)) without asking. */
	int (*paused_pending)(struct smg_backend *self, const char *name, char *id,
			      size_t id_len, char *peer, size_t peer_len);
};

struct smg_backend {
	const struct smg_backend_ops *ops;
};

/* Backend options: the host state directory (sim: where the sim host's
 * socket lives; xen: ignored) and free-form key=value extras. */
struct smg_backend_opts {
	const char *state_dir;
	const char *extra;
};

/* Open a backend by name ("sim", "xen"). */
int smg_backend_open(const char *name, const struct smg_backend_opts *opts,
		     struct smg_backend **out);
void smg_backend_close(struct smg_backend *be);

#endif
