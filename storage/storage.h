/* Disk images, WAIO outsourcing, the DBT baseline and the NBD front end.
 *
 * Layers, bottom up:
 *   smg_image   a raw image file or block device, I/O through io_uring,
 *               sparse-aware (SEEK_DATA/SEEK_HOLE, hole punching);
 *   smg_vdisk    the guest's view of one disk: every guest read/write goes
 *               through it (NBD server, sim backend); during a migration it
 *               routes I/O per mode (WAIO: surrogate store; DBT: dirty bitmap);
 *   smg_stg_src / smg_stg_dst
 *               the migration of one disk: the source produces bulk-frame
 *               payloads of chunk records per phase, the destination applies
 *               them to a new image; both compute the same Merkle digest;
 *   smg_nbd_*   NBD server on a unix socket over an smg_vdisk;
 *   smg_trace_* / smg_wl_*
 *               MSR Cambridge trace parsing and the synthetic guest workloads. */
#ifndef SMG_STORAGE_H
#define SMG_STORAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SMG_STG_SECTOR 512u  /* surrogate coverage granularity */
#define SMG_STG_BLOCK  4096u /* hole / zero detection granularity */
/* The unit of write tracking, transfer and hashing: 64 KiB (docs/storage.md
 * "Why 64 KiB"), larger only for disks past SMG_STG_CHUNKS_TARGET of them. */
#define SMG_STG_CHUNK_DEFAULT (64u << 10)
#define SMG_STG_CHUNKS_TARGET (1u << 22)
#define SMG_STG_CHUNK_MIN     SMG_STG_BLOCK
#define SMG_STG_CHUNK_MAX     (64u << 20)
#define SMG_STG_DISK_MAX      (1ull << 50) /* 1 PiB: caps bitmap allocations */
#define SMG_STG_DIGEST_LEN    32u	   /* a Merkle root (SMG_MERKLE_LEN) */
#define SMG_STG_HOT_DEFAULT \
	16u /* WAIO: recent reads of a chunk before it is outsourced */

/* ---- images ---------------------------------------------------------------- */
struct smg_image;

enum {
	SMG_IMAGE_RDONLY = 1 << 0,
	/* create: a new file only (O_EXCL): never truncate an existing one
	 * (another VM's disk), never through a symlink */
	SMG_IMAGE_NEW = 1 << 2,
	/* O_DIRECT for aligned I/O (unaligned requests use a buffered fd): the
	 * guest and the migration reader then really meet at the device. */
	SMG_IMAGE_DIRECT = 1 << 1,
};

int smg_image_open(const char *path, unsigned flags, struct smg_image **out);
/* Create (or truncate) a sparse image of size bytes. */
int smg_image_create(const char *path, uint64_t size, unsigned flags,
		     struct smg_image **out);
void smg_image_close(struct smg_image *img);
uint64_t smg_image_size(const struct smg_image *img);
int smg_image_read(struct smg_image *img, void *buf, size_t len, uint64_t off);
int smg_image_write(struct smg_image *img, const void *buf, size_t len, uint64_t off);
/* Make [off, off+len) read as zeros, as a hole where the file system can. */
int smg_image_punch(struct smg_image *img, uint64_t off, uint64_t len);
int smg_image_flush(struct smg_image *img);
/* Start writing [off, off+len) back to the device now, without waiting
 * (sync_file_range WRITE), so a later flush has only the rest to wait for. */
void smg_image_writeback(struct smg_image *img, uint64_t off, uint64_t len);
/* First data extent at or after off: [*data, *end). *data == size: none. */
int smg_image_next_data(struct smg_image *img, uint64_t off, uint64_t *data,
			uint64_t *end);
/* Read [off, off+len) without reading holes (they are zero-filled). */
int smg_image_read_sparse(struct smg_image *img, void *buf, size_t len, uint64_t off);

/* ---- the guest's disk -------------------------------------------------------- */
enum smg_stg_mode {
	SMG_STG_MODE_WAIO = 0, /* default */
	SMG_STG_MODE_DBT = 1,
};

