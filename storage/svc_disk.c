/* The disk service's table of disks and what each request does to one.
 *
 * sv->mu guards the table (states, owners, names); the slow work (copying
 * an image in, a WAIO merge, a teardown) runs outside it on a disk marked
 * SD_BUSY or leased to the calling connection, which alone touches its
 * src/dst. Lease rules (docs/storage.md): a source migration is undone
 * (WAIO merged back, I/O released) unless COMMIT was recorded; an incoming
 * disk is removed unless COMMITTED was. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/base.h"
#include "storage/svc.h"

#define COPY_BUF (1u << 20)

const char *const svc_state_names[] = {"free",	      "busy",	   "idle",     "sending",
				       "handed-over", "receiving", "committed"};

int svc_fail(struct svc_reply *r, int err, const char *fmt, ...)
{
	char msg[SMG_DSVC_LINE_MAX - 24];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	for (char *p = msg; *p; p++)
		if (*p < 0x20 || *p > 0x7e)
			*p = '?';
	r->err = err < 0 ? err : SMG_ERR_INTERNAL;
	/* A full storage directory is its own answer (the receiver reports
	 * exit 14, disk_full), not a bare system error. */
	if (r->err == SMG_ERR_SYS &&
	    (smg_err_errno() == ENOSPC || smg_err_errno() == EDQUOT))
		r->err = SMG_ERR_DISK_FULL;
	snprintf(r->line, sizeof(r->line), "ERR %d %s", r->err, msg);
	r->text_len = r->payload_len = 0;
	return r->err;
}

void svc_ok(struct svc_reply *r, const char *fmt, ...)
{
	char f[SMG_DSVC_LINE_MAX - 4];
	va_list ap;

	r->err = 0;
	va_start(ap, fmt);
	vsnprintf(f, sizeof(f), fmt, ap);
	va_end(ap);
	snprintf(r->line, sizeof(r->line), f[0] ? "OK %s" : "OK", f);
}

int svc_disk_path(const struct svc *sv, const char *name, enum path_kind k, char *out,
		  size_t n)
{
	int w = k == P_IMAGE ? snprintf(out, n, "%s/%s.img", sv->storage_dir, name)
		: k == P_INCOMING
		    ? snprintf(out, n, "%s/.%s.incoming", sv->storage_dir, name)
		    : snprintf(out, n, "%s/.%s.surrogate", sv->surr_dir, name);

	return w < 0 || (size_t)w >= n ? SMG_ERR_TOO_LONG : SMG_OK;
}

/* mu held. */
struct svc_disk *svc_find(struct svc *sv, const char *name)
{
	for (unsigned i = 0; i < SMG_DSVC_DISKS_MAX; i++)
		if (sv->disks[i].state != SD_FREE && strcmp(sv->disks[i].name, name) == 0)
			return &sv->disks[i];
	return NULL;
}

/* mu held: a BUSY slot for a new disk, within the service's capacity. */
struct svc_disk *svc_slot_new(struct svc *sv, const char *name, uint64_t size,
			      struct svc_reply *r)
{
	struct svc_disk *d = NULL;
	uint64_t total = 0, max = sv->cfg.max_disk ? sv->cfg.max_disk : SMG_STG_DISK_MAX;

	if (svc_find(sv, name) != NULL) {
		svc_fail(r, SMG_ERR_EXISTS, "disk '%s' exists on this host", name);
		return NULL;
	}
	if (size == 0 || size > max || size % SMG_STG_SECTOR != 0) {
		svc_fail(r, SMG_ERR_POLICY,
			 "size %" PRIu64 ": a multiple of %u up to %" PRIu64, size,
			 SMG_STG_SECTOR, max);
		return NULL;
	}
	for (unsigned i = 0; i < SMG_DSVC_DISKS_MAX; i++) {
		if (sv->disks[i].state == SD_FREE && d == NULL)
			d = &sv->disks[i];
		else if (sv->disks[i].state != SD_FREE)
			total += sv->disks[i].size;
	}
	if (sv->cfg.capacity &&
	    (total > sv->cfg.capacity || size > sv->cfg.capacity - total)) {
		svc_fail(r, SMG_ERR_POLICY,
			 "capacity: %" PRIu64 " of %" PRIu64 " bytes in use", total,
			 sv->cfg.capacity);
		return NULL;
	}
	if (d == NULL) {
		svc_fail(r, SMG_ERR_BUSY, "%u disks already", SMG_DSVC_DISKS_MAX);
		return NULL;
	}
	memset(d, 0, sizeof(*d));
	d->state = SD_BUSY;
	d->size = size;
	snprintf(d->name, sizeof(d->name), "%s", name);
	return d;
}

