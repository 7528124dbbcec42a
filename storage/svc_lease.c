/* The disk service's leases: a disk leaving (source) or arriving
 * (destination) under one control connection, the requests that drive it,
 * and what becomes of it when the connection ends (docs/storage.md). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/base.h"
#include "storage/svc.h"

/* ---- source lease ------------------------------------------------------------ */
static void do_send(struct svc_conn *c, const struct smg_dsvc_req *q, struct svc_reply *r)
{
	struct smg_stg_src_opts so = {
	    .mode = strcmp(q->word, "dbt") == 0 ? SMG_STG_MODE_DBT : SMG_STG_MODE_WAIO,
	    .disk_id = (uint32_t)q->num[0]};
	struct svc *sv = c->sv;
	struct svc_disk *d;
	int e;

	pthread_mutex_lock(&sv->mu);
	if ((d = svc_idle_disk(sv, q->name, r)) != NULL) {
		d->state = SD_SENDING;
		d->owner = c->id;
	}
	pthread_mutex_unlock(&sv->mu);
	if (d == NULL)
		return;
	if ((e = smg_stg_src_begin(d->vd, &so, &d->src)) != 0) {
		svc_set_state(sv, d, SD_IDLE, 0);
		svc_fail(r, e, "cannot start tracking '%s': %s", q->name,
			 smg_strerror(e));
		return;
	}
	c->lease = d;
	smg_info("disk service: %s leaves by %s", d->name, q->word);
	svc_ok(r, "%" PRIu64 " %u", d->size, smg_vdisk_chunk_size(d->vd));
}

static void pending_fields(struct svc_disk *d, char *out, size_t n)
{
	struct smg_stg_pending p;

	smg_stg_src_get_pending(d->src, &p);
	snprintf(out, n, "%" PRIu64 " %" PRIu64 " %" PRIu64, p.chunks, p.bytes,
		 p.bulk_left);
}

static void do_next(struct svc_disk *d, const char *phase, struct svc_reply *r)
{
	enum smg_stg_phase ph = phase[0] == 'b'	  ? SMG_STG_PHASE_BULK
				: phase[0] == 'i' ? SMG_STG_PHASE_ITER
						  : SMG_STG_PHASE_FINAL;
	char f[96];
	size_t used;
	int e;

	if (ph == SMG_STG_PHASE_FINAL && !d->held) {
		svc_fail(r, SMG_ERR_STATE, "FINAL needs PAUSE first");
		return;
	}
	e = smg_stg_src_next(d->src, ph, r->payload, SMG_DSVC_FRAME_MAX, &used);
	if (e != 0) {
		svc_fail(r, e, "%s: %s", phase, smg_strerror(e));
		return;
	}
	pending_fields(d, f, sizeof(f));
	svc_ok(r, "%s", f);
	r->payload_len = used;
}

/* Before COMMIT: WAIO's writes go back into the original, I/O resumes. */
static int src_abort(struct svc *sv, struct svc_disk *d)
{
	int e = smg_stg_src_end(d->src, true);

	if (e != 0) {
		/* The surrogate stays in use: no write is lost; the disk stays
		 * leased-out until an operator looks (the log says why). */
		smg_err("disk service: %s: merge back failed: %s", d->name,
			smg_strerror(e));
		return e;
	}
	d->src = NULL;
	if (d->held)
		smg_vdisk_resume(d->vd);
	d->held = false;
	svc_set_state(sv, d, SD_IDLE, 0);
	return SMG_OK;
}

/* After DONE (or SETTLE resumed): the VM runs elsewhere; this copy goes. */
static void src_release(struct svc *sv, struct svc_disk *d)
{
	svc_set_state(sv, d, SD_BUSY, 0);
	svc_take_down(sv, d);
	svc_unlink_image(sv, d->name, P_IMAGE);
	smg_info("disk service: %s handed over and released", d->name);
	svc_release_slot(sv, d);
}

static void do_source(struct svc_conn *c, const struct smg_dsvc_req *q,
		      struct svc_reply *r)
{
	struct svc_disk *d = c->lease;
	uint8_t root[SMG_STG_DIGEST_LEN];
	char f[96], h[2 * SMG_STG_DIGEST_LEN + 1];
	int e;

