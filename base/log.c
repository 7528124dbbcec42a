/* Logging: one line per message with a UTC timestamp, the level and the
 * migration the thread works on; to the journal with structured fields when
 * systemd connected our stderr to it, else to stderr as text or one JSON
 * object per line. file:line only at -v (debug) in text, always as
 * CODE_FILE/CODE_LINE in the journal and as fields in JSON. A token bucket
 * per call site for anything a remote peer can trigger, so a hostile peer
 * cannot flood the log. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <syslog.h>
#include <systemd/sd-journal.h>
#include <time.h>

#include "base/base.h"

#define LOG_LINE_MAX  2048
#define LOG_TIME_MAX  32
#define LOG_FIELD_MAX (LOG_LINE_MAX + 64)
#define LOG_IOV_MAX   10

static enum smg_log_level log_level = SMG_LOG_INFO;
static bool log_json;
static FILE *log_stream;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static enum { JOURNAL_UNKNOWN, JOURNAL_NO, JOURNAL_YES } log_journal;

struct log_ctx {
	char id[SMG_LOG_CTX_ID_MAX];
	char peer[SMG_LOG_CTX_NAME_MAX];
	char domain[SMG_LOG_CTX_NAME_MAX];
};
static _Thread_local struct log_ctx ctx;

static const char *const level_names[] = {"error", "warn", "info", "debug"};
static const int level_prio[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};

void smg_log_set_level(enum smg_log_level lvl)
{
	log_level = lvl;
}

enum smg_log_level smg_log_get_level(void)
{
	return log_level;
}

void smg_log_set_json(bool on)
{
	log_json = on;
}

void smg_log_set_stream(void *file)
{
	log_stream = file;
}

/* Names and ids come from the peer's PLAN (validated there); escaped again
 * here so that no caller can put a newline into a line. */
static void ctx_copy(char *dst, size_t cap, const char *src)
{
	if (src != NULL && src[0] != '\0')
		smg_log_escape(src, dst, cap);
}

void smg_log_ctx_set(const char *migration_id, const char *peer, const char *domain)
{
	ctx_copy(ctx.id, sizeof(ctx.id), migration_id);
	ctx_copy(ctx.peer, sizeof(ctx.peer), peer);
	ctx_copy(ctx.domain, sizeof(ctx.domain), domain);
}

void smg_log_ctx_clear(void)
{
	memset(&ctx, 0, sizeof(ctx));
}

struct thread_start {
	void *(*fn)(void *);
	void *arg;
	struct log_ctx ctx;
};

static void *thread_start(void *p)
{
	struct thread_start ts = *(struct thread_start *)p;

	free(p);
	ctx = ts.ctx;
	return ts.fn(ts.arg);
}

int smg_log_thread_create(pthread_t *t, void *(*fn)(void *), void *arg)
{
	struct thread_start *ts = malloc(sizeof(*ts));
	int r;

	if (ts == NULL)
		return ENOMEM;
	*ts = (struct thread_start){fn, arg, ctx};
	if ((r = pthread_create(t, NULL, thread_start, ts)) != 0)
		free(ts);
	return r;
}

void smg_log_detect_journal(void)
{
	const char *e = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat sb;
	char tail;

	log_journal = JOURNAL_NO;
	if (e == NULL || sscanf(e, "%llu:%llu%c", &dev, &ino, &tail) != 2 ||
	    fstat(2, &sb) != 0)
		return;
	if ((unsigned long long)sb.st_dev == dev && (unsigned long long)sb.st_ino == ino)
		log_journal = JOURNAL_YES;
}

uint64_t smg_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t smg_now_ms(void)
{
	return smg_now_ns() / 1000000ull;
}

static const char *base_name(const char *path)
{
	const char *s = strrchr(path, '/');

	return s != NULL ? s + 1 : path;
}

/* Returns how many earlier messages were suppressed, or -1 to drop this one. */
static long ratelimit_take(struct smg_ratelimit *rl)
{
	uint64_t now = smg_now_ms();
	long dropped = 0;

	if (now - rl->window_start_ms >= SMG_LOG_RATE_WINDOW_MS ||
	    rl->window_start_ms == 0) {
		dropped = rl->suppressed;
		rl->window_start_ms = now == 0 ? 1 : now;
		rl->burst_used = 0;
		rl->suppressed = 0;
	}
	if (rl->burst_used >= SMG_LOG_RATE_BURST) {
		rl->suppressed++;
		return -1;
	}
	rl->burst_used++;
	return dropped;
}

static void json_escape(FILE *f, const char *s)
{
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
}

/* RFC 3339 UTC with milliseconds: 2026-12-02T01:07:56.123Z */
static void timestamp(char *out, size_t cap)
{
	struct timespec ts;
	struct tm tm;
	size_t n;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = strftime(out, cap, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out + n, cap - n, ".%03ldZ", ts.tv_nsec / 1000000);
}

struct log_line {
	enum smg_log_level lvl;
	const char *file;
	int line;
	long dropped;
	const char *msg;
};

static void add_field(struct iovec *iov, size_t *n, char *buf, size_t cap,
		      const char *key, const char *val)
{
	int w;

	if (val == NULL || val[0] == '\0')
		return;
	w = snprintf(buf, cap, "%s=%s", key, val);
	iov[*n].iov_base = buf;
	iov[*n].iov_len = (size_t)w < cap ? (size_t)w : cap - 1;
	(*n)++;
}

/* The native journal protocol through libsystemd; false if it failed (the
 * line then goes to stderr). */