void svc_set_state(struct svc *sv, struct svc_disk *d, enum sd_state st, uint64_t owner)
{
	pthread_mutex_lock(&sv->mu);
	d->state = st;
	d->owner = owner;
	pthread_mutex_unlock(&sv->mu);
}

/* Open path as d's guest disk and export it as d->name. */
int svc_bring_up(struct svc *sv, struct svc_disk *d, const char *path, bool held)
{
	char sname[SMG_DSVC_NAME_MAX + 16];
	struct smg_vdisk_opts o = {.path = path,
				   .surrogate_dir = sv->surr_dir,
				   .surrogate_name = sname,
				   .chunk_size = sv->cfg.chunk,
				   .direct = sv->cfg.direct};
	int r;

	snprintf(sname, sizeof(sname), ".%s.surrogate", d->name);
	if (o.chunk_size == 0)
		o.chunk_size = smg_stg_chunk_for(d->size);
	if ((r = smg_vdisk_open(&o, &d->vd)) != 0)
		return r;
	if (held) {
		smg_vdisk_pause(d->vd);
		d->held = true;
	}
	if ((r = smg_nbd_server_add(sv->nbd, d->name, d->vd)) != 0) {
		smg_vdisk_close(d->vd);
		d->vd = NULL;
		d->held = false;
	}
	return r;
}

void svc_stop_workload(struct svc_disk *d)
{
	smg_wl_stop(d->wl);
	smg_trace_free(d->trace);
	d->wl = NULL;
	d->trace = NULL;
}

/* The disk leaves this host: its clients get EIO, the export goes. */
void svc_take_down(struct svc *sv, struct svc_disk *d)
{
	if (d->vd == NULL)
		return;
	smg_vdisk_fail_io(d->vd);
	svc_stop_workload(d);
	smg_nbd_server_remove(sv->nbd, d->name);
	if (d->src != NULL)
		(void)smg_stg_src_end(d->src, false);
	d->src = NULL;
	smg_stg_dst_close(d->dst);
	d->dst = NULL;
	smg_vdisk_close(d->vd);
	d->vd = NULL;
}

void svc_unlink_image(const struct svc *sv, const char *name, enum path_kind k)
{
	char path[SVC_PATH_MAX];

	if (svc_disk_path(sv, name, k, path, sizeof(path)) == 0 && unlink(path) != 0 &&
	    errno != ENOENT)
		smg_warn("disk service: cannot remove %s: %s", path, strerror(errno));
}

void svc_release_slot(struct svc *sv, struct svc_disk *d)
{
	pthread_mutex_lock(&sv->mu);
	memset(d, 0, sizeof(*d));
	pthread_mutex_unlock(&sv->mu);
}

/* ---- operator verbs -------------------------------------------------------- */
void svc_do_list(struct svc *sv, struct svc_reply *r)
{
	unsigned n = 0;

	r->text_len = 0;
	pthread_mutex_lock(&sv->mu);
	for (unsigned i = 0; i < SMG_DSVC_DISKS_MAX; i++) {
		struct svc_disk *d = &sv->disks[i];
		int w;

		if (d->state == SD_FREE)
			continue;
		w = snprintf(r->text + r->text_len, SMG_DSVC_REPLY_TEXT - r->text_len,
			     "%s %" PRIu64 " %s %u\n", d->name, d->size,
			     svc_state_names[d->state],
			     smg_nbd_server_clients(sv->nbd, d->name));
		if (w < 0 || (size_t)w >= SMG_DSVC_REPLY_TEXT - r->text_len)
			break;
		r->text_len += (size_t)w;
		n++;
	}
	pthread_mutex_unlock(&sv->mu);
	svc_ok(r, "%u", n);
}

