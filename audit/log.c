/* log: the host's append-only audit log. Each append, in any process,
 * takes the directory lock, reads the last record for its seq and hash,
 * writes one signed line with O_APPEND, fdatasyncs it, then rewrites the
 * signed head (the last seq and hash: what makes a truncated log
 * detectable) and the counters. Rotation renames the full log and starts
 * a new one whose first record links to the old one's last. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit/internal.h"
#include "transport/transport.h"

#define ROTATED_FMT "audit.log.%010llu"

struct tail {
	bool empty;
	uint64_t seq;
	uint8_t hash[SMG_AUDIT_DIGEST_LEN];
	off_t size;
};

/* The last readable record of the log (t->empty if none) and whether the
 * log is damaged: it ends in a torn line (a crash mid-write) or an
 * unreadable one (tampering). Up to two lines from the end are tried. */
static int read_tail(const char *path, struct tail *t, bool *damaged)
{
	struct smg_audit_record rec;
	struct stat st;
	char *buf;
	size_t n, end;
	bool whole;
	int fd, r = SMG_OK;

	memset(t, 0, sizeof(*t));
	*damaged = false;
	t->empty = true;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0)
		return errno == ENOENT ? SMG_OK : smg_err_sys(errno);
	if (fstat(fd, &st) != 0 || st.st_size == 0) {
		close(fd);
		return SMG_OK;
	}
	t->size = st.st_size;
	n = (size_t)st.st_size < 2 * (SMG_AUDIT_RECORD_MAX + 1)
		? (size_t)st.st_size
		: 2 * (SMG_AUDIT_RECORD_MAX + 1);
	whole = n == (size_t)st.st_size;
	if ((buf = malloc(n)) == NULL) {
		close(fd);
		return SMG_ERR_NOMEM;
	}
	if (pread(fd, buf, n, st.st_size - (off_t)n) != (ssize_t)n) {
		r = smg_err_sys(errno);
		goto out;
	}
	end = n;
	if (buf[n - 1] != '\n') {
		const char *last = memrchr(buf, '\n', n);
		*damaged = true;
		end = last != NULL ? (size_t)(last - buf) + 1 : 0;
	}
	for (int tries = 0; end > 0 && tries < 2; tries++) {
		const char *nl = end > 1 ? memrchr(buf, '\n', end - 1) : NULL;
		const char *start = nl != NULL ? nl + 1 : buf;

		if (nl == NULL && !whole)
			break; /* a line longer than any record */
		if (smg_audit_record_parse(start, (size_t)(buf + end - 1 - start),
					   &rec) == SMG_OK) {
			t->empty = false;
			t->seq = rec.seq;
			memcpy(t->hash, rec.hash, sizeof(t->hash));
			smg_audit_record_free(&rec);
			break;
		}
		*damaged = true;
		end = (size_t)(start - buf);
	}
	if (!whole && t->empty)
		*damaged = true;
out:
	free(buf);
	close(fd);
	return r;
}

/* The base fields first, then the caller's, in insertion order. */
static struct json_object *with_base(struct smg_audit *a, struct json_object *rec,
				     const struct tail *t)
{
	struct json_object *o = json_object_new_object();
	uint8_t pub[SMG_AUDIT_KEY_LEN];

	if (o == NULL)
		return NULL;
	smg_identity_public(a->identity, pub);
	audit_json_u64(o, "v", 1);
	audit_json_u64(o, "seq", t->empty ? 1 : t->seq + 1);
	if (t->empty) {
		uint8_t zero[SMG_AUDIT_DIGEST_LEN] = {0};
		audit_json_hex(o, "prev", zero, sizeof(zero));
	} else {
		audit_json_hex(o, "prev", t->hash, sizeof(t->hash));
	}
	audit_json_u64(o, "time", audit_wall_ms());
	audit_json_str(o, "host", a->host);
	audit_json_b64(o, "signer", pub, sizeof(pub));
	json_object_object_foreach(rec, k, v)
	{
		json_object_object_add(o, k, json_object_get(v));
	}
	return o;
}

static int write_all(int fd, const char *p, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return smg_err_sys(errno);
		p += n;
		len -= (size_t)n;
	}
	return SMG_OK;
}

/* One signed line appended and on disk; t advances to it. */
static int write_record(struct smg_audit *a, const char *path, struct json_object *rec,
			struct tail *t)
{
	struct json_object *o = with_base(a, rec, t);
	char *line;
	size_t len;
	uint8_t hash[SMG_AUDIT_DIGEST_LEN];
	int fd, r;