struct smg_vdisk_opts {
	const char *path;	   /* the original image */
	const char *surrogate_dir; /* WAIO surrogate store; NULL: the image's dir */
	/* The surrogate's file name in surrogate_dir, created O_EXCL (the disk
	 * service: ".NAME.surrogate", findable after a crash); NULL: a mkstemp
	 * name. */
	const char *surrogate_name;
	uint32_t chunk_size;	/* 0: smg_stg_chunk_for(size) */
	unsigned hot_threshold; /* 0: SMG_STG_HOT_DEFAULT */
	bool direct;		/* SMG_IMAGE_DIRECT on the original */
	/* WAIO's reader does not yield CPU or device to the guest: only to
	 * measure what yielding buys (bench_storage --waio-no-yield). */
	bool no_yield;
};

struct smg_vdisk;

/* SMG_STG_CHUNK_DEFAULT, doubled until the disk has at most
 * SMG_STG_CHUNKS_TARGET chunks (per-chunk state stays bounded). */
uint32_t smg_stg_chunk_for(uint64_t size);
int smg_vdisk_open(const struct smg_vdisk_opts *o, struct smg_vdisk **out);
void smg_vdisk_close(struct smg_vdisk *d);
uint64_t smg_vdisk_size(const struct smg_vdisk *d);
uint32_t smg_vdisk_chunk_size(const struct smg_vdisk *d);

/* Guest I/O (NBD server, sim backend). Blocks while the disk is paused. */
int smg_vdisk_read(struct smg_vdisk *d, void *buf, size_t len, uint64_t off);
int smg_vdisk_write(struct smg_vdisk *d, const void *buf, size_t len, uint64_t off);
int smg_vdisk_trim(struct smg_vdisk *d, uint64_t off, uint64_t len);
int smg_vdisk_flush(struct smg_vdisk *d);
/* Stop-and-copy: wait for in-flight guest I/O, hold new I/O until resume. */
void smg_vdisk_pause(struct smg_vdisk *d);
void smg_vdisk_resume(struct smg_vdisk *d);
/* For good: requests held in the gate and every later one fail with
 * SMG_ERR_ABORTED (NBD: EIO). Before an export ends under its clients. */
void smg_vdisk_fail_io(struct smg_vdisk *d);

/* Counters for tests and the benchmark. */
struct smg_vdisk_stats {
	uint64_t guest_reads, guest_writes;
	uint64_t surrogate_reads; /* served (partly) from the surrogate */
	uint64_t hot_copies;	  /* chunks outsourced for read popularity */
	uint64_t merged_back;	  /* bytes merged into the original on abort */
};
void smg_vdisk_get_stats(const struct smg_vdisk *d, struct smg_vdisk_stats *st);

/* ---- chunk records on the wire -------------------------------------------------
 * One bulk frame payload (fits SMG_FRAME_PAYLOAD_MAX):
 *   u8 version (1) | u8 phase | u16 count | u32 disk_id
 *   count x { u8 kind (1 data, 2 hole) | u64 offset | u32 len | data[len] if data }
 * all big-endian. A hole record carries no bytes: the destination punches it. */
#define SMG_STG_WIRE_VERSION 1
#define SMG_STG_FRAME_HDR    8u
#define SMG_STG_REC_HDR	     13u
#define SMG_STG_RECS_MAX     4096u
/* Zeros a destination hashes in flight per frame, for holes that cover
 * part of a chunk; beyond it a chunk is hashed from the image at digest
 * time. A frame of hole records thus costs its records, not the bytes
 * they claim (issue 13: one 3.3 KB frame of holes cost 220 ms of CPU). */
#define SMG_STG_ZERO_HASH_FRAME_MAX (8u << 20)
/* A chunk a round or FINAL frame changed in part is hashed again from the
 * image after the frame, up to this many times the frame's bytes (WAIO's
 * 4 KiB deltas of 64 KiB chunks: 16); the rest at digest time. */
#define SMG_STG_REHASH_RATIO 32u

enum smg_stg_phase {
	SMG_STG_PHASE_BULK = 1,	 /* one sequential pass over the original */
	SMG_STG_PHASE_ITER = 2,	 /* DBT dirty rounds / WAIO surrogate rounds */
	SMG_STG_PHASE_FINAL = 3, /* stop-and-copy: the disk is paused */
};

