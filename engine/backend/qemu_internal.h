/* The qemu backend's private header (docs/qemu.md): a running QEMU whose
 * guest RAM is a shared memory backend file. secmig maps that file and does
 * the RAM pre-copy itself, with exact dirty tracking by keyed per-page
 * digests; QEMU moves only its device state (x-ignore-shared) through a pipe
 * that secmig carries over the secure channel.
 *
 * Files, one job each: qemu.c (ops table, open/close), qemu_vm.c (the VM
 * definition and the plan's description), qemu_bind.c (the incoming VM
 * against the host definitions' build), qemu_qmp.c (QMP client),
 * qemu_ram.c (RAM mapping, digest dirty tracking), qemu_state.c (device
 * state through a pipe), qemu_launch.c (starting QEMU), qemu_vtpm.c (swtpm),
 * qemu_nic.c (tap, announce), qemu_guard.c (a crash guard process),
 * qemu_throttle.c (auto-converge), qemu_src.c / qemu_dst.c (the two sides),
 * qemu_admin.c (`secmig qemu`'s check and command line).
 * Only these files, tests and fuzzers include this header; `secmig qemu`
 * uses engine/engine.h. */
#ifndef SMG_QEMU_INTERNAL_H
#define SMG_QEMU_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "engine/backend.h"
#include "engine/engine.h"

struct json_object;
struct smg_announce;

#define SMG_QEMU_PAGE_SIZE  4096u
#define SMG_QEMU_MEM_MIN    (16ull << 20) /* 16 MiB */
#define SMG_QEMU_MEM_MAX    (1ull << 40)  /* 1 TiB */
#define SMG_QEMU_VCPUS_MAX  256u
#define SMG_QEMU_LINE_MAX   1024u /* one definition line */
#define SMG_QEMU_VALUE_MAX  512u  /* one value (a path, a kernel command line) */
#define SMG_QEMU_TOKEN_MAX  32u	  /* machine type, accel, NIC model */
#define SMG_QEMU_IFNAME_MAX 16u	  /* IFNAMSIZ */
#define SMG_QEMU_EXPORT_MAX 81u	  /* disk service export names: 1..80 */
#define SMG_QEMU_SUN_MAX    108u  /* sizeof(sockaddr_un.sun_path) */
#define SMG_QEMU_SUBDIR	    "qemu"

/* ---- the VM definition (qemu_vm.c) ---------------------------------------
 * Each host owns a definition per VM, STATE_DIR/qemu/NAME.vm: how this host
 * runs the VM (paths, tap, bridge, kernel). The source attaches to the QEMU
 * started from it; the destination starts the incoming QEMU from its own
 * copy, never from anything the sender says. The plan carries only a
 * description (name, memory, vCPUs, machine, NIC MACs and addresses, disk
 * count, vTPM, labels) that the destination matches against its own. */
enum smg_qemu_def_mode {
	SMG_QEMU_DEF_LOCAL = 0, /* this host's file: every key */
	SMG_QEMU_DEF_PLAN,	/* the sender's description: no host resource */
};

struct smg_qemu_nic {
	struct smg_nic id; /* MAC and addresses (announced after resume) */
	uint8_t prefix4[SMG_DOMAIN_IPS_MAX], prefix6[SMG_DOMAIN_IPS_MAX];
	char tap[SMG_QEMU_IFNAME_MAX];
	char bridge[SMG_QEMU_IFNAME_MAX];
	char model[SMG_QEMU_TOKEN_MAX];
};

struct smg_qemu_disk {
	char export_name[SMG_QEMU_EXPORT_MAX];
	char nbd[SMG_QEMU_SUN_MAX]; /* the disk service's NBD socket */
	bool shared;		    /* shared storage: nothing travels */
};