void svc_do_info(struct svc *sv, const char *name, struct svc_reply *r)
{
	struct svc_disk *d;

	pthread_mutex_lock(&sv->mu);
	if ((d = svc_find(sv, name)) == NULL || d->vd == NULL)
		svc_fail(r, SMG_ERR_NOT_FOUND, "no disk '%s'", name);
	else
		svc_ok(r, "%" PRIu64 " %u %s", d->size, smg_vdisk_chunk_size(d->vd),
		       svc_state_names[d->state]);
	pthread_mutex_unlock(&sv->mu);
}

static int source_size(int fd, uint64_t *size)
{
	struct stat st;

	if (fstat(fd, &st) != 0)
		return smg_err_sys(errno);
	if (S_ISBLK(st.st_mode))
		return ioctl(fd, BLKGETSIZE64, size) == 0 ? SMG_OK : smg_err_sys(errno);
	if (!S_ISREG(st.st_mode))
		return SMG_ERR_INVAL;
	*size = (uint64_t)st.st_size;
	return SMG_OK;
}

static bool all_zero(const uint8_t *p, size_t n)
{
	return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0);
}

/* Copy fd into out; holes (SEEK_HOLE, or all-zero 64 KiB blocks of a
 * device) stay holes. */
static int copy_in(int fd, int out, uint64_t size)
{
	uint8_t *buf = malloc(COPY_BUF);
	uint64_t pos = 0;
	int r = buf ? SMG_OK : SMG_ERR_NOMEM;

	while (r == 0 && pos < size) {
		off_t ds = lseek(fd, (off_t)pos, SEEK_DATA), de;

		if (ds < 0 && errno == ENXIO)
			break;
		if (ds < 0)
			ds = (off_t)pos; /* no SEEK_DATA: all data */
		de = lseek(fd, ds, SEEK_HOLE);
		if (de < 0 || (uint64_t)de > size)
			de = (off_t)size;
		for (pos = (uint64_t)ds; r == 0 && pos < (uint64_t)de;) {
			size_t n = (uint64_t)de - pos < COPY_BUF
				       ? (size_t)((uint64_t)de - pos)
				       : COPY_BUF;
			ssize_t k = pread(fd, buf, n, (off_t)pos);

			if (k <= 0) {
				r = k < 0 ? smg_err_sys(errno) : SMG_ERR_TRUNCATED;
				break;
			}
			for (size_t o = 0; o < (size_t)k && r == 0; o += 65536) {
				size_t m = (size_t)k - o < 65536 ? (size_t)k - o : 65536;

				if (!all_zero(buf + o, m) &&
				    pwrite(out, buf + o, m, (off_t)(pos + o)) !=
					(ssize_t)m)
					r = smg_err_sys(errno);
			}
			pos += (uint64_t)k;
		}
	}
	if (r == 0 && fdatasync(out) != 0)
		r = smg_err_sys(errno);
	free(buf);
	return r;
}

/* CREATE (fd < 0) or IMPORT (fd: the source image, opened by the operator). */
void svc_do_create(struct svc *sv, const struct smg_dsvc_req *q, int fd,
		   struct svc_reply *r)
{
	char path[SVC_PATH_MAX];
	struct svc_disk *d;
	uint64_t size = q->num[0];
	int out, e;