	if (d == NULL || (d->state != SD_SENDING && d->state != SD_HANDED_OVER)) {
		svc_fail(r, SMG_ERR_STATE, "%s: no disk is being sent on this connection",
			 smg_dsvc_verb_name(q->verb));
		return;
	}
	/* After COMMIT: RELEASE (DONE came), or ABORT (the sender failed to
	 * record its own COMMIT after all and keeps the VM). */
	if (d->state == SD_HANDED_OVER && q->verb != SMG_DSVC_RELEASE &&
	    q->verb != SMG_DSVC_ABORT) {
		svc_fail(r, SMG_ERR_STATE, "%s after COMMIT",
			 smg_dsvc_verb_name(q->verb));
		return;
	}
	switch (q->verb) {
	case SMG_DSVC_NEXT:
		do_next(d, q->word, r);
		return;
	case SMG_DSVC_PENDING:
		pending_fields(d, f, sizeof(f));
		svc_ok(r, "%s", f);
		return;
	case SMG_DSVC_BUDGET:
		smg_stg_src_set_budget(d->src, q->num[0]);
		break;
	case SMG_DSVC_PAUSE:
		if (!d->held)
			smg_vdisk_pause(d->vd);
		d->held = true;
		break;
	case SMG_DSVC_ROOT:
		if ((e = smg_stg_src_digest(d->src, root)) != 0) {
			svc_fail(r, e, "root: %s", smg_strerror(e));
			return;
		}
		smg_hex_encode(root, sizeof(root), h);
		svc_ok(r, "%s", h);
		return;
	case SMG_DSVC_COMMIT:
		if (!d->held) {
			svc_fail(r, SMG_ERR_STATE, "COMMIT needs the disk paused");
			return;
		}
		svc_set_state(c->sv, d, SD_HANDED_OVER, c->id);
		break;
	case SMG_DSVC_RELEASE:
		if (d->state != SD_HANDED_OVER) {
			svc_fail(r, SMG_ERR_STATE, "RELEASE needs COMMIT first");
			return;
		}
		src_release(c->sv, d);
		c->lease = NULL;
		break;
	case SMG_DSVC_ABORT:
		if ((e = src_abort(c->sv, d)) != 0) {
			svc_fail(r, e, "merge back: %s", smg_strerror(e));
			return;
		}
		c->lease = NULL;
		break;
	default:
		svc_fail(r, SMG_ERR_INTERNAL, "verb");
		return;
	}
	svc_ok(r, "%s", "");
}

static void do_settle(struct svc *sv, const struct smg_dsvc_req *q, struct svc_reply *r)
{
	struct svc_disk *d;
	int e;

	pthread_mutex_lock(&sv->mu);
	d = svc_find(sv, q->name);
	if (d == NULL || d->state != SD_HANDED_OVER || d->owner != 0) {
		svc_fail(r, SMG_ERR_STATE,
			 "'%s' is not a handed-over disk without sender", q->name);
		d = NULL;
	} else {
		d->owner = UINT64_MAX; /* ours while we settle it */
	}
	pthread_mutex_unlock(&sv->mu);
	if (d == NULL)
		return;
	if (strcmp(q->word, "resumed") == 0) {
		src_release(sv, d);
	} else if ((e = src_abort(sv, d)) != 0) {
		svc_set_state(sv, d, SD_HANDED_OVER, 0);
		svc_fail(r, e, "merge back: %s", smg_strerror(e));
		return;
	}
	svc_ok(r, "%s", "");
}

/* ---- destination lease --------------------------------------------------------- */
static void do_recv(struct svc_conn *c, const struct smg_dsvc_req *q, struct svc_reply *r)
{
	struct svc *sv = c->sv;
	char path[SVC_PATH_MAX], img[SVC_PATH_MAX];
	struct svc_disk *d;
	struct stat st;
	int e;

	if (q->num[1] < SMG_STG_CHUNK_MIN || q->num[1] > SMG_STG_CHUNK_MAX ||
	    q->num[1] % SMG_STG_BLOCK != 0 || q->num[2] > UINT32_MAX) {
		svc_fail(r, SMG_ERR_PROTO, "chunk size %" PRIu64, q->num[1]);
		return;
	}
	if ((e = svc_disk_path(sv, q->name, P_INCOMING, path, sizeof(path))) != 0 ||
	    (e = svc_disk_path(sv, q->name, P_IMAGE, img, sizeof(img))) != 0) {
		svc_fail(r, e, "path too long");
		return;
	}
	/* A file of this host's under the name (put there behind the
	 * service's back) is never replaced: refused now, before any byte
	 * arrives, not at COMMITTED (whose rename refuses it too). */
	if (lstat(img, &st) == 0 || errno != ENOENT) {
		svc_fail(r, SMG_ERR_EXISTS, "%s: an image of that name exists", q->name);
		return;
	}
	pthread_mutex_lock(&sv->mu);
	if ((d = svc_slot_new(sv, q->name, q->num[0], r)) != NULL)
		d->owner = c->id;
	pthread_mutex_unlock(&sv->mu);
	if (d == NULL)
		return;
	e = smg_stg_dst_open(path, q->num[0], (uint32_t)q->num[1], (uint32_t)q->num[2],
			     &d->dst);
	if (e == 0 && (e = svc_bring_up(sv, d, path, true)) != 0) {
		smg_stg_dst_close(d->dst);
		d->dst = NULL;
	}
	if (e != 0) {
		svc_fail(r, e, "cannot create %s: %s", q->name, smg_strerror(e));
		if (e != SMG_ERR_EXISTS)
			unlink(path);
		svc_release_slot(sv, d);
		return;
	}
	svc_set_state(sv, d, SD_RECEIVING, c->id);
	c->lease = d;
	smg_info("disk service: receiving %s (%" PRIu64 " bytes)", q->name, q->num[0]);
	svc_ok(r, "%s", "");
}