struct smg_qemu_vm {
	char name[SMG_DOMAIN_NAME_MAX];
	uint64_t mem_bytes;
	unsigned vcpus;
	char machine[SMG_QEMU_TOKEN_MAX];
	char accel[SMG_QEMU_TOKEN_MAX];
	char qemu[SMG_QEMU_VALUE_MAX];
	char kernel[SMG_QEMU_VALUE_MAX], initrd[SMG_QEMU_VALUE_MAX];
	char cmdline[SMG_QEMU_VALUE_MAX], firmware[SMG_QEMU_VALUE_MAX];
	char ram[SMG_QEMU_VALUE_MAX];	 /* memory-backend-file mem-path */
	char serial[SMG_QEMU_VALUE_MAX]; /* serial console log (appended) */
	unsigned n_nics, n_disks;
	struct smg_qemu_nic nics[SMG_DOMAIN_NICS_MAX];
	struct smg_qemu_disk disks[SMG_DOMAIN_DISKS_MAX];
	bool vtpm;
	unsigned n_labels;
	char labels[SMG_DOMAIN_LABELS_MAX][SMG_DOMAIN_LABEL_MAX];
};

/* Parse definition text (any bytes: the PLAN form comes from the network).
 * SMG_ERR_CONFIG with "line N: what" in err; in PLAN mode a key that would
 * name a host resource is SMG_ERR_POLICY. Fuzzed (fuzz_qemu_vm). */
int smg_qemu_vm_parse(const char *text, size_t len, enum smg_qemu_def_mode mode,
		      struct smg_qemu_vm *vm, char *err, size_t errlen);
/* Read and parse STATE_DIR/qemu/NAME.vm (refused if group/world writable). */
int smg_qemu_vm_load(const char *state_dir, const char *name, struct smg_qemu_vm *vm);
/* The plan's description of vm (malloc'd text). */
int smg_qemu_vm_describe(const struct smg_qemu_vm *vm, char **text, size_t *len);
/* Does this host's definition cover what the sender described? why gets
 * the first difference. */
int smg_qemu_vm_match(const struct smg_qemu_vm *local, const struct smg_qemu_vm *plan,
		      char *why, size_t whylen);
/* Bind this host's definition of an incoming VM to the build plan_check
 * made from the host definitions (qemu_bind.c): sizes, NICs (MAC,
 * addresses, bridge) and the disk service's names must agree, a vTPM
 * needs the definitions' `vtpm yes`; the
 * definitions' kernel, ramdisk, cmdline and firmware replace the .vm
 * file's. SMG_ERR_POLICY with the reason in b->why. */
int smg_qemu_vm_bind(struct smg_qemu_vm *vm, struct smg_vm_build *b);
/* STATE_DIR/qemu/NAME.SUFFIX (SMG_ERR_TOO_LONG past cap). */
int smg_qemu_path(const char *state_dir, const char *name, const char *suffix, char *out,
		  size_t cap);

/* ---- QMP client (qemu_qmp.c) ---------------------------------------------- */
#define SMG_QMP_LINE_MAX   (1u << 20) /* one JSON message from QEMU */
#define SMG_QMP_TIMEOUT_MS 30000u

enum smg_qmp_kind {
	SMG_QMP_GREETING = 1,
	SMG_QMP_RETURN,
	SMG_QMP_ERROR,
	SMG_QMP_EVENT,
};

/* One parsed message; obj is owned (json_object_put). */
struct smg_qmp_msg {
	enum smg_qmp_kind kind;
	struct json_object *obj;
	struct json_object *ret; /* RETURN: the "return" member (borrowed) */
	int64_t id;		 /* RETURN/ERROR: our request id, -1 if none */
	char error[256];	 /* ERROR: class and description */
	char event[64];		 /* EVENT: its name */
};

/* Parse one line QEMU sent (untrusted bytes; fuzzed: fuzz_qemu_qmp). */
int smg_qmp_parse(const char *line, size_t len, struct smg_qmp_msg *m);
void smg_qmp_msg_free(struct smg_qmp_msg *m);