static bool write_journal(const struct log_line *l)
{
	char msg[LOG_FIELD_MAX], prio[24], file[256], line[32], id[64], peer[96], dom[96],
	    drop[48], prio_v[8], line_v[16], drop_v[24];
	struct iovec iov[LOG_IOV_MAX];
	size_t n = 0;

	snprintf(prio_v, sizeof(prio_v), "%d", level_prio[l->lvl]);
	snprintf(line_v, sizeof(line_v), "%d", l->line);
	snprintf(drop_v, sizeof(drop_v), "%ld", l->dropped);
	add_field(iov, &n, msg, sizeof(msg), "MESSAGE", l->msg);
	add_field(iov, &n, prio, sizeof(prio), "PRIORITY", prio_v);
	add_field(iov, &n, file, sizeof(file), "CODE_FILE", l->file);
	add_field(iov, &n, line, sizeof(line), "CODE_LINE", line_v);
	add_field(iov, &n, id, sizeof(id), "SECMIG_MIGRATION_ID", ctx.id);
	add_field(iov, &n, peer, sizeof(peer), "SECMIG_PEER", ctx.peer);
	add_field(iov, &n, dom, sizeof(dom), "SECMIG_DOMAIN", ctx.domain);
	if (l->dropped > 0)
		add_field(iov, &n, drop, sizeof(drop), "SECMIG_SUPPRESSED", drop_v);
	iov[n].iov_base = (void *)"SYSLOG_IDENTIFIER=secmig";
	iov[n++].iov_len = strlen("SYSLOG_IDENTIFIER=secmig");
	return sd_journal_sendv(iov, (int)n) == 0;
}

static void write_json(FILE *f, const struct log_line *l, const char *ts)
{
	fprintf(f, "{\"ts\":\"%s\",\"log\":\"%s\",\"file\":\"%s\",\"line\":%d,", ts,
		level_names[l->lvl], l->file, l->line);
	if (ctx.id[0] != '\0')
		fprintf(f, "\"migration_id\":\"%s\",", ctx.id);
	if (ctx.peer[0] != '\0')
		fprintf(f, "\"peer\":\"%s\",", ctx.peer);
	if (ctx.domain[0] != '\0')
		fprintf(f, "\"domain\":\"%s\",", ctx.domain);
	fprintf(f, "\"msg\":\"");
	json_escape(f, l->msg);
	fprintf(f, "\",\"suppressed\":%ld}\n", l->dropped);
}

/* 2026-12-02T01:07:56.123Z secmig info: migration=ID peer=P domain=D: msg */
static void write_text(FILE *f, const struct log_line *l, const char *ts)
{
	char where[300] = "", who[256] = "";
	size_t w = 0;

	if (log_level >= SMG_LOG_DEBUG)
		snprintf(where, sizeof(where), "%s:%d: ", l->file, l->line);
	if (ctx.id[0] != '\0')
		w += (size_t)snprintf(who + w, sizeof(who) - w, "migration=%s ", ctx.id);
	if (ctx.peer[0] != '\0' && w < sizeof(who))
		w += (size_t)snprintf(who + w, sizeof(who) - w, "peer=%s ", ctx.peer);
	if (ctx.domain[0] != '\0' && w < sizeof(who))
		w += (size_t)snprintf(who + w, sizeof(who) - w, "domain=%s ", ctx.domain);
	if (w > 0 && w <= sizeof(who)) /* "a=b c=d " -> "a=b c=d: " */
		snprintf(who + w - 1, sizeof(who) - (w - 1), ": ");
	if (l->dropped > 0)
		fprintf(f, "%s secmig %s: %s(%ld similar messages suppressed)\n", ts,
			level_names[l->lvl], where, l->dropped);
	fprintf(f, "%s secmig %s: %s%s%s\n", ts, level_names[l->lvl], who, where, l->msg);
}

void smg_log_at(enum smg_log_level lvl, const char *file, int line,
		struct smg_ratelimit *rl, const char *fmt, ...)
{
	char msg[LOG_LINE_MAX], ts[LOG_TIME_MAX];
	struct log_line l = {.lvl = lvl, .file = base_name(file), .line = line};
	va_list ap;
	FILE *f;

	if (lvl > log_level)
		return;
	pthread_mutex_lock(&log_lock);
	if (rl != NULL && (l.dropped = ratelimit_take(rl)) < 0)
		goto out;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	l.msg = msg;
	if (log_journal == JOURNAL_UNKNOWN)
		smg_log_detect_journal();
	/* a stream set by a test wins over the journal */
	if (log_stream == NULL && log_journal == JOURNAL_YES && write_journal(&l))
		goto out;
	f = log_stream != NULL ? log_stream : stderr;
	timestamp(ts, sizeof(ts));
	if (log_json)
		write_json(f, &l, ts);
	else
		write_text(f, &l, ts);
	fflush(f);
out:
	pthread_mutex_unlock(&log_lock);
}

void smg_log_escape(const char *in, char *out, size_t cap)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;

	if (cap == 0)
		return;
	for (const unsigned char *c = (const unsigned char *)(in != NULL ? in : "");
	     *c != '\0'; c++) {
		bool plain = *c >= 0x20 && *c < 0x7f && *c != '\\' && *c != '"';
		size_t need = plain ? 1 : 6;

		if (o + need + 1 > cap)
			break;
		if (plain) {
			out[o++] = (char)*c;
		} else { /* \u00XX: readable, and valid inside a JSON string */
			memcpy(out + o, "\\u00", 4);
			out[o + 4] = hex[*c >> 4];
			out[o + 5] = hex[*c & 15];
			o += 6;
		}
	}
	out[o] = '\0';
}