static void dst_discard(struct svc *sv, struct svc_disk *d)
{
	bool committed = d->state == SD_COMMITTED;

	svc_set_state(sv, d, SD_BUSY, 0);
	svc_take_down(sv, d);
	svc_unlink_image(sv, d->name, committed ? P_IMAGE : P_INCOMING);
	smg_info("disk service: incoming %s discarded", d->name);
	svc_release_slot(sv, d);
}

static int fresh_root(struct svc *sv, struct svc_disk *d,
		      uint8_t root[SMG_STG_DIGEST_LEN])
{
	char path[SVC_PATH_MAX];
	struct smg_image *img;
	uint8_t b;
	int e;

	if ((e = svc_disk_path(sv, d->name, P_INCOMING, path, sizeof(path))) != 0 ||
	    (e = smg_image_open(path, 0, &img)) != 0)
		return e;
	/* Fault point: one byte damaged behind the writer's back, as a bad
	 * disk would; CHECK must then disagree with DIGEST. */
	if (sv->bad_image_fault && smg_image_read(img, &b, 1, 0) == 0) {
		b ^= 0xff;
		(void)smg_image_write(img, &b, 1, 0);
		smg_warn("disk service: fault dst_bad_disk: damaged %s", d->name);
	}
	e = smg_stg_image_digest(img, smg_vdisk_chunk_size(d->vd), root);
	smg_image_close(img);
	return e;
}