struct smg_qmp;
/* Connect to QEMU's QMP socket (retrying until timeout_ms), check the
 * peer runs as root or as us, read the greeting, leave negotiation mode. */
int smg_qmp_open(const char *path, unsigned timeout_ms, struct smg_qmp **out);
void smg_qmp_close(struct smg_qmp *q);
/* Something accepts connections on path: a QEMU runs that VM here. */
bool smg_qmp_alive(const char *path);
/* The server's pid (SO_PEERCRED): the QEMU process. */
pid_t smg_qmp_pid(const struct smg_qmp *q);
/* Run one command: args (consumed, may be NULL) and an fd to pass with
 * SCM_RIGHTS (-1: none). *ret (may be NULL) gets a new reference to the
 * "return" value. QEMU's error reply is SMG_ERR_BACKEND, logged. */
int smg_qmp_call(struct smg_qmp *q, const char *cmd, struct json_object *args, int fd,
		 unsigned timeout_ms, struct json_object **ret);
/* Send a command without waiting for its reply (see smg_qmp_wait_reply). */
int smg_qmp_send(struct smg_qmp *q, const char *cmd, struct json_object *args,
		 int64_t *id);
/* Poll-friendly: the socket, and whether a complete line is buffered. */
int smg_qmp_fd(const struct smg_qmp *q);
/* Read what is available; if the reply to id has arrived, *done = true. */
int smg_qmp_pump(struct smg_qmp *q, int64_t id, bool *done, struct json_object **ret);
/* query-migrate until completed (SMG_OK) or failed/cancelled. */
int smg_qmp_wait_migration(struct smg_qmp *q, unsigned timeout_ms, char *status,
			   size_t cap);
/* query-status' "status" string ("running", "paused", "postmigrate"...). */
int smg_qmp_status(struct smg_qmp *q, char *status, size_t cap);

/* ---- guest RAM and exact dirty tracking (qemu_ram.c) ----------------------
 * Each page's digest is a keyed UMAC-128 tag (nettle) of the copy that was
 * last *sent*, under a random key made per migration and wiped after: a
 * guest that never sees the key or a tag cannot make a changed page keep
 * its tag. A scan tags every page and reports those whose tag differs from
 * the sent copy's (or that were never sent); the engine's final scan after
 * `stop` therefore leaves the destination with exactly the paused memory. */
#define SMG_QEMU_TAG_LEN  16u
#define SMG_QEMU_TAG_CTXS 32u /* hashing contexts: channels + the scanner */

struct smg_qemu_tagger; /* UMAC contexts, in sodium_malloc'd memory */

struct smg_qemu_ram {
	int fd;
	uint8_t *map;
	uint64_t size, pages;
	bool writable;
	/* tracking (source) */
	struct smg_qemu_tagger *tg;
	uint8_t (*sent)[SMG_QEMU_TAG_LEN]; /* tag of the copy last sent */
	uint64_t *have;			   /* bit: sent[] is valid */
	uint64_t *data;			   /* bit: backed (not a hole) at the last look */
	uint8_t zero_tag[SMG_QEMU_TAG_LEN];
	uint64_t scans, scan_ns, scan_bytes; /* what scanning cost */
	/* destination */
	uint64_t *written; /* bit: the page holds data we wrote */
};

/* Map a RAM file of exactly size bytes; create: a new file (O_EXCL, 0600)
 * of that size, all holes. */
int smg_qemu_ram_open(const char *path, uint64_t size, bool writable, bool create,
		      struct smg_qemu_ram *r);
void smg_qemu_ram_close(struct smg_qemu_ram *r);
/* The backed pages (not holes) now, as bits in bitmap, and their count. */
int smg_qemu_ram_populated(struct smg_qemu_ram *r, uint64_t *bitmap, uint64_t *count);
/* Tracking starts with every hole taken as sent (zero), since the
 * destination starts all zero: the first round needs only the backed pages. */
