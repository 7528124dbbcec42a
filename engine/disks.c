/* The VM's disks inside a migration (DESIGN §5): storage/ does the work;
 * this file ties it to the engine's rounds and channels.
 *
 * Disk i travels on channel i % nchan only, so a newer version of a chunk
 * can never overtake an older one. Each pre-copy round, that channel's
 * thread sends, after its share of memory pages and before ROUND_END, the
 * whole current storage phase of its disks: the bulk copy in round 0, one
 * ITER round per later round, and the FINAL phase in stop-and-copy. While
 * the migration runs, each source disk is exported over NBD so the guest's
 * I/O goes through the same storage layer. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/base.h"
#include "engine/internal.h"
#include "proto/proto.h"
#include "storage/storage.h"
#include "transport/transport.h"

struct smg_engine_disks {
	unsigned n;
	bool src;
	/* source */
	struct smg_vdisk *vd[SMG_DOMAIN_DISKS_MAX];
	struct smg_stg_src *ss[SMG_DOMAIN_DISKS_MAX];
	struct smg_nbd_server *nbd[SMG_DOMAIN_DISKS_MAX];
	struct smg_wl *wl[SMG_DOMAIN_DISKS_MAX];
	struct smg_trace *trace;
	bool bulk_done[SMG_DOMAIN_DISKS_MAX];
	bool paused;
	/* destination */
	struct smg_stg_dst *sd[SMG_DOMAIN_DISKS_MAX];
	char path[SMG_DOMAIN_DISKS_MAX][SMG_DOMAIN_PATH_MAX + 64];
	uint32_t chunk[SMG_DOMAIN_DISKS_MAX];
	uint8_t roots[SMG_DOMAIN_DISKS_MAX][SMG_DIGEST_LEN];
};

int smg_engine_disks_src_open(const struct smg_domain_info *info, const char *nbd_dir,
			      struct smg_engine_disks **out)
{
	struct smg_engine_disks *e;
	int r = SMG_OK;

	*out = NULL;
	if ((e = calloc(1, sizeof(*e))) == NULL)
		return SMG_ERR_NOMEM;
	e->src = true;
	for (unsigned i = 0; i < info->n_disks; i++) {
		struct smg_vdisk_opts o = {.path = info->disks[i].path};

		if ((r = smg_vdisk_open(&o, &e->vd[i])) != SMG_OK) {
			smg_err("disk %u (%s): %s", i, info->disks[i].path,
				smg_strerror(r));
			break;
		}
		e->n = i + 1;
		if (nbd_dir != NULL) {
			char sock[SMG_DOMAIN_PATH_MAX + 64];

			snprintf(sock, sizeof(sock), "%s/%s.%u.nbd", nbd_dir, info->name,
				 i);
			if ((r = smg_nbd_server_start(e->vd[i], sock, &e->nbd[i])) !=
			    SMG_OK)
				break;
			smg_info("disk %u served over NBD at nbd+unix:///%s?socket=%s", i,
				 SMG_NBD_EXPORT_NAME, sock);
		}
	}
	if (r != SMG_OK) {
		smg_engine_disks_free(e);
		return r;
	}
	*out = e;
	return SMG_OK;
}

int smg_engine_disks_workload(struct smg_engine_disks *e, const char *spec)
{
	struct smg_wl_opts o = {.threads = 1, .interval_us = 1000};
	int r;

	if (e == NULL || spec == NULL)
		return SMG_OK;
	if (strncmp(spec, "trace:", 6) == 0) {
		if ((r = smg_trace_load(spec + 6, &e->trace)) != SMG_OK)
			return r;
		o.kind = SMG_WL_TRACE;
		o.trace = e->trace;
	} else if (strcmp(spec, "read-hot") == 0) {
		o.kind = SMG_WL_READ_HOT;
	} else if (strcmp(spec, "write-heavy") == 0) {
		o.kind = SMG_WL_WRITE_HEAVY;
	} else if (strcmp(spec, "mixed") == 0) {
		o.kind = SMG_WL_MIXED;
	} else {
		smg_err("disk workload '%s': read-hot, write-heavy, mixed or trace:FILE",
			spec);
		return SMG_ERR_CONFIG;
	}
	for (unsigned i = 0; i < e->n; i++) {
		o.seed = i + 1;
		if ((r = smg_wl_start(e->vd[i], &o, &e->wl[i])) != SMG_OK)
			return r;
	}
	return SMG_OK;
}

static void stop_workload(struct smg_engine_disks *e)
{
	for (unsigned i = 0; i < e->n; i++) {
		struct smg_wl_result res;

		if (e->wl[i] == NULL)
			continue;
		smg_wl_result(e->wl[i], &res);
		smg_info("disk %u workload: %llu reads (p99 %.3f ms), %llu writes (p99 "
			 "%.3f ms), "
			 "%llu errors",
			 i, (unsigned long long)res.reads, res.read_p99_ms,
			 (unsigned long long)res.writes, res.write_p99_ms,
			 (unsigned long long)res.errors);
		smg_wl_stop(e->wl[i]);
		e->wl[i] = NULL;
	}
	smg_trace_free(e->trace);
	e->trace = NULL;
}