enum smg_stg_rec_kind {
	SMG_STG_REC_DATA = 1,
	SMG_STG_REC_HOLE = 2,
};

struct smg_stg_rec {
	uint8_t kind;
	uint64_t offset;
	uint32_t len;
	const uint8_t *data; /* DATA: len bytes, borrowed from the frame */
};

struct smg_stg_frame {
	uint8_t phase;
	uint32_t disk_id;
	uint16_t count;
	struct smg_stg_rec recs[SMG_STG_RECS_MAX];
};

/* Pure decoder over untrusted bytes: every field checked, nothing applied.
 * disk_size bounds offsets (0: unbounded, for the fuzzer). */
int smg_stg_frame_decode(const uint8_t *buf, size_t len, uint64_t disk_size,
			 struct smg_stg_frame *out);

/* ---- source side of one disk's migration ----------------------------------------- */
struct smg_stg_src;

struct smg_stg_src_opts {
	enum smg_stg_mode mode;
	uint32_t disk_id;
};

struct smg_stg_stats {
	uint64_t frames, records;
	uint64_t data_bytes, hole_bytes; /* disk bytes covered by each kind */
	uint64_t wire_bytes;		 /* frame payload bytes produced */
	uint64_t chunks_sent, chunks_resent;
	uint64_t zero_hashed; /* destination: bytes of holes hashed in flight */
	uint64_t yield_ns;    /* WAIO's reader: time left to the guest */
	uint64_t rehashed;    /* destination: bytes hashed again from the image
			       * after a frame changed their chunk in part */
};

/* Starts tracking: from here on guest writes go to the surrogate (WAIO) or
 * mark the dirty bitmap (DBT). One migration per disk at a time. */
int smg_stg_src_begin(struct smg_vdisk *d, const struct smg_stg_src_opts *o,
		      struct smg_stg_src **out);
/* Fill buf (cap >= SMG_STG_FRAME_HDR + SMG_STG_REC_HDR + SMG_STG_BLOCK) with
 * the next records of phase ph. *used == 0: the phase is done (ITER: this
 * round is done; the next call starts a new round). FINAL needs the disk
 * paused. Phases must not go backwards. */
int smg_stg_src_next(struct smg_stg_src *s, enum smg_stg_phase ph, uint8_t *buf,
		     size_t cap, size_t *used);
/* Chunks that an ITER or FINAL pass would send now (convergence input). */
uint64_t smg_stg_src_pending(const struct smg_stg_src *s);
/* The disk's delta for the stop rule: what a FINAL pass would carry now. */
struct smg_stg_pending {
	uint64_t chunks;    /* chunks dirty or held back */
	uint64_t bytes;	    /* what they cost the pause: whole chunks, also
			     * for WAIO's sector deltas (both sides rehash
			     * the chunk; src.c pause_cost_of) */
	uint64_t bulk_left; /* bytes of the bulk scan still to go */
	uint64_t held;	    /* of chunks: WAIO's hot-written ones held for FINAL */
};
void smg_stg_src_get_pending(const struct smg_stg_src *s, struct smg_stg_pending *p);
/* Bytes the pause may carry for this disk (the stop rule's share of the
 * downtime budget): WAIO holds hot-written chunks back for FINAL only while
 * they fit in it. 0: no hold-back at all. Default: unlimited (hold all). */
void smg_stg_src_set_budget(struct smg_stg_src *s, uint64_t bytes);
void smg_stg_src_get_stats(const struct smg_stg_src *s, struct smg_stg_stats *st);
/* Merkle root over what was sent; valid once FINAL returned *used == 0. */
int smg_stg_src_digest(struct smg_stg_src *s, uint8_t out[static SMG_STG_DIGEST_LEN]);
/* End the migration and free s. merge (always on abort): WAIO writes go back
 * into the original before the guest's I/O resumes; DBT has nothing to undo. */
int smg_stg_src_end(struct smg_stg_src *s, bool merge);

/* ---- destination side ------------------------------------------------------------- */
struct smg_stg_dst;

