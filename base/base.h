/* The shared base every module builds on: one error space, the bounded
 * reader/writer for untrusted bytes, explicit endian helpers, logging and
 * the Merkle construction of memory and disks. */
#ifndef SMG_BASE_H
#define SMG_BASE_H

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- errors: one negative space, like OpenSSH's SSH_ERR_* ------------- */
enum smg_err {
	SMG_OK = 0,
	SMG_ERR_INTERNAL = -1,
	SMG_ERR_NOMEM = -2,
	SMG_ERR_INVAL = -3,	/* bad argument from our own caller */
	SMG_ERR_SYS = -4,	/* a system call failed; errno is kept */
	SMG_ERR_TRUNCATED = -5, /* input ended before a field did */
	SMG_ERR_TOO_LONG = -6,	/* a length exceeds its protocol cap */
	SMG_ERR_TRAILING = -7,	/* bytes left over after a message */
	SMG_ERR_NOSPACE = -8,	/* writer buffer too small */
	SMG_ERR_EOF = -9,	/* peer closed the connection */
	SMG_ERR_TIMEOUT = -10,
	SMG_ERR_PROTO = -11, /* peer broke the protocol */
	SMG_ERR_STATE = -12, /* message not valid in this state */
	SMG_ERR_UNKNOWN_TYPE = -13,
	SMG_ERR_DECRYPT = -14, /* AEAD tag check failed */
	SMG_ERR_CUT = -15,     /* stream ended without a FINAL frame */
	SMG_ERR_AFTER_FINAL = -16,
	SMG_ERR_AUTH = -17, /* peer failed to prove its identity */
	SMG_ERR_UNKNOWN_PEER = -18,
	SMG_ERR_BAD_SIG = -19,
	SMG_ERR_VERSION = -20, /* no common protocol version */
	SMG_ERR_DOWNGRADE = -21,
	SMG_ERR_TPM = -22,
	SMG_ERR_ATTEST = -23,	 /* quote or PCR evidence rejected */
	SMG_ERR_POLICY = -24,	 /* ACL or placement denies */
	SMG_ERR_INTEGRITY = -25, /* manifest or digest mismatch */
	SMG_ERR_BACKEND = -26,
	SMG_ERR_NOT_CONVERGED = -27,
	SMG_ERR_IN_DOUBT = -28,
	SMG_ERR_ABORTED = -29, /* peer sent ABORT */
	SMG_ERR_EXISTS = -30,
	SMG_ERR_NOT_FOUND = -31,
	SMG_ERR_UNSUPPORTED = -32,
	SMG_ERR_BUSY = -33, /* a concurrency cap was reached */
	SMG_ERR_CONFIG = -34,
	SMG_ERR_CRYPTO = -35, /* a local crypto primitive failed */
	SMG_ERR_PERM = -36,   /* unsafe file permissions */
	SMG_ERR_STORAGE = -37,
	SMG_ERR_NBD = -38,
	SMG_ERR_REPLAY = -39,
	SMG_ERR_FAULT = -40,	     /* a named fault-injection point fired */
	SMG_ERR_INTERRUPTED = -41,   /* another thread of the session ended a wait */
	SMG_ERR_CANCELLED = -42,     /* the operator cancelled (signal, secmig cancel) */
	SMG_ERR_CAPACITY = -43,	     /* no room: memory, too many migrations */
	SMG_ERR_DOMAIN_EXISTS = -44, /* a domain of that name exists there */
	SMG_ERR_NO_BACKEND = -45,    /* the hypervisor backend is not available */
	SMG_ERR_DISK_FULL = -46,     /* no space left on a disk (ENOSPC, EDQUOT) */
	SMG_ERR_MAX_ = -47,
};

const char *smg_strerror(int err);
/* Record errno (or a negative -errno from liburing) and return SMG_ERR_SYS. */
int smg_err_sys(int errnum);
/* errno saved by the last smg_err_sys() on this thread. */
int smg_err_errno(void);