	if (q->verb == SMG_DSVC_IMPORT && (fd < 0 || (e = source_size(fd, &size)) != 0)) {
		svc_fail(r, fd < 0 ? SMG_ERR_INVAL : e,
			 "IMPORT needs a regular file or block device");
		return;
	}
	if ((e = svc_disk_path(sv, q->name, P_IMAGE, path, sizeof(path))) != 0) {
		svc_fail(r, e, "path too long");
		return;
	}
	pthread_mutex_lock(&sv->mu);
	d = svc_slot_new(sv, q->name, size, r);
	pthread_mutex_unlock(&sv->mu);
	if (d == NULL)
		return;
	out = open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (out < 0) {
		e = smg_err_sys(errno);
		svc_fail(r, e, "%s: %s", path, strerror(errno));
		svc_release_slot(sv, d);
		return;
	}
	e = ftruncate(out, (off_t)size) != 0 ? smg_err_sys(errno) : SMG_OK;
	if (e == 0 && fd >= 0)
		e = copy_in(fd, out, size);
	close(out);
	if (e == 0)
		e = svc_bring_up(sv, d, path, false);
	if (e != 0) {
		svc_fail(r, e, "%s: %s", q->name, smg_strerror(e));
		unlink(path);
		svc_release_slot(sv, d);
		return;
	}
	svc_set_state(sv, d, SD_IDLE, 0);
	smg_info("disk service: %s %s (%" PRIu64 " bytes)",
		 fd >= 0 ? "imported" : "created", q->name, size);
	svc_ok(r, "%" PRIu64, size);
}

/* mu held: a disk an operator may act on now. */
struct svc_disk *svc_idle_disk(struct svc *sv, const char *name, struct svc_reply *r)
{
	struct svc_disk *d = svc_find(sv, name);

	if (d == NULL)
		svc_fail(r, SMG_ERR_NOT_FOUND, "no disk '%s'", name);
	else if (d->state != SD_IDLE || d->owner != 0)
		svc_fail(r, SMG_ERR_BUSY, "disk '%s' is %s", name,
			 svc_state_names[d->state]);
	else
		return d;
	return NULL;
}

void svc_do_delete(struct svc *sv, const char *name, struct svc_reply *r)
{
	struct svc_disk *d;

	pthread_mutex_lock(&sv->mu);
	if ((d = svc_idle_disk(sv, name, r)) != NULL &&
	    smg_nbd_server_clients(sv->nbd, name) > 0) {
		svc_fail(r, SMG_ERR_BUSY, "disk '%s' has NBD clients", name);
		d = NULL;
	}
	if (d != NULL)
		d->state = SD_BUSY;
	pthread_mutex_unlock(&sv->mu);
	if (d == NULL)
		return;
	svc_take_down(sv, d);
	svc_unlink_image(sv, name, P_IMAGE);
	svc_release_slot(sv, d);
	smg_info("disk service: deleted %s", name);
	svc_ok(r, "%s", "");
}

void svc_do_workload(struct svc *sv, const struct smg_dsvc_req *q, struct svc_reply *r)
{
	struct smg_wl_opts o = {.threads = 1, .interval_us = 1000, .seed = 1};
	struct smg_trace *tr = NULL, *old_tr = NULL;
	struct smg_wl *old_wl = NULL;
	struct svc_disk *d;
	int e = SMG_OK;

	if (strncmp(q->word, "trace:", 6) == 0) {
		if ((e = smg_trace_load(q->word + 6, &tr)) != 0) {
			svc_fail(r, e, "trace: %s", smg_strerror(e));
			return;
		}
		o.kind = SMG_WL_TRACE;
		o.trace = tr;
	} else {
		o.kind = strcmp(q->word, "read-hot") == 0      ? SMG_WL_READ_HOT
			 : strcmp(q->word, "write-heavy") == 0 ? SMG_WL_WRITE_HEAVY
							       : SMG_WL_MIXED;
	}
	pthread_mutex_lock(&sv->mu);
	d = svc_find(sv, q->name);
	if (d == NULL || d->vd == NULL || d->state == SD_BUSY) {
		e = svc_fail(r, SMG_ERR_NOT_FOUND, "no disk '%s'", q->name);
	} else if (strcmp(q->word, "stop") == 0) {
		/* A workload blocked in a held gate would not join soon: refuse
		 * then; otherwise it is joined below, outside the table lock. */
		if (d->held) {
			e = svc_fail(r, SMG_ERR_BUSY, "'%s': guest I/O is held", q->name);
		} else {
			old_wl = d->wl;
			old_tr = d->trace;
			d->wl = NULL;
			d->trace = NULL;
		}
	} else if (d->wl != NULL) {
		e = svc_fail(r, SMG_ERR_EXISTS, "'%s' runs a workload already", q->name);
	} else if ((e = smg_wl_start(d->vd, &o, &d->wl)) != 0) {
		svc_fail(r, e, "workload: %s", smg_strerror(e));
	} else {
		d->trace = tr;
		tr = NULL;
	}
	pthread_mutex_unlock(&sv->mu);
	smg_wl_stop(old_wl);
	smg_trace_free(old_tr);
	smg_trace_free(tr);
	if (e == 0)
		svc_ok(r, "%s", "");
}