int smg_stg_dst_open(const char *path, uint64_t size, uint32_t chunk_size,
		     uint32_t disk_id, struct smg_stg_dst **out);
/* Apply one frame payload; any malformed or out-of-range record is an error
 * and nothing of that frame is applied. */
int smg_stg_dst_apply(struct smg_stg_dst *d, const uint8_t *payload, size_t len);
int smg_stg_dst_digest(struct smg_stg_dst *d, uint8_t out[static SMG_STG_DIGEST_LEN]);
void smg_stg_dst_get_stats(const struct smg_stg_dst *d, struct smg_stg_stats *st);
void smg_stg_dst_close(struct smg_stg_dst *d);

/* Digest of an image file as it is now (tests, the disk service's CHECK):
 * the Merkle root (base/base.h, smg_merkle_*) of its chunk_size chunks. */
int smg_stg_image_digest(struct smg_image *img, uint32_t chunk_size,
			 uint8_t out[static SMG_STG_DIGEST_LEN]);

/* ---- NBD front end ------------------------------------------------------------------
 */
#define SMG_NBD_OPT_MAX	    4096u	/* option payload cap before we read it */
#define SMG_NBD_REQ_MAX	    (32u << 20) /* READ/WRITE payload cap */
#define SMG_NBD_REQ_HDR	    28u
#define SMG_NBD_EXPORT_NAME "secmig"
#define SMG_NBD_CLIENTS_MAX 64

struct smg_nbd_server;

/* Listen on a unix socket at sock_path (a stale one is replaced; bound under
 * umask 077) with no export yet. Clients whose SO_PEERCRED uid is neither 0
 * nor ours are refused. One thread per client. */
int smg_nbd_server_open(const char *sock_path, struct smg_nbd_server **out);
/* Serve d as export name (SMG_DSVC_NAME_MAX at most). */
int smg_nbd_server_add(struct smg_nbd_server *s, const char *name, struct smg_vdisk *d);
/* End export name: new clients no longer find it, its clients are hung up
 * (I/O held in the disk's gate fails first, see smg_vdisk_fail_io); returns
 * when none uses d any more. */
void smg_nbd_server_remove(struct smg_nbd_server *s, const char *name);
/* Clients connected to export name now. */
unsigned smg_nbd_server_clients(struct smg_nbd_server *s, const char *name);
/* One disk as SMG_NBD_EXPORT_NAME (and the default export ""). */
int smg_nbd_server_start(struct smg_vdisk *d, const char *sock_path,
			 struct smg_nbd_server **out);
void smg_nbd_server_stop(struct smg_nbd_server *s);

struct smg_nbd_req {
	uint16_t flags;
	uint16_t type;
	uint64_t cookie;
	uint64_t offset;
	uint32_t len;
};
/* Pure parser of one 28-byte transmission request header. */
int smg_nbd_parse_request(const uint8_t *buf, size_t len, struct smg_nbd_req *out);
/* Run one whole server session whose client bytes are in[0..len) against d;
 * replies are discarded (fuzzing, tests). Returns how the session ended. */
int smg_nbd_serve_buffer(struct smg_vdisk *d, const uint8_t *in, size_t len);

/* ---- the per-host disk service (docs/storage.md "The disk service") ----------
 * One long-running process per host owns the images in its storage directory
 * and serves each over NBD (one unix socket, export name = disk name) before,
 * during and after a migration; send/recv drive WAIO or DBT through its
 * control socket. */
#define SMG_DSVC_SOCK_NAME  "disk.sock"
#define SMG_DSVC_NBD_NAME   "nbd.sock"
#define SMG_DSVC_NAME_MAX   80u	       /* disk (= export) name */
#define SMG_DSVC_LINE_MAX   256u       /* request/reply line, '\n' included */
#define SMG_DSVC_FRAME_MAX  (1u << 20) /* one record frame (NEXT, APPLY) */
#define SMG_DSVC_MSG_MAX    (SMG_DSVC_FRAME_MAX + 4096u)
#define SMG_DSVC_REPLY_TEXT (64u * 1024) /* LIST: one line per disk */
#define SMG_DSVC_DISKS_MAX  256u
#define SMG_DSVC_CONNS_MAX  64u