/* ---- explicit big-endian load/store; never cast a buffer to a struct -- */
static inline uint16_t smg_load_be16(const uint8_t *p)
{
	return (uint16_t)((uint16_t)p[0] << 8 | p[1]);
}
static inline uint32_t smg_load_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline uint64_t smg_load_be64(const uint8_t *p)
{
	return (uint64_t)smg_load_be32(p) << 32 | smg_load_be32(p + 4);
}
static inline void smg_store_be16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}
static inline void smg_store_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}
static inline void smg_store_be64(uint8_t *p, uint64_t v)
{
	smg_store_be32(p, (uint32_t)(v >> 32));
	smg_store_be32(p + 4, (uint32_t)v);
}
/* little-endian: Xen's migration stream and libxc's records */
static inline uint32_t smg_load_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}
static inline uint64_t smg_load_le64(const uint8_t *p)
{
	return (uint64_t)smg_load_le32(p + 4) << 32 | smg_load_le32(p);
}
static inline void smg_store_le32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}
static inline void smg_store_le64(uint8_t *p, uint64_t v)
{
	smg_store_le32(p, (uint32_t)v);
	smg_store_le32(p + 4, (uint32_t)(v >> 32));
}

/* ---- bounded reader over untrusted bytes (OpenSSH sshbuf in spirit) ---- */
struct smg_rd {
	const uint8_t *buf;
	size_t len;
	size_t off;
};

void smg_rd_init(struct smg_rd *rd, const void *buf, size_t len);
size_t smg_rd_left(const struct smg_rd *rd);
int smg_rd_u8(struct smg_rd *rd, uint8_t *v);
int smg_rd_u16(struct smg_rd *rd, uint16_t *v);
int smg_rd_u32(struct smg_rd *rd, uint32_t *v);
int smg_rd_u64(struct smg_rd *rd, uint64_t *v);
/* Copy exactly n bytes out. */
int smg_rd_bytes(struct smg_rd *rd, void *out, size_t n);
/* Borrow n bytes in place (valid as long as the underlying buffer). */
int smg_rd_ptr(struct smg_rd *rd, size_t n, const uint8_t **p);
int smg_rd_skip(struct smg_rd *rd, size_t n);
/* A u16/u32 length prefix then that many bytes, borrowed; a prefix above
 * max is SMG_ERR_TOO_LONG before anything is touched. */
int smg_rd_string16(struct smg_rd *rd, size_t max, const uint8_t **p, size_t *n);
int smg_rd_string32(struct smg_rd *rd, size_t max, const uint8_t **p, size_t *n);
/* SMG_ERR_TRAILING unless every byte was consumed. */
int smg_rd_end(const struct smg_rd *rd);

struct smg_wr {
	uint8_t *buf;
	size_t cap;
	size_t off;
};

void smg_wr_init(struct smg_wr *wr, void *buf, size_t cap);
int smg_wr_u8(struct smg_wr *wr, uint8_t v);
int smg_wr_u16(struct smg_wr *wr, uint16_t v);
int smg_wr_u32(struct smg_wr *wr, uint32_t v);
int smg_wr_u64(struct smg_wr *wr, uint64_t v);
int smg_wr_bytes(struct smg_wr *wr, const void *p, size_t n);
/* Reserve n bytes and return where they start, for in-place writes. */
int smg_wr_reserve(struct smg_wr *wr, size_t n, uint8_t **p);
int smg_wr_string16(struct smg_wr *wr, const void *p, size_t n, size_t max);
int smg_wr_string32(struct smg_wr *wr, const void *p, size_t n, size_t max);

/* ---- service manager (base/notify.c) --------------------------------- */
/* Tell systemd the service is ready (READY=1, STATUS=status) once it
 * listens, and when the unit sets WatchdogSec start a thread that sends
 * WATCHDOG=1 every half period. Does nothing outside systemd. */
void smg_notify_ready(const char *status);
/* Any other state line(s), e.g. "RELOADING=1" (sd_notify(3)). */
void smg_notify_send(const char *state);

/* ---- logging ------------------------------------------------------------ */
enum smg_log_level {
	SMG_LOG_ERROR = 0,
	SMG_LOG_WARN = 1,
	SMG_LOG_INFO = 2,
	SMG_LOG_DEBUG = 3,
};

