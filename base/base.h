/* The shared base every module builds on: one error space, the bounded
 * reader/writer for untrusted bytes, explicit endian helpers and logging. */
#ifndef SMG_BASE_H
#define SMG_BASE_H

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
	SMG_ERR_FAULT = -40,	   /* a named fault-injection point fired */
	SMG_ERR_INTERRUPTED = -41, /* another thread of the session ended a wait */
	SMG_ERR_MAX_ = -42,
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

/* A decimal number with an optional K/M/G/T suffix (powers of 1024, an
 * optional trailing "B" or "iB"); SMG_ERR_INVAL on junk or overflow. */
int smg_parse_size(const char *s, uint64_t *out);

/* Monotonic clock in ms and ns. */
uint64_t smg_now_ms(void);
uint64_t smg_now_ns(void);

#define SMG_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#endif