/* ---- start and stop ------------------------------------------------------------ */
static bool has_suffix(const char *s, const char *suf, size_t *stem)
{
	size_t n = strlen(s), k = strlen(suf);

	if (n <= k || strcmp(s + n - k, suf) != 0)
		return false;
	*stem = n - k;
	return true;
}

static void load_one(struct svc *sv, const char *fname, size_t stem)
{
	char name[SMG_DSVC_NAME_MAX + 1], path[SVC_PATH_MAX], sp[SVC_PATH_MAX];
	struct svc_reply r = {0};
	struct svc_disk *d;
	struct stat st;

	if (!smg_dsvc_name_valid(fname, stem))
		return;
	memcpy(name, fname, stem);
	name[stem] = '\0';
	if (svc_disk_path(sv, name, P_IMAGE, path, sizeof(path)) != 0 ||
	    svc_disk_path(sv, name, P_SURROGATE, sp, sizeof(sp)) != 0 ||
	    lstat(path, &st) != 0 || !S_ISREG(st.st_mode))
		return;
	if (access(sp, F_OK) == 0) {
		smg_err(
		    "disk service: %s has a WAIO surrogate left (%s): the service "
		    "stopped mid-migration; NOT exporting %s until an operator merges "
		    "or removes it",
		    name, sp, name);
		return;
	}
	pthread_mutex_lock(&sv->mu);
	d = svc_slot_new(sv, name, (uint64_t)st.st_size, &r);
	pthread_mutex_unlock(&sv->mu);
	if (d == NULL) {
		smg_err("disk service: %s: %s", name, r.line);
		return;
	}
	if (svc_bring_up(sv, d, path, false) != 0) {
		svc_release_slot(sv, d);
		return;
	}
	svc_set_state(sv, d, SD_IDLE, 0);
}

int svc_load(struct svc *sv)
{
	struct dirent *e;
	DIR *dir = opendir(sv->storage_dir);
	size_t stem;

	if (dir == NULL)
		return smg_err_sys(errno);
	while ((e = readdir(dir)) != NULL) {
		if (has_suffix(e->d_name, ".img", &stem)) {
			load_one(sv, e->d_name, stem);
		} else if (e->d_name[0] == '.' &&
			   has_suffix(e->d_name, ".incoming", &stem)) {
			/* Never committed (COMMITTED renames it first): a
			 * receiver's leftover from before a restart. */
			smg_warn("disk service: removing uncommitted %s/%s",
				 sv->storage_dir, e->d_name);
			unlinkat(dirfd(dir), e->d_name, 0);
		}
	}
	closedir(dir);
	return SMG_OK;
}

void svc_unload(struct svc *sv)
{
	for (unsigned i = 0; i < SMG_DSVC_DISKS_MAX; i++) {
		struct svc_disk *d = &sv->disks[i];

		if (d->state == SD_FREE || d->vd == NULL)
			continue;
		/* Whatever the outcome of a migration in flight, the newest
		 * writes belong in the original before the service goes. */
		if (d->src != NULL && smg_stg_src_end(d->src, true) == 0)
			d->src = NULL;
		if (d->state == SD_RECEIVING)
			svc_unlink_image(sv, d->name, P_INCOMING);
		svc_take_down(sv, d);
		memset(d, 0, sizeof(*d));
	}
}