static int dst_commit(struct svc *sv, struct svc_disk *d)
{
	char from[SVC_PATH_MAX], to[SVC_PATH_MAX];
	int e, dfd;

	if ((e = svc_disk_path(sv, d->name, P_INCOMING, from, sizeof(from))) != 0 ||
	    (e = svc_disk_path(sv, d->name, P_IMAGE, to, sizeof(to))) != 0)
		return e;
	/* No replacing: a NAME.img that appeared meanwhile is not ours. */
	if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) != 0)
		return smg_err_sys(errno);
	if ((dfd = open(sv->storage_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
		e = fsync(dfd) == 0 ? SMG_OK : smg_err_sys(errno);
		close(dfd);
	}
	return e;
}

static void do_dest(struct svc_conn *c, const struct smg_dsvc_req *q, struct svc_reply *r)
{
	struct svc_disk *d = c->lease;
	uint8_t root[SMG_STG_DIGEST_LEN];
	char h[2 * SMG_STG_DIGEST_LEN + 1];
	int e;

	if (d == NULL || (d->state != SD_RECEIVING &&
			  !(d->state == SD_COMMITTED && (q->verb == SMG_DSVC_RESUME ||
							 q->verb == SMG_DSVC_DISCARD)))) {
		svc_fail(r, SMG_ERR_STATE, "%s: no incoming disk on this connection",
			 smg_dsvc_verb_name(q->verb));
		return;
	}
	switch (q->verb) {
	case SMG_DSVC_APPLY:
		if ((e = smg_stg_dst_apply(d->dst, q->payload, q->payload_len)) != 0) {
			svc_fail(r, e, "record frame: %s", smg_strerror(e));
			return;
		}
		break;
	case SMG_DSVC_DIGEST:
	case SMG_DSVC_CHECK:
		e = q->verb == SMG_DSVC_DIGEST ? smg_stg_dst_digest(d->dst, root)
					       : fresh_root(c->sv, d, root);
		if (e != 0) {
			svc_fail(r, e, "digest: %s", smg_strerror(e));
			return;
		}
		smg_hex_encode(root, sizeof(root), h);
		svc_ok(r, "%s", h);
		return;
	case SMG_DSVC_COMMITTED:
		if ((e = dst_commit(c->sv, d)) != 0) {
			svc_fail(r, e, "cannot keep %s: %s", d->name, smg_strerror(e));
			return;
		}
		smg_stg_dst_close(d->dst);
		d->dst = NULL;
		svc_set_state(c->sv, d, SD_COMMITTED, c->id);
		break;
	case SMG_DSVC_RESUME:
		if (d->state != SD_COMMITTED) {
			svc_fail(r, SMG_ERR_STATE, "RESUME needs COMMITTED first");
			return;
		}
		smg_vdisk_resume(d->vd);
		d->held = false;
		svc_set_state(c->sv, d, SD_IDLE, 0);
		c->lease = NULL;
		smg_info("disk service: %s arrived and resumed", d->name);
		break;
	case SMG_DSVC_DISCARD:
		dst_discard(c->sv, d);
		c->lease = NULL;
		break;
	default:
		svc_fail(r, SMG_ERR_INTERNAL, "verb");
		return;
	}
	svc_ok(r, "%s", "");
}

/* RESUME NAME without a lease: a committed disk whose receiver died. */
static void do_resume_orphan(struct svc *sv, const char *name, struct svc_reply *r)
{
	struct svc_disk *d;

	pthread_mutex_lock(&sv->mu);
	d = svc_find(sv, name);
	if (d == NULL || d->state != SD_COMMITTED || d->owner != 0) {
		svc_fail(r, SMG_ERR_STATE,
			 "'%s' is not a committed disk without receiver", name);
		pthread_mutex_unlock(&sv->mu);
		return;
	}
	d->state = SD_IDLE;
	smg_vdisk_resume(d->vd);
	d->held = false;
	pthread_mutex_unlock(&sv->mu);
	svc_ok(r, "%s", "");
}

void svc_dispatch(struct svc_conn *c, const struct smg_dsvc_req *q, int fd,
		  struct svc_reply *r)
{
	bool takes_lease = q->verb == SMG_DSVC_SEND || q->verb == SMG_DSVC_RECV;

	if (takes_lease && c->lease != NULL) {
		svc_fail(r, SMG_ERR_STATE, "this connection holds a disk already");
		goto out;
	}
	switch (q->verb) {
	case SMG_DSVC_LIST:
		svc_do_list(c->sv, r);
		break;
	case SMG_DSVC_INFO:
		svc_do_info(c->sv, q->name, r);
		break;
	case SMG_DSVC_CREATE:
	case SMG_DSVC_IMPORT:
		svc_do_create(c->sv, q, fd, r);
		break;
	case SMG_DSVC_DELETE:
		svc_do_delete(c->sv, q->name, r);
		break;
	case SMG_DSVC_WORKLOAD:
		svc_do_workload(c->sv, q, r);
		break;
	case SMG_DSVC_SEND:
		do_send(c, q, r);
		break;
	case SMG_DSVC_NEXT:
	case SMG_DSVC_PENDING:
	case SMG_DSVC_BUDGET:
	case SMG_DSVC_PAUSE:
	case SMG_DSVC_ROOT:
	case SMG_DSVC_COMMIT:
	case SMG_DSVC_RELEASE:
	case SMG_DSVC_ABORT:
		do_source(c, q, r);
		break;
	case SMG_DSVC_SETTLE:
		do_settle(c->sv, q, r);
		break;
	case SMG_DSVC_RECV:
		do_recv(c, q, r);
		break;
	case SMG_DSVC_RESUME:
		if (c->lease == NULL && q->name[0] != '\0')
			do_resume_orphan(c->sv, q->name, r);
		else
			do_dest(c, q, r);
		break;
	case SMG_DSVC_APPLY:
	case SMG_DSVC_DIGEST:
	case SMG_DSVC_CHECK:
	case SMG_DSVC_COMMITTED:
	case SMG_DSVC_DISCARD:
		do_dest(c, q, r);
		break;
	case SMG_DSVC_VERB_MAX_:
		svc_fail(r, SMG_ERR_INTERNAL, "verb");
		break;
	}
out:
	if (fd >= 0)
		close(fd);
}

void svc_lease_drop(struct svc_conn *c)
{
	struct svc_disk *d = c->lease;

	c->lease = NULL;
	if (d == NULL)
		return;
	switch (d->state) {
	case SD_SENDING:
		smg_warn("disk service: the sender of %s left before COMMIT; merging "
			 "back and resuming its I/O",
			 d->name);
		(void)src_abort(c->sv, d);
		break;
	case SD_RECEIVING:
		smg_warn("disk service: the receiver of %s left before COMMIT", d->name);
		dst_discard(c->sv, d);
		break;
	case SD_HANDED_OVER:
		smg_warn(
		    "disk service: the sender of %s left after COMMIT; its I/O stays "
		    "held until 'secmig disk settle %s resumed|aborted'",
		    d->name, d->name);
		svc_set_state(c->sv, d, SD_HANDED_OVER, 0);
		break;
	case SD_COMMITTED:
		smg_warn("disk service: the receiver of %s left after COMMIT; its I/O "
			 "stays held until 'secmig disk resume %s'",
			 d->name, d->name);
		svc_set_state(c->sv, d, SD_COMMITTED, 0);
		break;
	default:
		break;
	}
}