struct smg_dsvc_config {
	const char *state_dir;	   /* sockets; NULL: /var/lib/secmig */
	const char *storage_dir;   /* images; NULL: state_dir/disks */
	const char *surrogate_dir; /* WAIO surrogates; NULL: storage_dir */
	uint64_t capacity;	   /* total logical bytes held; 0: no cap */
	uint64_t max_disk;	   /* largest disk; 0: SMG_STG_DISK_MAX */
	uint32_t chunk;		   /* 0: per disk, smg_stg_chunk_for() */
	bool direct;		   /* O_DIRECT on the images */
};

/* Run the service in the foreground until SIGTERM/SIGINT. */
int smg_dsvc_run(const struct smg_dsvc_config *cfg);

/* 1 to SMG_DSVC_NAME_MAX of [A-Za-z0-9_.-], not starting with '.' or '-'. */
bool smg_dsvc_name_valid(const char *name, size_t len);

enum smg_dsvc_verb {
	SMG_DSVC_LIST = 1,
	SMG_DSVC_INFO,
	SMG_DSVC_CREATE,
	SMG_DSVC_IMPORT,
	SMG_DSVC_DELETE,
	SMG_DSVC_WORKLOAD,
	SMG_DSVC_SEND,
	SMG_DSVC_NEXT,
	SMG_DSVC_PENDING,
	SMG_DSVC_BUDGET,
	SMG_DSVC_PAUSE,
	SMG_DSVC_ROOT,
	SMG_DSVC_COMMIT,
	SMG_DSVC_RELEASE,
	SMG_DSVC_ABORT,
	SMG_DSVC_RECV,
	SMG_DSVC_APPLY,
	SMG_DSVC_DIGEST,
	SMG_DSVC_CHECK,
	SMG_DSVC_COMMITTED,
	SMG_DSVC_RESUME,
	SMG_DSVC_DISCARD,
	SMG_DSVC_SETTLE,
	SMG_DSVC_VERB_MAX_
};

/* One parsed request. Strings are NUL-terminated copies; payload points
 * into the caller's buffer. */
struct smg_dsvc_req {
	enum smg_dsvc_verb verb;
	char name[SMG_DSVC_NAME_MAX + 1]; /* "" when the verb takes none */
	char word[SMG_DSVC_LINE_MAX];	  /* mode, phase, outcome, workload */
	uint64_t num[3];
	const uint8_t *payload;
	size_t payload_len;
};

/* Pure parser of one request body (the bytes after the length prefix):
 * verb, exact argument count and form, payload only where one belongs. */
int smg_dsvc_parse_request(const uint8_t *body, size_t len, struct smg_dsvc_req *out);
const char *smg_dsvc_verb_name(enum smg_dsvc_verb v);

#define SMG_DSVC_FIELDS_MAX 4
/* One parsed reply: err is 0 (OK) or the service's negative smg_err. */
struct smg_dsvc_reply {
	int err;
	unsigned nfields;
	char fields[SMG_DSVC_FIELDS_MAX][80]; /* OK's first words */
	const char *text;		      /* the rest: ERR message, LIST lines */
	size_t text_len;
	const uint8_t *payload; /* after the first line */
	size_t payload_len;
};
/* Pure parser of one reply body (client side). */
int smg_dsvc_parse_reply(const uint8_t *body, size_t len, struct smg_dsvc_reply *out);

/* ---- client --------------------------------------------------------------------- */
struct smg_dsvc_conn;

/* Connect to the service's control socket (a path, or a directory holding
 * SMG_DSVC_SOCK_NAME). */
int smg_dsvc_connect(const char *sock_or_dir, struct smg_dsvc_conn **out);
void smg_dsvc_close(struct smg_dsvc_conn *c);
/* One request: line (no '\n'), optional payload and descriptor. The reply's
 * pointers stay valid until the next call on c. Returns the reply's err, or
 * a transport error (then rep->err is that error too). */
int smg_dsvc_call(struct smg_dsvc_conn *c, const char *line, const void *payload,
		  size_t plen, int fd, struct smg_dsvc_reply *rep);