	if (o == NULL)
		return SMG_ERR_NOMEM;
	if ((line = malloc(SMG_AUDIT_RECORD_MAX + 2)) == NULL) {
		json_object_put(o);
		return SMG_ERR_NOMEM;
	}
	r = audit_record_format(o, a->identity, line, SMG_AUDIT_RECORD_MAX + 2, &len,
				hash);
	json_object_put(o);
	if (r != SMG_OK)
		goto out;
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		r = smg_err_sys(errno);
		goto out;
	}
	if ((r = write_all(fd, line, len)) == SMG_OK && fdatasync(fd) != 0)
		r = smg_err_sys(errno);
	close(fd);
	if (r == SMG_OK) {
		t->seq = t->empty ? 1 : t->seq + 1;
		t->empty = false;
		t->size += (off_t)len;
		memcpy(t->hash, hash, sizeof(hash));
	}
out:
	free(line);
	return r;
}

static int write_head(struct smg_audit *a, const struct tail *t)
{
	struct json_object *o = json_object_new_object(), *h;
	struct tail before = *t;
	char *line;
	size_t len;
	uint8_t hash[SMG_AUDIT_DIGEST_LEN];
	int r;

	if (o == NULL)
		return SMG_ERR_NOMEM;
	/* The head names the last record: its seq, and its hash as "prev". */
	before.seq = t->seq - 1;
	before.empty = false;
	audit_json_str(o, "event", "head");
	h = with_base(a, o, &before);
	json_object_put(o);
	if (h == NULL)
		return SMG_ERR_NOMEM;
	if ((line = malloc(SMG_AUDIT_RECORD_MAX + 2)) == NULL) {
		json_object_put(h);
		return SMG_ERR_NOMEM;
	}
	r = audit_record_format(h, a->identity, line, SMG_AUDIT_RECORD_MAX + 2, &len,
				hash);
	json_object_put(h);
	if (r == SMG_OK)
		r = audit_write_atomic(a->dir, SMG_AUDIT_HEAD_NAME, line, len);
	free(line);
	return r;
}

/* Under the lock: move the current log aside, start the next one. */
static int rotate_locked(struct smg_audit *a, const char *path, struct tail *t,
			 char *rotated, size_t cap)
{
	char name[64], to[600];
	struct json_object *o;
	int r;

	snprintf(name, sizeof(name), ROTATED_FMT, (unsigned long long)t->seq);
	snprintf(to, sizeof(to), "%s/%s", a->dir, name);
	if (access(to, F_OK) == 0)
		return SMG_ERR_EXISTS;
	if (rename(path, to) != 0)
		return smg_err_sys(errno);
	if ((o = json_object_new_object()) == NULL)
		return SMG_ERR_NOMEM;
	audit_json_str(o, "event", "rotate");
	audit_json_str(o, "previous", name);
	audit_json_u64(o, "previous_seq", t->seq);
	t->size = 0;
	r = write_record(a, path, o, t);
	json_object_put(o);
	if (r == SMG_OK && rotated != NULL)
		snprintf(rotated, cap, "%s", to);
	if (r == SMG_OK)
		smg_info("audit: rotated the log to %s", to);
	return r;
}

/* A damaged log is not appended to: it becomes a rotated file (so a
 * plain `audit verify` of the directory reports its damaged record) and the
 * new log links to its last readable record, saying why. */
static int set_aside(struct smg_audit *a, const char *path, struct tail *t)
{
	char name[64], to[600];
	struct json_object *o;
	int r;

	snprintf(name, sizeof(name), ROTATED_FMT,
		 (unsigned long long)(t->empty ? 0 : t->seq));
	snprintf(to, sizeof(to), "%s/%s", a->dir, name);
	if (access(to, F_OK) == 0) {
		snprintf(name, sizeof(name), "audit.damaged.%llu",
			 (unsigned long long)audit_wall_ms());
		snprintf(to, sizeof(to), "%s/%s", a->dir, name);
	}
	if (rename(path, to) != 0)
		return smg_err_sys(errno);
	smg_err("audit: the log ends in a damaged record; it is now %s and a new log "
		"continues the chain (run `secmig audit verify`)",
		to);
	if ((o = json_object_new_object()) == NULL)
		return SMG_ERR_NOMEM;
	audit_json_str(o, "event", t->empty ? "open" : "rotate");
	audit_json_str(o, "previous", name);
	if (!t->empty)
		audit_json_u64(o, "previous_seq", t->seq);
	audit_json_str(o, "damaged", "the previous file ends in a damaged record");
	t->size = 0;
	r = write_record(a, path, o, t);
	json_object_put(o);
	return r;
}

static int open_record(struct smg_audit *a, const char *path, struct tail *t)
{
	struct json_object *o = json_object_new_object();
	int r;

	if (o == NULL)
		return SMG_ERR_NOMEM;
	audit_json_str(o, "event", "open");
	r = write_record(a, path, o, t);
	json_object_put(o);
	return r;
}