int smg_qemu_ram_track_start(struct smg_qemu_ram *r);
void smg_qemu_ram_track_stop(struct smg_qemu_ram *r);
/* Copy n pages into out and remember each copy's tag (thread-safe on
 * disjoint page sets). */
int smg_qemu_ram_read(struct smg_qemu_ram *r, const uint64_t *pfns, size_t n,
		      uint8_t *out);
/* OR into bitmap every page that differs from its sent copy; *dirty = how
 * many bits were set. threads: how many hash at once (1 while the guest
 * runs and needs the CPUs; all of them once it is stopped). */
#define SMG_QEMU_SCAN_THREADS_MAX 8u
int smg_qemu_ram_scan(struct smg_qemu_ram *r, uint64_t *bitmap, uint64_t *dirty,
		      unsigned threads);
int smg_qemu_ram_write(struct smg_qemu_ram *r, const uint64_t *pfns, size_t n,
		       const uint8_t *data, bool zero_only);

/* ---- device state (qemu_state.c) ------------------------------------------
 * Blob = "SMGQ" | u8 version 1 | u8 codec (0 raw, 1 zstd) | u16 0 |
 * u32 raw length | payload: QEMU's own migration stream without the shared
 * RAM, compressed (ROM images and zero-filled device RAM shrink ~4x). */
#define SMG_QEMU_STATE_MAGIC   "SMGQ"
#define SMG_QEMU_STATE_HDR_LEN 12u
#define SMG_QEMU_STATE_RAW_MAX (64u << 20) /* QEMU's stream, uncompressed */

/* Before the pause, off the downtime: every migration capability off but
 * x-ignore-shared, no TLS, and a pipe's write end handed to QEMU (getfd);
 * *rd is its read end. */
int smg_qemu_state_prepare(struct smg_qmp *q, int *rd);
/* Stop must have happened: run `migrate` into the prepared pipe (rd, which
 * is closed; -1: prepare now) and collect it. */
int smg_qemu_state_save(struct smg_qmp *q, int rd, uint8_t **blob, size_t *len);
/* QEMU waits in -incoming defer: feed it the stream and wait for it. */
int smg_qemu_state_load(struct smg_qmp *q, const uint8_t *raw, size_t len);
int smg_qemu_state_encode(const uint8_t *raw, size_t len, uint8_t **blob, size_t *blen);
/* Bounded decode of an untrusted blob (fuzzed: fuzz_qemu_state). */
int smg_qemu_state_decode(const uint8_t *blob, size_t len, uint8_t **raw, size_t *rawlen);

/* ---- launching QEMU and swtpm (qemu_launch.c, qemu_vtpm.c) --------------- */
struct smg_qemu_proc {
	pid_t pid;
	int pidfd;
};
/* The argv QEMU is started with for vm (NULL-terminated, malloc'd strings
 * in a malloc'd array; smg_qemu_argv_free). */
int smg_qemu_argv(const struct smg_qemu_vm *vm, const char *state_dir, bool incoming,
		  char ***argv);
void smg_qemu_argv_free(char **argv);
/* Start QEMU (own session, detached stdio: its log is STATE_DIR/qemu/NAME.log)
 * and wait until its QMP socket answers. */
int smg_qemu_launch(const struct smg_qemu_vm *vm, const char *state_dir, bool incoming,
		    struct smg_qemu_proc *p, struct smg_qmp **qmp);
/* Start argv[0] detached (own session, init its parent), stdin from
 * /dev/null, stdout and stderr appended to log_path, no other descriptor. */
int smg_qemu_spawn(char *const *argv, const char *log_path, struct smg_qemu_proc *p);
bool smg_qemu_proc_exited(const struct smg_qemu_proc *p);
/* A pidfd for a process we did not start (the source's QEMU). */
int smg_qemu_proc_attach(pid_t pid, struct smg_qemu_proc *p);
/* Wait for a process to exit (pidfd readable), SIGKILL after timeout_ms. */
int smg_qemu_proc_end(struct smg_qemu_proc *p, unsigned timeout_ms);
void smg_qemu_proc_close(struct smg_qemu_proc *p);