void smg_log_set_level(enum smg_log_level lvl);
enum smg_log_level smg_log_get_level(void);
/* One JSON object per line on stderr instead of text. */
void smg_log_set_json(bool on);
/* Redirect log output (tests); NULL restores stderr. */
void smg_log_set_stream(void *file);

/* The migration a thread works on: every line it logs carries these (text:
 * "migration=ID peer=P domain=D"; journald: SECMIG_MIGRATION_ID,
 * SECMIG_PEER, SECMIG_DOMAIN). Thread-local; NULL or "" leaves a field
 * unset; smg_log_ctx_clear() when the thread is done with it. */
#define SMG_LOG_CTX_ID_MAX   33 /* 32 hex + NUL */
#define SMG_LOG_CTX_NAME_MAX 65
void smg_log_ctx_set(const char *migration_id, const char *peer, const char *domain);
void smg_log_ctx_clear(void);
/* pthread_create for a thread working on the caller's migration: the new
 * thread starts with the caller's log context. */
int smg_log_thread_create(pthread_t *t, void *(*fn)(void *), void *arg);
/* Where lines go: the journal (native protocol, structured fields) when
 * stderr is the stream systemd gave us ($JOURNAL_STREAM names its dev:ino,
 * systemd.exec(5)), else stderr. Decided on the first line; tests call it
 * again after changing the environment. */
void smg_log_detect_journal(void);

/* Per call site token bucket for messages a peer can trigger. */
struct smg_ratelimit {
	uint64_t window_start_ms;
	unsigned burst_used;
	unsigned suppressed;
};
#define SMG_LOG_RATE_BURST     10 /* messages per window per call site */
#define SMG_LOG_RATE_WINDOW_MS 5000