unsigned smg_engine_disks_count(const struct smg_engine_disks *e)
{
	return e != NULL ? e->n : 0;
}

void smg_engine_disks_spec(const struct smg_engine_disks *e, unsigned i, uint64_t *size,
			   uint32_t *chunk)
{
	*size = smg_vdisk_size(e->vd[i]);
	*chunk = smg_vdisk_chunk_size(e->vd[i]);
}

int smg_engine_disks_begin(struct smg_engine_disks *e, enum smg_stg_mode mode)
{
	int r;

	for (unsigned i = 0; i < e->n; i++) {
		struct smg_stg_src_opts so = {.mode = mode, .disk_id = i};

		if ((r = smg_stg_src_begin(e->vd[i], &so, &e->ss[i])) != SMG_OK)
			return r;
	}
	return SMG_OK;
}

/* Every frame of one phase (or ITER round) of disk i on chan. A frame is
 * filled in a scratch buffer first: a begun bulk frame cannot be dropped,
 * and only the storage layer knows whether a phase has one more frame. */
static int send_phase(struct smg_engine_disks *e, unsigned i, struct smg_session *s,
		      unsigned chan, enum smg_stg_phase ph, struct smg_ratelim *rl,
		      uint64_t *bytes)
{
	uint8_t *buf = malloc(SMG_FRAME_PAYLOAD_MAX);
	size_t used;
	int r = buf == NULL ? SMG_ERR_NOMEM : SMG_OK;

	while (r == SMG_OK) {
		r = smg_stg_src_next(e->ss[i], ph, buf, SMG_FRAME_PAYLOAD_MAX, &used);
		if (r != SMG_OK || used == 0)
			break;
		smg_ratelim_wait(rl, used);
		r = smg_chan_send(s, chan, SMG_FT_DISK_CHUNK, buf, used);
		*bytes += used;
	}
	free(buf);
	return r;
}

int smg_engine_disks_send(struct smg_engine_disks *e, struct smg_session *s,
			  unsigned chan, unsigned nchan, bool final,
			  struct smg_ratelim *rl, uint64_t *bytes)
{
	int r;

	if (e == NULL)
		return SMG_OK;
	for (unsigned i = chan; i < e->n; i += nchan) {
		if (e->ss[i] == NULL)
			continue;
		if (!e->bulk_done[i]) {
			if ((r = send_phase(e, i, s, chan, SMG_STG_PHASE_BULK, rl,
					    bytes)) != SMG_OK)
				return r;
			e->bulk_done[i] = true;
			if (!final)
				continue;
		}
		r = send_phase(e, i, s, chan,
			       final ? SMG_STG_PHASE_FINAL : SMG_STG_PHASE_ITER, rl,
			       bytes);
		if (r != SMG_OK)
			return r;
	}
	return SMG_OK;
}

uint64_t smg_engine_disks_pending(const struct smg_engine_disks *e)
{
	uint64_t n = 0;

	for (unsigned i = 0; e != NULL && i < e->n; i++) {
		if (e->ss[i] != NULL && !e->bulk_done[i])
			return UINT64_MAX;
		if (e->ss[i] != NULL)
			n += smg_stg_src_pending(e->ss[i]);
	}
	return n;
}

void smg_engine_disks_pause(struct smg_engine_disks *e)
{
	for (unsigned i = 0; e != NULL && i < e->n && !e->paused; i++)
		smg_vdisk_pause(e->vd[i]);
	if (e != NULL)
		e->paused = true;
}

int smg_engine_disks_src_root(struct smg_engine_disks *e, unsigned i,
			      uint8_t root[SMG_DIGEST_LEN])
{
	return smg_stg_src_digest(e->ss[i], root);
}

int smg_engine_disks_end(struct smg_engine_disks *e, bool committed)
{
	int r = SMG_OK, r2;

	if (e == NULL || !e->src)
		return SMG_OK;
	for (unsigned i = 0; i < e->n; i++) {
		/* Before COMMIT the source VM carries on: its surrogate writes
		 * must be in the original before its I/O is let go. After
		 * COMMIT the source copy is destroyed: nothing to merge. */
		if (e->ss[i] != NULL &&
		    (r2 = smg_stg_src_end(e->ss[i], !committed)) != SMG_OK)
			r = r ?: r2;
		e->ss[i] = NULL;
	}
	for (unsigned i = 0; e->paused && i < e->n; i++)
		smg_vdisk_resume(e->vd[i]);
	e->paused = false;
	/* After COMMIT the VM is gone from here, and with it its disk I/O
	 * (its threads may have been held at the paused gate until now). */
	if (committed)
		stop_workload(e);
	return r;
}