/* swtpm for vm: state in STATE_DIR/qemu/NAME.tpm/, control socket
 * STATE_DIR/qemu/NAME.tpm.sock; fresh = wipe any state first (incoming). */
int smg_qemu_vtpm_start(const char *state_dir, const char *name, bool fresh,
			struct smg_qemu_proc *p);
/* Remove the vTPM's state files (the VM left this host: its secrets go). */
void smg_qemu_vtpm_wipe(const char *state_dir, const char *name);

/* ---- NIC (qemu_nic.c) ----------------------------------------------------- */
/* A persistent tap on bridge, link down (the destination before resume). */
int smg_qemu_tap_create(const char *tap, const char *bridge);
int smg_qemu_tap_set(const char *tap, bool up);
int smg_qemu_tap_delete(const char *tap);
/* After resume: QEMU's announce-self (RARP through the NIC, so every
 * bridge learns the new port) and secmig's own RARP/GARP/NA on the bridge
 * for the VM's addresses (engine/announce.c). *ann: join it later. */
int smg_qemu_announce(struct smg_qmp *q, const struct smg_qemu_vm *vm,
		      struct smg_announce **ann);

/* ---- crash guard (qemu_guard.c) -------------------------------------------
 * A small process forked per migration that outlives a sender or receiver
 * killed mid-way and puts things right, as the sim host's leases do:
 * source: unless COMMIT was recorded, SIGCONT, tap up, `cont` (the VM runs
 * on); destination: unless the engine's outcome record says committed,
 * kill the incoming QEMU and swtpm, remove the tap and the RAM file. It
 * only uses async-signal-safe calls (it is forked from a threaded process). */
struct smg_qemu_guard_plan {
	bool dest;
	char qmp[SMG_QEMU_SUN_MAX];
	char commit_rec[SMG_QEMU_VALUE_MAX];   /* source: COMMIT record */
	char outcomes_dir[SMG_QEMU_VALUE_MAX]; /* destination: STATE_DIR/outcomes */
	char ram[SMG_QEMU_VALUE_MAX];	       /* destination: removed */
	char tpm_dir[SMG_QEMU_VALUE_MAX];      /* destination: wiped */
	unsigned n_taps;
	char taps[SMG_DOMAIN_NICS_MAX][SMG_QEMU_IFNAME_MAX];
};
struct smg_qemu_guard {
	pid_t pid;
	int sock;
};
int smg_qemu_guard_start(const struct smg_qemu_guard_plan *plan,
			 struct smg_qemu_guard *g);
/* Hand the guard a process to SIGCONT (source) or SIGKILL (destination). */
int smg_qemu_guard_watch(struct smg_qemu_guard *g, int pidfd);
/* Destination: the migration id, once the engine recorded it. */
int smg_qemu_guard_id(struct smg_qemu_guard *g, const char *id);
/* Stand down: 'c' committed (leave everything), 'x' nothing left to do. */
void smg_qemu_guard_stop(struct smg_qemu_guard *g, bool committed);

/* ---- auto-converge (qemu_throttle.c): SIGSTOP/SIGCONT duty cycle -------- */
struct smg_qemu_throttle {
	pthread_t tid;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int pidfd;
	unsigned pct;
	bool running, quit;
};
int smg_qemu_throttle_set(struct smg_qemu_throttle *t, int pidfd, unsigned pct);
void smg_qemu_throttle_stop(struct smg_qemu_throttle *t);