void smg_log_at(enum smg_log_level lvl, const char *file, int line,
		struct smg_ratelimit *rl, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

#define smg_log(lvl, ...) smg_log_at(lvl, __FILE__, __LINE__, NULL, __VA_ARGS__)
#define smg_err(...)	  smg_log(SMG_LOG_ERROR, __VA_ARGS__)
#define smg_warn(...)	  smg_log(SMG_LOG_WARN, __VA_ARGS__)
#define smg_info(...)	  smg_log(SMG_LOG_INFO, __VA_ARGS__)
#define smg_debug(...)	  smg_log(SMG_LOG_DEBUG, __VA_ARGS__)
/* For anything a remote peer can cause: rate-limited per call site. */
#define smg_peer_log(lvl, ...)                                              \
	do {                                                                \
		static struct smg_ratelimit smg_rl_;                        \
		smg_log_at(lvl, __FILE__, __LINE__, &smg_rl_, __VA_ARGS__); \
	} while (0)

/* A string a peer chose, fit for a log line or a JSON string: printable
 * ASCII verbatim, everything else (and '\\', '"') as \u00XX; truncated
 * to cap. */
void smg_log_escape(const char *in, char *out, size_t cap);

/* A decimal number with an optional K/M/G/T suffix (powers of 1024, an
 * optional trailing "B" or "iB"); SMG_ERR_INVAL on junk or overflow. */
int smg_parse_size(const char *s, uint64_t *out);
/* An unsigned decimal number: digits only (no sign, blank, base prefix or
 * suffix), at most max; SMG_ERR_INVAL otherwise. The one number parser for
 * what operators, files and peers write. */
int smg_parse_uint(const char *s, uint64_t max, uint64_t *out);

/* Hex (libsodium's codec): encode n bytes into out[2n + 1]; decode exactly
 * 2n lower-case digits of s[0..len) into out[n], else SMG_ERR_INVAL. */
void smg_hex_encode(const uint8_t *p, size_t n, char *out);
int smg_hex_decode(const char *s, size_t len, uint8_t *out, size_t n);

/* Monotonic clock in ms and ns. */
uint64_t smg_now_ms(void);
uint64_t smg_now_ns(void);

#define SMG_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* ---- Merkle digests of memory and disks (base/merkle*.c), DESIGN §6 -----
 * One construction for both (docs/engine.md, "Integrity"), SHA-256:
 *   leaf = H(0x00 || data)   node = H(0x01 || left || right)
 *   root = H(0x02 || be64 bytes || be32 leaf size || top)
 * An odd last node moves up as it is; the top of empty content is 32 zero
 * bytes. Thread-safe; on an internal failure a digest is all ones, which
 * matches no honest root (verification fails closed). */
#define SMG_MERKLE_LEN 32

void smg_merkle_hash_leaf(const void *p, size_t len, uint8_t out[SMG_MERKLE_LEN]);
void smg_merkle_hash_node(const uint8_t l[SMG_MERKLE_LEN],
			  const uint8_t r[SMG_MERKLE_LEN], uint8_t out[SMG_MERKLE_LEN]);
void smg_merkle_hash_root(const uint8_t top[SMG_MERKLE_LEN], uint64_t bytes,
			  uint32_t leaf_size, uint8_t out[SMG_MERKLE_LEN]);

/* A leaf hashed as its bytes arrive (zero-initialise; begin may be called
 * again for the next leaf; free once). end fails (SMG_ERR_CRYPTO, all-ones
 * digest) if anything since begin failed. */
struct smg_merkle_leaf {
	void *ctx;
	bool failed;
};
int smg_merkle_leaf_begin(struct smg_merkle_leaf *h);
void smg_merkle_leaf_update(struct smg_merkle_leaf *h, const void *p, size_t len);
void smg_merkle_leaf_zeros(struct smg_merkle_leaf *h, uint64_t n);
int smg_merkle_leaf_end(struct smg_merkle_leaf *h, uint8_t out[SMG_MERKLE_LEN]);
void smg_merkle_leaf_free(struct smg_merkle_leaf *h);

/* The tree, kept as leaves change: a root rehashes only the paths above
 * leaves set since the last one. new_bytes: `bytes` of content in leaves
 * of leaf_size (the last one may be shorter; 0 bytes: no leaf); new:
 * `leaves` whole leaves (memory pages). Both start as all-zero content.
 * set_* are safe from several threads on distinct leaves, also while a
 * root is being computed (the next root picks the change up). */
struct smg_merkle;
int smg_merkle_new_bytes(uint64_t bytes, uint32_t leaf_size, struct smg_merkle **out);
int smg_merkle_new(uint64_t leaves, uint32_t leaf_size, struct smg_merkle **out);
void smg_merkle_free(struct smg_merkle *m);
/* Leaf i = H(0x00 || data); len must be leaf i's length. */
void smg_merkle_set_leaf(struct smg_merkle *m, uint64_t i, const void *data, size_t len);
void smg_merkle_set_zero(struct smg_merkle *m, uint64_t i); /* its bytes all zero */
/* A leaf digest computed elsewhere (struct smg_merkle_leaf). */
void smg_merkle_set_digest(struct smg_merkle *m, uint64_t i,
			   const uint8_t digest[SMG_MERKLE_LEN]);
void smg_merkle_root(struct smg_merkle *m, uint8_t root[SMG_MERKLE_LEN]);

/* ---- line-oriented configuration text (base/lines.c) --------------------
 * The policy, host definitions, operators and domain configs are text, one
 * entry a line, '#' to the end of a line a comment. The reader hands out a
 * line at a time and counts them for the parser's errors, which name the
 * file and line ("NAME:LINE: what") or, for a config without a file name
 * (it travels in a plan), the line alone ("line LINE: what"). */
struct smg_lines {
	const char *text;
	size_t len, off;
	const char *name; /* NULL: errors say "line LINE: " (none at line 0) */
	unsigned line;	  /* the line last read, from 1; 0: the whole text */
	char *err;
	size_t err_len;
};
/* err (err_len bytes, may be NULL) is cleared. */
void smg_lines_init(struct smg_lines *l, const char *text, size_t len, const char *name,
		    char *err, size_t err_len);
/* The next line (at most max bytes) into buf (max + 1 bytes), its comment
 * cut: 1, or 0 after the last line; SMG_ERR_TOO_LONG for a line over max
 * bytes, SMG_ERR_INVAL for a NUL byte in it (the caller says which). */
int smg_lines_next(struct smg_lines *l, char *buf, size_t max);
/* The error at the current line into l->err; returns SMG_ERR_CONFIG. */
int smg_lines_err(struct smg_lines *l, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Split s in place at runs of the characters of seps: the number of words
 * (0: a blank line), or -1 when there are more than max. */
int smg_words_split(char *s, const char *seps, char **w, int max);
/* s without its leading blanks and tabs, nor trailing blanks, tabs or CR. */
char *smg_trim(char *s);
/* "key = value" in place: *k and *v trimmed; SMG_ERR_INVAL without '='. */
int smg_key_value(char *s, char **k, char **v);

/* ---- host definitions (base/hostdef.c, docs/hostdef.md) ----------------
 * What this host offers incoming VMs: a storage directory it owns, the
 * bridges VMs may join, capacity limits, and one block per VM (or glob of
 * VMs) naming who may bring it, its largest size, the NICs (MAC ranges and
 * IP prefixes) it may bring and the kernel/firmware this host boots it
 * with. Backend-generic: sim, xen, qemu and the disk service read it. */
#define SMG_HOSTDEF_FILE_MAX	 (256 * 1024)
#define SMG_HOSTDEF_LINE_MAX	 1024
#define SMG_HOSTDEF_VMS_MAX	 1024
#define SMG_HOSTDEF_NICS_MAX	 8
#define SMG_HOSTDEF_BRIDGES_MAX	 16
#define SMG_HOSTDEF_FROM_MAX	 16
#define SMG_HOSTDEF_PREFIXES_MAX 8
#define SMG_HOSTDEF_NAME_MAX	 64
#define SMG_HOSTDEF_IFNAME_MAX	 16 /* IFNAMSIZ */
#define SMG_HOSTDEF_PATH_MAX	 256
#define SMG_HOSTDEF_SIZE_MAX	 (1ull << 50)
#define SMG_HOSTDEF_VCPUS_MAX	 4096
#define SMG_HOSTDEF_COUNT_MAX	 4096
/* Defaults of the limit lines: a receiver that says nothing accepts small
 * VMs, one at a time per peer. */
#define SMG_HOSTDEF_VM_MEMORY_DEFAULT	 (16ull << 30)
#define SMG_HOSTDEF_VM_DISK_DEFAULT	 (1ull << 40)
#define SMG_HOSTDEF_VM_VCPUS_DEFAULT	 16
#define SMG_HOSTDEF_VM_DISKS_DEFAULT	 8
#define SMG_HOSTDEF_TOTAL_MEMORY_DEFAULT (32ull << 30)
#define SMG_HOSTDEF_TOTAL_DISK_DEFAULT	 (4ull << 40)
#define SMG_HOSTDEF_SESSIONS_DEFAULT	 4
#define SMG_HOSTDEF_TYPE_PV		 (1u << 0)
#define SMG_HOSTDEF_TYPE_PVH		 (1u << 1)
#define SMG_HOSTDEF_TYPE_HVM		 (1u << 2)

struct smg_hostdef_limits {
	uint64_t memory, disk; /* bytes; disk: one disk (vm) or the sum */
	unsigned vcpus, disks, nics, sessions;
};

struct smg_hostdef_prefix {
	uint8_t family; /* 4 or 6 */
	uint8_t len;
	uint8_t addr[16];
};

/* A NIC a VM may bring: its MAC must lie in mac/mac_bits, each of its
 * addresses in one of the prefixes; it joins `bridge`. */
struct smg_hostdef_nic {
	char bridge[SMG_HOSTDEF_IFNAME_MAX];
	bool has_mac;
	uint8_t mac[6];
	uint8_t mac_bits;
	unsigned n_prefix;
	struct smg_hostdef_prefix prefix[SMG_HOSTDEF_PREFIXES_MAX];
};

struct smg_hostdef_vm {
	char pattern[SMG_HOSTDEF_NAME_MAX]; /* fnmatch glob on the domain name */
	unsigned n_from;		    /* 0: any peer the policy lets send */
	char from[SMG_HOSTDEF_FROM_MAX][SMG_HOSTDEF_NAME_MAX];
	struct smg_hostdef_limits max; /* 0 fields: the host's "limit vm" */
	unsigned n_nics;
	struct smg_hostdef_nic nics[SMG_HOSTDEF_NICS_MAX];
	char kernel[SMG_HOSTDEF_PATH_MAX], ramdisk[SMG_HOSTDEF_PATH_MAX];
	char cmdline[SMG_HOSTDEF_PATH_MAX], firmware[SMG_HOSTDEF_PATH_MAX];
	unsigned types; /* SMG_HOSTDEF_TYPE_* (default pvh, hvm) */
	bool vtpm;	/* this host gives it a vTPM (its own swtpm) */
};

struct smg_hostdef {
	char storage[SMG_HOSTDEF_PATH_MAX]; /* incoming disk images, our names */
	unsigned n_bridges;
	char bridges[SMG_HOSTDEF_BRIDGES_MAX][SMG_HOSTDEF_IFNAME_MAX];
	struct smg_hostdef_limits vm;	 /* largest single VM */
	struct smg_hostdef_limits total; /* every incoming VM at once */
	struct smg_hostdef_limits peer;	 /* per source peer at once */
	unsigned n_vms;
	struct smg_hostdef_vm *vms;
};

/* Parse (pure, fuzzed: fuzz_hostdef). SMG_ERR_CONFIG with "NAME:LINE: what". */
int smg_hostdef_parse(const char *text, size_t len, const char *name,
		      struct smg_hostdef **out, char *err, size_t err_len);
/* Load a file: refused (SMG_ERR_PERM) if group/world-writable. */
int smg_hostdef_load(const char *path, struct smg_hostdef **out, char *err,
		     size_t err_len);
void smg_hostdef_free(struct smg_hostdef *d);
/* First vm block whose pattern matches domain and that lets peer bring it. */
const struct smg_hostdef_vm *smg_hostdef_find(const struct smg_hostdef *d,
					      const char *domain, const char *peer);
bool smg_hostdef_nic_mac_ok(const struct smg_hostdef_nic *n, const uint8_t mac[6]);
bool smg_hostdef_nic_ip_ok(const struct smg_hostdef_nic *n, int family,
			   const uint8_t *addr);

/* The one validator for names that become paths or interface names
 * (domains, disks, netns, interfaces, hostdef entries): 1..max_len bytes
 * of [A-Za-z0-9._-], not starting with '.' or '-'. smg_name_ok: a C string
 * that fits a buffer of max bytes (1..max-1 characters). */
bool smg_name_valid(const char *s, size_t len, size_t max_len);
bool smg_name_ok(const char *s, size_t max);
/* "52:54:00:12:34:56" (exactly). */
int smg_mac_parse(const char *s, uint8_t mac[6]);
/* The same, for a NIC's own address: unicast and not all zeros. */
int smg_mac_parse_nic(const char *s, uint8_t mac[6]);

/* Files this host trusts (keys, peers, policy, definitions): a regular
 * file, owned by us or root, not writable by group or others, else
 * SMG_ERR_PERM with the reason in err. Read whole, at most cap bytes. */
int smg_file_check_private(int fd, const char *path, char *err, size_t err_len);
int smg_file_read_private(const char *path, size_t cap, char **text, size_t *len,
			  char *err, size_t err_len);
/* A local socket's peer (SO_PEERCRED) runs as root or as us: the only
 * clients a root-only service (sim host, disk service, NBD) serves. */
bool smg_peer_is_owner(int fd);

/* ---- local services' sockets (base/unix.c) ---------------------------- */
/* Listen on a private unix socket at path (type SOCK_STREAM or
 * SOCK_SEQPACKET), bound under umask 077; a stale socket file is replaced,
 * one another instance answers on is not: SMG_ERR_EXISTS. */
int smg_unix_listen(const char *path, int type, int backlog, int *out);
/* A client: connect to DIR/name when name is given and dir_or_sock is a
 * directory, else to the socket path itself. */
int smg_unix_connect(const char *dir_or_sock, const char *name, int type, int *out);
/* Block SIGTERM and SIGINT in this thread (and in those it starts from
 * now on) and return a signalfd that reads them. */
int smg_stop_signals(int *sfd);
/* Accept on lfd until sfd (smg_stop_signals) is readable. A client of
 * root or our user goes to on_conn, which owns its fd; any other is
 * refused with a warning naming `what`. */
void smg_unix_serve(int lfd, int sfd, const char *what,
		    void (*on_conn)(void *arg, int fd), void *arg);

#endif
