/* MSR Cambridge block traces (SNIA IOTTA):
 *   Timestamp,Hostname,DiskNumber,Type,Offset,Size,ResponseTime
 * Timestamp in Windows FILETIME ticks (100 ns), Type Read or Write. A trace
 * file is untrusted input: every line is length-capped, every number checked
 * for overflow, and the op count capped before the array grows. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/base.h"
#include "storage/storage.h"

#define TRACE_FIELDS	7
#define TRACE_IO_MAX	(64u << 20) /* one request; MSR's largest are a few MiB */
#define TRACE_FIELD_MAX 64

struct field {
	const uint8_t *p;
	size_t n;
};

static int parse_u64(const struct field *f, uint64_t *v)
{
	uint64_t x = 0;

	if (f->n == 0 || f->n > 20)
		return SMG_ERR_PROTO;
	for (size_t i = 0; i < f->n; i++) {
		unsigned dgt = (unsigned)f->p[i] - '0';

		if (dgt > 9 || x > (UINT64_MAX - dgt) / 10)
			return SMG_ERR_PROTO;
		x = x * 10 + dgt;
	}
	*v = x;
	return SMG_OK;
}

static bool field_is(const struct field *f, const char *s)
{
	return f->n == strlen(s) && strncasecmp((const char *)f->p, s, f->n) == 0;
}

/* Split one line (no newline) into exactly TRACE_FIELDS fields. */
static int split(const uint8_t *line, size_t n, struct field *f)
{
	struct smg_rd rd;
	unsigned k = 0;
	size_t start = 0;
	uint8_t c;

	smg_rd_init(&rd, line, n);
	while (smg_rd_left(&rd) > 0) {
		size_t at = rd.off;

		(void)smg_rd_u8(&rd, &c);
		if (c != ',')
			continue;
		if (k == TRACE_FIELDS - 1)
			return SMG_ERR_PROTO; /* too many fields */
		f[k].p = line + start;
		f[k++].n = at - start;
		start = at + 1;
	}
	if (k != TRACE_FIELDS - 1)
		return SMG_ERR_PROTO;
	f[k].p = line + start;
	f[k].n = n - start;
	for (k = 0; k < TRACE_FIELDS; k++)
		if (f[k].n > TRACE_FIELD_MAX)
			return SMG_ERR_TOO_LONG;
	return SMG_OK;
}

static int parse_line(const uint8_t *line, size_t n, struct smg_trace_op *op,
		      uint64_t *ts)
{
	struct field f[TRACE_FIELDS];
	uint64_t size;
	int r;

	if ((r = split(line, n, f)) != 0)
		return r;
	if ((r = parse_u64(&f[0], ts)) != 0 || (r = parse_u64(&f[4], &op->offset)) != 0 ||
	    (r = parse_u64(&f[5], &size)) != 0)
		return r;
	if (field_is(&f[3], "Read"))
		op->write = false;
	else if (field_is(&f[3], "Write"))
		op->write = true;
	else
		return SMG_ERR_PROTO;
	if (size == 0 || size > TRACE_IO_MAX || op->offset > UINT64_MAX - size)
		return SMG_ERR_PROTO;
	op->len = (uint32_t)size;
	return SMG_OK;
}

static int push(struct smg_trace *t, size_t *cap, const struct smg_trace_op *op)
{
	if (t->n == SMG_TRACE_OPS_MAX)
		return SMG_ERR_TOO_LONG;
	if (t->n == *cap) {
		size_t nc = *cap ? *cap * 2 : 1024;
		struct smg_trace_op *p = realloc(t->ops, nc * sizeof(*p));

		if (p == NULL)
			return SMG_ERR_NOMEM;
		t->ops = p;
		*cap = nc;
	}
	t->ops[t->n++] = *op;
	return SMG_OK;
}

int smg_trace_parse(const uint8_t *buf, size_t len, struct smg_trace **out)
{
	struct smg_trace *t;
	size_t pos = 0, cap = 0, lineno = 0;
	uint64_t ts0 = 0;
	int r = SMG_OK;

	*out = NULL;
	if (buf == NULL)
		len = 0;
	if ((t = calloc(1, sizeof(*t))) == NULL)
		return SMG_ERR_NOMEM;
	while (pos < len) {
		const uint8_t *nl = memchr(buf + pos, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - (buf + pos)) : len - pos;
		const uint8_t *line = buf + pos;
		struct smg_trace_op op;
		uint64_t ts;

		pos += n + (nl != NULL);
		lineno++;
		if (n > 0 && line[n - 1] == '\r')
			n--;
		if (n == 0)
			continue;
		if (n > SMG_TRACE_LINE_MAX) {
			r = SMG_ERR_TOO_LONG;
			goto bad;
		}
		if (lineno == 1 && n >= 9 &&
		    strncasecmp((const char *)line, "Timestamp", 9) == 0)
			continue; /* header */
		if ((r = parse_line(line, n, &op, &ts)) != 0)
			goto bad;
		if (t->n == 0)
			ts0 = ts;
		op.t_us = ts > ts0 ? (ts - ts0) / 10 : 0;
		if ((r = push(t, &cap, &op)) != 0)
			goto bad;
	}
	if (t->n == 0) {
		r = SMG_ERR_PROTO;
		smg_peer_log(SMG_LOG_WARN, "trace: no records");
		goto fail;
	}
	*out = t;
	return SMG_OK;
bad:
	smg_peer_log(SMG_LOG_WARN, "trace: line %zu: %s", lineno, smg_strerror(r));
fail:
	smg_trace_free(t);
	return r;
}

int smg_trace_load(const char *path, struct smg_trace **out)
{
	struct stat st;
	uint8_t *buf;
	size_t got = 0;
	int fd, r;

	*out = NULL;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		r = smg_err_sys(errno);
		smg_err("trace %s: %s", path, strerror(errno));
		return r;
	}
	if (fstat(fd, &st) != 0 || st.st_size < 0 ||
	    (uint64_t)st.st_size > SMG_TRACE_FILE_MAX) {
		smg_err("trace %s: missing or larger than %u bytes", path,
			SMG_TRACE_FILE_MAX);
		close(fd);
		return SMG_ERR_TOO_LONG;
	}
	if ((buf = malloc((size_t)st.st_size + 1)) == NULL) {
		close(fd);
		return SMG_ERR_NOMEM;
	}
	while (got < (size_t)st.st_size) {
		ssize_t k = read(fd, buf + got, (size_t)st.st_size - got);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		got += (size_t)k;
	}
	close(fd);
	r = smg_trace_parse(buf, got, out);
	free(buf);
	return r;
}

void smg_trace_free(struct smg_trace *t)
{
	if (t == NULL)
		return;
	free(t->ops);
	free(t);
}