/* ---- the backend (qemu.c, qemu_src.c, qemu_dst.c) ------------------------- */
struct qemu_backend {
	struct smg_backend be;
	char state_dir[SMG_QEMU_VALUE_MAX];
	struct smg_qemu_vm vm;
	char *config; /* the plan's description */
	size_t config_len;
	struct smg_qmp *qmp;
	struct smg_qemu_proc qemu, swtpm;
	struct smg_qemu_ram ram;
	bool have_ram;
	struct smg_qemu_guard guard;
	struct smg_qemu_throttle thr;
	bool thr_init;
	/* source */
	bool attached, tracking, paused, committed, taps_down;
	uint8_t *state;
	size_t state_len;
	int state_err;
	int state_rd;	 /* the prepared pipe's read end (smg_qemu_state_prepare) */
	pthread_t saver; /* takes the device state while the final scan runs */
	bool saving;
	/* destination */
	bool is_dst, launched, restored, dst_committed, resumed;
	atomic_bool launching; /* write_pages runs on every data channel */
	pthread_t launcher;
	pthread_mutex_t launch_lock;
	int launch_err;
	bool taps_made[SMG_DOMAIN_NICS_MAX];
	struct smg_announce *ann;
	pthread_t announcer;
	bool announcing;
	uint64_t t_created_ms;
};

#define QEMU_SELF(b) ((struct qemu_backend *)(b))

int smg_qemu_src_open(struct smg_backend *self, const char *name,
		      struct smg_domain_info *info);
int smg_qemu_src_populated(struct smg_backend *self, uint64_t *bitmap, uint64_t *count);
int smg_qemu_src_logdirty_enable(struct smg_backend *self);
int smg_qemu_src_logdirty_peek_clear(struct smg_backend *self, uint64_t *bitmap,
				     uint64_t *dirty);
int smg_qemu_src_logdirty_disable(struct smg_backend *self);
int smg_qemu_src_read_pages(struct smg_backend *self, const uint64_t *pfns, size_t n,
			    uint8_t *out);
int smg_qemu_src_pause(struct smg_backend *self);
int smg_qemu_src_unpause(struct smg_backend *self);
int smg_qemu_src_throttle(struct smg_backend *self, unsigned pct);
int smg_qemu_src_save_state(struct smg_backend *self, uint8_t **blob, size_t *len);
int smg_qemu_src_mark_commit(struct smg_backend *self, const char *id, const char *peer);
int smg_qemu_src_destroy(struct qemu_backend *q);
int smg_qemu_src_pending(struct smg_backend *self, const char *name, char *id,
			 size_t id_len, char *peer, size_t peer_len);
int smg_qemu_src_settle(struct smg_backend *self, const char *name, bool resumed);
void smg_qemu_src_close(struct qemu_backend *q);

int smg_qemu_dst_create(struct smg_backend *self, const uint8_t *config, size_t len,
			struct smg_vm_build *build, struct smg_domain_info *info);
int smg_qemu_dst_write_pages(struct smg_backend *self, const uint64_t *pfns, size_t n,
			     const uint8_t *data, bool zero_only);
int smg_qemu_dst_restore_state(struct smg_backend *self, const uint8_t *blob, size_t len);
int smg_qemu_dst_mark_committed(struct smg_backend *self);
int smg_qemu_dst_resume(struct smg_backend *self);
int smg_qemu_dst_destroy(struct qemu_backend *q);
int smg_qemu_dst_resume_committed(struct smg_backend *self, const char *name);
void smg_qemu_dst_close(struct qemu_backend *q);

/* Shared by both sides and `secmig qemu`: the VM is gone from this host
 * for good (after DONE, or settled elsewhere): quit QEMU, remove its taps,
 * RAM file and vTPM state. */
int smg_qemu_teardown(const char *state_dir, const struct smg_qemu_vm *vm,
		      struct smg_qmp *q, struct smg_qemu_proc *p);

/* `secmig qemu`'s entry points (start, stop, status, name check, the
 * definition check and the command line) are in engine/engine.h. */

#endif