/* The same in two steps, so the caller can work while the service does:
 * ask sends the request (a request still in flight is answered first, and
 * its failure is returned); asked: a request is in flight; ready tells
 * without blocking whether its answer has begun to arrive (true when
 * nothing is in flight); answer waits for it. At most one request in
 * flight per connection; smg_dsvc_call drops an uncollected answer's
 * service error (its requester gave up on it). */
int smg_dsvc_ask(struct smg_dsvc_conn *c, const char *line, const void *payload,
		 size_t plen, int fd);
bool smg_dsvc_asked(const struct smg_dsvc_conn *c);
bool smg_dsvc_ready(const struct smg_dsvc_conn *c);
int smg_dsvc_answer(struct smg_dsvc_conn *c, struct smg_dsvc_reply *rep);
/* answer, with a non-empty OK answer's payload received straight into
 * room(arg, payload length) (e.g. a begun bulk frame: no copy through the
 * connection's buffer); rep->payload then points there. room is not called
 * for an error or an empty answer; NULL from it fails the connection; a
 * NULL room is smg_dsvc_answer (everything into the connection's buffer). */
int smg_dsvc_answer_into(struct smg_dsvc_conn *c, struct smg_dsvc_reply *rep,
			 uint8_t *(*room)(void *arg, size_t len), void *arg);
/* The service's last error text on c (for logs). */
const char *smg_dsvc_errmsg(const struct smg_dsvc_conn *c);

/* ---- MSR Cambridge block traces ------------------------------------------------------
 * CSV: Timestamp,Hostname,DiskNumber,Type,Offset,Size,ResponseTime
 * (Timestamp in Windows FILETIME 100 ns ticks, Type Read|Write). */
#define SMG_TRACE_OPS_MAX  (4u << 20)
#define SMG_TRACE_FILE_MAX (256u << 20)
#define SMG_TRACE_LINE_MAX 512u

struct smg_trace_op {
	uint64_t t_us; /* since the first record */
	uint64_t offset;
	uint32_t len;
	bool write;
};

struct smg_trace {
	struct smg_trace_op *ops;
	size_t n;
};

int smg_trace_parse(const uint8_t *buf, size_t len, struct smg_trace **out);
int smg_trace_load(const char *path, struct smg_trace **out);
void smg_trace_free(struct smg_trace *t);

/* ---- synthetic guest workloads -------------------------------------------------------
 */
enum smg_wl_kind {
	SMG_WL_READ_HOT = 0, /* reads, most of them on a small hot region */
	SMG_WL_WRITE_HEAVY,  /* mostly writes spread over the disk */
	SMG_WL_MIXED,	     /* half reads half writes, hot-spot skew */
	SMG_WL_TRACE,	     /* replay a smg_trace (offsets wrapped to the disk) */
};

struct smg_wl_opts {
	enum smg_wl_kind kind;
	unsigned threads; /* 0: 1 */
	uint32_t io_size; /* 0: 4096 */
	unsigned
	    interval_us; /* per thread: one request every interval (0: back to back) */
	const struct smg_trace *trace; /* SMG_WL_TRACE */
	uint64_t seed;
};

struct smg_wl;

int smg_wl_start(struct smg_vdisk *d, const struct smg_wl_opts *o, struct smg_wl **out);
/* Stop the threads and free; latency figures stay readable until then. */
void smg_wl_stop(struct smg_wl *w);
/* Forget samples so far (e.g. at migration start). */
void smg_wl_reset(struct smg_wl *w);

struct smg_wl_result {
	uint64_t reads, writes, errors;
	double read_p50_ms, read_p99_ms, read_p999_ms;
	double write_p50_ms, write_p99_ms, write_p999_ms;
	/* Time the guest threads spent runnable but not running (the kernel's
	 * schedstat), per request: CPU contention, apart from I/O waits. */
	double runq_us_per_io;
};
/* Percentiles over the samples since the last reset. */
void smg_wl_result(struct smg_wl *w, struct smg_wl_result *r);
const char *smg_wl_kind_name(enum smg_wl_kind k);

#endif
