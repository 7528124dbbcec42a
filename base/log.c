/* Logging: text or one JSON object per line on stderr, a per-file prefix,
 * file:line on errors, and a token bucket per call site for anything a
 * remote peer can trigger, so a hostile peer cannot flood the log. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "base/base.h"

#define LOG_LINE_MAX 2048

static enum smg_log_level log_level = SMG_LOG_INFO;
static bool log_json;
static FILE *log_stream;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

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

void smg_log_at(enum smg_log_level lvl, const char *file, int line,
		struct smg_ratelimit *rl, const char *fmt, ...)
{
	char msg[LOG_LINE_MAX];
	long dropped = 0;
	va_list ap;
	FILE *f;

	if (lvl > log_level)
		return;
	pthread_mutex_lock(&log_lock);
	if (rl != NULL && (dropped = ratelimit_take(rl)) < 0)
		goto out;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	f = log_stream != NULL ? log_stream : stderr;
	file = base_name(file);
	if (log_json) {
		fprintf(f, "{\"log\":\"%s\",\"file\":\"%s\",\"line\":%d,\"msg\":\"",
			level_names[lvl], file, line);
		json_escape(f, msg);
		fprintf(f, "\",\"suppressed\":%ld}\n", dropped);
	} else {
		if (dropped > 0)
			fprintf(f, "secmig: %s: (%ld similar messages suppressed)\n",
				file, dropped);
		if (lvl == SMG_LOG_ERROR)
			fprintf(f, "secmig: error: %s:%d: %s\n", file, line, msg);
		else
			fprintf(f, "secmig: %s: %s: %s\n", level_names[lvl], file, msg);
	}
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