/* ---- destination ------------------------------------------------------------ */
int smg_engine_disks_dst_open(const char *const *paths, size_t n, const uint64_t *sizes,
			      const uint32_t *chunks, struct smg_engine_disks **out)
{
	struct smg_engine_disks *e;
	int r = SMG_OK;

	*out = NULL;
	if (n > SMG_DOMAIN_DISKS_MAX)
		return SMG_ERR_PROTO;
	if ((e = calloc(1, sizeof(*e))) == NULL)
		return SMG_ERR_NOMEM;
	for (unsigned i = 0; i < n; i++) {
		snprintf(e->path[i], sizeof(e->path[i]), "%s", paths[i]);
		e->chunk[i] = chunks[i];
		if ((r = smg_stg_dst_open(e->path[i], sizes[i], chunks[i], i,
					  &e->sd[i])) != SMG_OK) {
			smg_err("disk %u: cannot create %s: %s", i, e->path[i],
				smg_strerror(r));
			break;
		}
		e->n = i + 1;
	}
	if (r != SMG_OK) {
		smg_engine_disks_discard(e);
		return r;
	}
	*out = e;
	return SMG_OK;
}

int smg_engine_disks_apply(struct smg_engine_disks *e, unsigned chan, unsigned nchan,
			   const uint8_t *p, size_t len)
{
	uint32_t disk;

	/* Version, phase, count, then the disk id: read before anything else
	 * so a frame for a disk we do not have, or on a channel the disk does
	 * not travel on (it could overtake a newer copy), is refused. */
	if (e == NULL || len < SMG_STG_FRAME_HDR)
		return SMG_ERR_PROTO;
	disk = smg_load_be32(p + 4);
	if (disk >= e->n || disk % nchan != chan) {
		smg_peer_log(SMG_LOG_ERROR,
			     "disk frame for disk %u on channel %u refused", disk, chan);
		return SMG_ERR_PROTO;
	}
	return smg_stg_dst_apply(e->sd[disk], p, len);
}

/* The root of disk i recomputed from its image file alone. */
static int fresh_root(struct smg_engine_disks *e, unsigned i, uint32_t chunk,
		      uint8_t root[SMG_DIGEST_LEN])
{
	struct smg_image *img;
	int r;

	if ((r = smg_image_open(e->path[i], SMG_IMAGE_RDONLY, &img)) != SMG_OK)
		return r;
	r = smg_stg_image_digest(img, chunk, root);
	smg_image_close(img);
	return r;
}

int smg_engine_disks_verify(struct smg_engine_disks *e, size_t n_roots,
			    const ProtobufCBinaryData *roots, bool fresh)
{
	uint8_t mine[SMG_DIGEST_LEN], again[SMG_DIGEST_LEN];
	int r;

	if (n_roots != smg_engine_disks_count(e))
		return SMG_ERR_INTEGRITY;
	for (unsigned i = 0; i < n_roots; i++) {
		if ((r = smg_stg_dst_digest(e->sd[i], mine)) != SMG_OK)
			return r;
		if (fresh && ((r = fresh_root(e, i, e->chunk[i], again)) != SMG_OK ||
			      memcmp(again, mine, SMG_DIGEST_LEN) != 0)) {
			smg_err(
			    "disk %u: the image on disk differs from what was written",
			    i);
			return SMG_ERR_INTEGRITY;
		}
		if (roots[i].len != SMG_DIGEST_LEN ||
		    memcmp(roots[i].data, mine, SMG_DIGEST_LEN) != 0) {
			smg_err("disk %u: digest differs from the source's manifest", i);
			return SMG_ERR_INTEGRITY;
		}
	}
	return SMG_OK;
}

void smg_engine_disks_damage(struct smg_engine_disks *e)
{
	struct smg_image *img;
	uint8_t b;

	/* Behind the destination's back, through a second descriptor: what a
	 * bad disk or a buggy writer would do after the records arrived. */
	if (e == NULL || e->n == 0 || smg_image_open(e->path[0], 0, &img) != SMG_OK)
		return;
	if (smg_image_size(img) > 0 && smg_image_read(img, &b, 1, 0) == SMG_OK) {
		b ^= 0xff;
		(void)smg_image_write(img, &b, 1, 0);
	}
	smg_image_close(img);
}

void smg_engine_disks_discard(struct smg_engine_disks *e)
{
	for (unsigned i = 0; e != NULL && i < e->n; i++) {
		smg_stg_dst_close(e->sd[i]);
		e->sd[i] = NULL;
		if (e->path[i][0] != '\0')
			unlink(e->path[i]);
	}
	smg_engine_disks_free(e);
}

void smg_engine_disks_free(struct smg_engine_disks *e)
{
	if (e == NULL)
		return;
	if (e->src)
		(void)smg_engine_disks_end(e, false);
	stop_workload(e);
	for (unsigned i = 0; i < e->n; i++) {
		smg_nbd_server_stop(e->nbd[i]);
		smg_vdisk_close(e->vd[i]);
		smg_stg_dst_close(e->sd[i]);
	}
	free(e);
}