int audit_log_append(struct smg_audit *a, struct json_object *rec,
		     const enum smg_audit_counter *bump, size_t nbump)
{
	char path[600];
	struct tail t;
	bool damaged;
	int lk, r;

	if (a == NULL || a->identity == NULL) {
		json_object_put(rec);
		return SMG_ERR_INVAL;
	}
	snprintf(path, sizeof(path), "%s/%s", a->dir, SMG_AUDIT_LOG_NAME);
	if ((r = audit_lock(a->dir, &lk)) != SMG_OK) {
		json_object_put(rec);
		return r;
	}
	if ((r = read_tail(path, &t, &damaged)) != SMG_OK)
		goto out;
	if (damaged && (r = set_aside(a, path, &t)) != SMG_OK)
		goto out;
	if (!t.empty && t.size >= (off_t)SMG_AUDIT_ROTATE_BYTES &&
	    (r = rotate_locked(a, path, &t, NULL, 0)) != SMG_OK)
		goto out;
	if (t.empty && (r = open_record(a, path, &t)) != SMG_OK)
		goto out;
	if ((r = write_record(a, path, rec, &t)) != SMG_OK)
		goto out;
	if ((r = write_head(a, &t)) != SMG_OK)
		smg_err("audit: record %llu written but the head not updated: %s",
			(unsigned long long)t.seq, smg_strerror(r));
	{
		enum smg_audit_counter all[16] = {SMG_CNT_RECORDS};
		size_t n = 1;
		for (size_t i = 0; i < nbump && n < SMG_ARRAY_LEN(all); i++)
			all[n++] = bump[i];
		audit_counters_bump_locked(a->dir, all, n);
	}
out:
	audit_unlock(lk);
	json_object_put(rec);
	if (r != SMG_OK)
		smg_err("audit: cannot append to %s: %s", path, smg_strerror(r));
	return r;
}

int smg_audit_rotate(struct smg_audit *a, char *rotated, size_t cap)
{
	char path[600];
	struct tail t;
	bool damaged;
	int lk, r;

	if (rotated != NULL && cap > 0)
		rotated[0] = '\0';
	snprintf(path, sizeof(path), "%s/%s", a->dir, SMG_AUDIT_LOG_NAME);
	if ((r = audit_lock(a->dir, &lk)) != SMG_OK)
		return r;
	if ((r = read_tail(path, &t, &damaged)) == SMG_OK) {
		if (damaged)
			r = SMG_ERR_INTEGRITY;
		else if (t.empty)
			r = SMG_ERR_NOT_FOUND;
		else if ((r = rotate_locked(a, path, &t, rotated, cap)) == SMG_OK)
			r = write_head(a, &t);
	}
	audit_unlock(lk);
	return r;
}

static int cmp_str(const void *x, const void *y)
{
	return strcmp(*(char *const *)x, *(char *const *)y);
}

static bool rotated_name(const char *n)
{
	unsigned long long seq;
	char tail;

	return strlen(n) == strlen("audit.log.") + 10 &&
	       sscanf(n, "audit.log.%10llu%c", &seq, &tail) == 1;
}

static int push(char ***v, size_t *cnt, const char *dir, const char *name)
{
	char path[600], **nv = realloc(*v, (*cnt + 1) * sizeof(**v));

	if (nv == NULL)
		return SMG_ERR_NOMEM;
	*v = nv;
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if ((nv[*cnt] = strdup(path)) == NULL)
		return SMG_ERR_NOMEM;
	(*cnt)++;
	return SMG_OK;
}

int smg_audit_log_files(const char *dir, char ***files, size_t *n)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char **v = NULL, path[600];
	size_t cnt = 0;
	int r = SMG_OK;

	*files = NULL;
	*n = 0;
	if (d == NULL)
		return errno == ENOENT ? SMG_ERR_NOT_FOUND : smg_err_sys(errno);
	while ((e = readdir(d)) != NULL && r == SMG_OK)
		if (rotated_name(e->d_name))
			r = push(&v, &cnt, dir, e->d_name);
	closedir(d);
	/* Rotated logs in seq order (zero-padded names), the current one last. */
	if (r == SMG_OK && cnt > 1)
		qsort(v, cnt, sizeof(*v), cmp_str);
	snprintf(path, sizeof(path), "%s/%s", dir, SMG_AUDIT_LOG_NAME);
	if (r == SMG_OK && access(path, F_OK) == 0)
		r = push(&v, &cnt, dir, SMG_AUDIT_LOG_NAME);
	if (r != SMG_OK) {
		smg_audit_log_files_free(v, cnt);
		return r;
	}
	*files = v;
	*n = cnt;
	return cnt == 0 ? SMG_ERR_NOT_FOUND : SMG_OK;
}

void smg_audit_log_files_free(char **files, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(files[i]);
	free(files);
}
