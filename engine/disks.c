/* The VM's disks inside a migration (DESIGN §5): the host's disk service
 * owns and serves them (storage/service.c); this file drives it from the
 * engine's rounds and channels, one control connection (one lease) per disk.
 *
 * Disk i travels on channel i % nchan only, so a newer version of a chunk
 * can never overtake an older one. Each pre-copy round, that channel's
 * thread sends the current storage phase of its disks (the bulk copy in
 * round 0, one ITER round per later round, the FINAL phase in
 * stop-and-copy) between its page frames and before ROUND_END: the pump
 * below. If this process dies, the service undoes (or, after COMMIT, keeps)
 * each lease. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/base.h"
#include "engine/internal.h"
#include "proto/proto.h"
#include "storage/storage.h"
#include "transport/transport.h"

_Static_assert(SMG_DSVC_FRAME_MAX <= SMG_FRAME_PAYLOAD_MAX,
	       "a record frame must fit one bulk frame");

struct smg_engine_disks {
	unsigned n;
	bool src;
	struct smg_dsvc_conn *c[SMG_DOMAIN_DISKS_MAX];
	char name[SMG_DOMAIN_DISKS_MAX][SMG_DSVC_NAME_MAX + 1];
	uint64_t size[SMG_DOMAIN_DISKS_MAX];
	uint32_t chunk[SMG_DOMAIN_DISKS_MAX];
	bool leased[SMG_DOMAIN_DISKS_MAX]; /* SEND/RECV answered OK, not ended */
	bool bulk_done[SMG_DOMAIN_DISKS_MAX];
	bool paused, committed;
};

static int call(struct smg_engine_disks *e, unsigned i, const char *line,
		const void *payload, size_t plen, struct smg_dsvc_reply *rep)
{
	int r = smg_dsvc_call(e->c[i], line, payload, plen, -1, rep);

	if (r != SMG_OK)
		smg_err("disk %s: %.24s: %s", e->name[i], line, smg_dsvc_errmsg(e->c[i]));
	return r;
}

static int connect_disk(struct smg_engine_disks *e, unsigned i, const char *sock)
{
	int r = smg_dsvc_connect(sock, &e->c[i]);

	if (r != SMG_OK)
		smg_err("disk %s: no disk service at %s: %s (start 'secmig disk serve')",
			e->name[i], sock,
			r == SMG_ERR_SYS ? strerror(smg_err_errno()) : smg_strerror(r));
	return r;
}

int smg_engine_disks_src_open(const struct smg_domain_info *info, const char *sock,
			      struct smg_engine_disks **out)
{
	struct smg_engine_disks *e;
	struct smg_dsvc_reply rep;
	char line[SMG_DSVC_LINE_MAX];
	uint64_t v = 0;
	int r = SMG_OK;

	*out = NULL;
	if ((e = calloc(1, sizeof(*e))) == NULL)
		return SMG_ERR_NOMEM;
	e->src = true;
	for (unsigned i = 0; i < info->n_disks && r == SMG_OK; i++) {
		const char *name = info->disks[i].path;

		/* A disk of a migrating VM is a disk of this host's service,
		 * named D.i (docs/storage.md), never a path. */
		if (!smg_dsvc_name_valid(name, strlen(name))) {
			smg_err("disk %u '%s': not a disk service name (import the image "
				"with 'secmig disk import %s.%u FILE')",
				i, name, info->name, i);
			r = SMG_ERR_CONFIG;
			break;
		}
		memcpy(e->name[i], name, strlen(name) + 1);
		e->n = i + 1;
		if ((r = connect_disk(e, i, sock)) != SMG_OK)
			break;
		snprintf(line, sizeof(line), "INFO %s", e->name[i]);
		if ((r = call(e, i, line, NULL, 0, &rep)) != SMG_OK)
			break;
		if (rep.nfields < 2 ||
		    smg_parse_uint(rep.fields[0], UINT64_MAX, &e->size[i]) != SMG_OK ||
		    smg_parse_uint(rep.fields[1], UINT64_MAX, &v) != SMG_OK ||
		    v > SMG_STG_CHUNK_MAX)
			r = SMG_ERR_PROTO;
		e->chunk[i] = (uint32_t)v;
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
	struct smg_dsvc_reply rep;
	char line[SMG_DSVC_LINE_MAX];
	int r;

	if (e == NULL || spec == NULL)
		return SMG_OK;
	if (strlen(spec) > SMG_DSVC_LINE_MAX - SMG_DSVC_NAME_MAX - 16)
		return SMG_ERR_TOO_LONG;
	for (unsigned i = 0; i < e->n; i++) {
		snprintf(line, sizeof(line), "WORKLOAD %s %s", e->name[i], spec);
		if ((r = call(e, i, line, NULL, 0, &rep)) != SMG_OK)
			return r == SMG_ERR_PROTO ? SMG_ERR_CONFIG : r;
	}
	return SMG_OK;
}

unsigned smg_engine_disks_count(const struct smg_engine_disks *e)
{
	return e != NULL ? e->n : 0;
}

void smg_engine_disks_spec(const struct smg_engine_disks *e, unsigned i, uint64_t *size,
			   uint32_t *chunk)
{
	*size = e->size[i];
	*chunk = e->chunk[i];
}

int smg_engine_disks_begin(struct smg_engine_disks *e, enum smg_stg_mode mode)
{
	struct smg_dsvc_reply rep;
	char line[SMG_DSVC_LINE_MAX];
	int r;

	for (unsigned i = 0; e != NULL && i < e->n; i++) {
		snprintf(line, sizeof(line), "SEND %s %s %u", e->name[i],
			 mode == SMG_STG_MODE_DBT ? "dbt" : "waio", i);
		if ((r = call(e, i, line, NULL, 0, &rep)) != SMG_OK)
			return r;
		e->leased[i] = true;
	}
	return SMG_OK;
}

/* ---- source: a channel's disks, a frame at a time ---------------------------
 * The channel thread asks the service for the next record frame (NEXT
 * PHASE) and goes on with its memory pages while the service reads and
 * hashes the chunk; between page frames it sends what has arrived and asks
 * again, and after its pages it waits for the rest. Per disk the phases
 * keep their order: the bulk copy, then (stop-and-copy) FINAL, or one ITER
 * round. */
static const char *first_phase(const struct smg_engine_disks *e, unsigned i, bool final)
{
	if (!e->leased[i])
		return NULL;
	if (!e->bulk_done[i])
		return "bulk";
	return final ? "final" : "iter";
}

/* The phase of disk i after `phase` ended, NULL: the disk is done for this
 * round. A round that carried the bulk copy carries nothing else unless it
 * is the stop-and-copy round. */
static const char *next_phase(struct smg_engine_disks *e, unsigned i, const char *phase,
			      bool final)
{
	if (strcmp(phase, "bulk") != 0)
		return NULL;
	e->bulk_done[i] = true;
	return final ? "final" : NULL;
}

static int pump_ask(struct smg_disk_pump *p)
{
	char line[32];
	int r;

	while (p->phase == NULL && p->disk < p->e->n) {
		p->disk += p->started ? p->nchan : 0;
		p->started = true;
		if (p->disk < p->e->n)
			p->phase = first_phase(p->e, p->disk, p->final);
	}
	if (p->phase == NULL)
		return SMG_OK; /* every disk of this channel is done */
	snprintf(line, sizeof(line), "NEXT %s", p->phase);
	if ((r = smg_dsvc_ask(p->e->c[p->disk], line, NULL, 0, -1)) != SMG_OK)
		smg_err("disk %s: %s: %s", p->e->name[p->disk], line,
			smg_dsvc_errmsg(p->e->c[p->disk]));
	return r;
}

int smg_disk_pump_start(struct smg_disk_pump *p, struct smg_engine_disks *e,
			struct smg_session *s, unsigned chan, unsigned nchan, bool final,
			struct smg_ratelim *rl, uint64_t *bytes)
{
	*p = (struct smg_disk_pump){.e = e,
				    .s = s,
				    .chan = chan,
				    .nchan = nchan,
				    .final = final,
				    .rl = rl,
				    .bytes = bytes,
				    .disk = chan};
	if (e == NULL)
		return SMG_OK;
	return pump_ask(p);
}

bool smg_disk_pump_done(const struct smg_disk_pump *p)
{
	return p->e == NULL || p->phase == NULL;
}

/* The answer's payload goes straight into a bulk frame begun on the
 * channel: no copy between the service's socket and the frame. */
static uint8_t *pump_room(void *arg, size_t len)
{
	struct smg_disk_pump *p = arg;
	uint8_t *buf;

	if ((p->room_err = smg_chan_bulk_begin(p->s, p->chan, len, &buf)) != SMG_OK)
		return NULL;
	p->begun = true;
	return buf;
}

int smg_disk_pump_step(struct smg_disk_pump *p, bool wait)
{
	struct smg_dsvc_conn *c;
	struct smg_dsvc_reply rep;
	int r;

	if (smg_disk_pump_done(p))
		return SMG_OK;
	c = p->e->c[p->disk];
	if (!wait && !smg_dsvc_ready(c))
		return SMG_OK; /* the service is still reading: back to memory */
	p->begun = false;
	p->room_err = SMG_OK;
	r = smg_dsvc_answer_into(c, &rep, pump_room, p);
	if (r != SMG_OK && p->room_err != SMG_OK)
		return p->room_err; /* the channel failed, not the disk service */
	if (r == SMG_OK && rep.payload_len > 0)
		r = smg_ratelim_wait(p->rl, rep.payload_len); /* else cancelled */
	if (r != SMG_OK) {
		if (p->begun)
			smg_chan_bulk_abandon(p->s, p->chan);
		if (r != SMG_ERR_CANCELLED && r != SMG_ERR_ABORTED) /* pacing's */
			smg_err("disk %s: NEXT %s: %s", p->e->name[p->disk], p->phase,
				smg_dsvc_errmsg(c));
		return r;
	}
	if (rep.payload_len == 0) {
		p->phase = next_phase(p->e, p->disk, p->phase, p->final);
		return pump_ask(p);
	}
	if ((r = smg_chan_bulk_submit(p->s, p->chan, SMG_FT_DISK_CHUNK,
				      rep.payload_len)) != SMG_OK)
		return r;
	*p->bytes += rep.payload_len;
	return pump_ask(p);
}

int smg_disk_pump_finish(struct smg_disk_pump *p)
{
	int r = SMG_OK;

	while (r == SMG_OK && !smg_disk_pump_done(p))
		r = smg_disk_pump_step(p, true);
	return r;
}

int smg_engine_disks_pending(struct smg_engine_disks *e, struct smg_stg_pending *p)
{
	struct smg_dsvc_reply rep;
	uint64_t v[3];
	int r;

	memset(p, 0, sizeof(*p));
	for (unsigned i = 0; e != NULL && i < e->n; i++) {
		if (!e->leased[i])
			continue;
		if ((r = call(e, i, "PENDING", NULL, 0, &rep)) != SMG_OK)
			return r;
		if (rep.nfields != 3 ||
		    smg_parse_uint(rep.fields[0], UINT64_MAX, &v[0]) != SMG_OK ||
		    smg_parse_uint(rep.fields[1], UINT64_MAX, &v[1]) != SMG_OK ||
		    smg_parse_uint(rep.fields[2], UINT64_MAX, &v[2]) != SMG_OK)
			return SMG_ERR_PROTO;
		p->chunks += v[0];
		p->bytes += v[1];
		p->bulk_left += v[2];
	}
	return SMG_OK;
}

int smg_engine_disks_budget(struct smg_engine_disks *e, uint64_t bytes)
{
	struct smg_dsvc_reply rep;
	char line[64];
	int r;

	for (unsigned i = 0; e != NULL && i < e->n; i++) {
		if (!e->leased[i])
			continue;
		snprintf(line, sizeof(line), "BUDGET %" PRIu64, bytes / e->n);
		if ((r = call(e, i, line, NULL, 0, &rep)) != SMG_OK)
			return r;
	}
	return SMG_OK;
}

int smg_engine_disks_pause(struct smg_engine_disks *e)
{
	struct smg_dsvc_reply rep;
	int r;

	for (unsigned i = 0; e != NULL && i < e->n && !e->paused; i++)
		if (e->leased[i] && (r = call(e, i, "PAUSE", NULL, 0, &rep)) != SMG_OK)
			return r;
	if (e != NULL)
		e->paused = true;
	return SMG_OK;
}

static int root_of(struct smg_engine_disks *e, unsigned i, const char *verb,
		   uint8_t root[SMG_DIGEST_LEN])
{
	struct smg_dsvc_reply rep;
	int r;

	if ((r = call(e, i, verb, NULL, 0, &rep)) != SMG_OK)
		return r;
	return rep.nfields == 1 ? smg_hex_decode(rep.fields[0], strlen(rep.fields[0]),
						 root, SMG_DIGEST_LEN) == SMG_OK
				      ? SMG_OK
				      : SMG_ERR_PROTO
				: SMG_ERR_PROTO;
}

int smg_engine_disks_src_root(struct smg_engine_disks *e, unsigned i,
			      uint8_t root[SMG_DIGEST_LEN])
{
	return root_of(e, i, "ROOT", root);
}

int smg_engine_disks_commit(struct smg_engine_disks *e)
{
	struct smg_dsvc_reply rep;
	int r;

	for (unsigned i = 0; e != NULL && i < e->n; i++)
		if (e->leased[i] && (r = call(e, i, e->src ? "COMMIT" : "COMMITTED", NULL,
					      0, &rep)) != SMG_OK)
			return r;
	if (e != NULL)
		e->committed = true;
	return SMG_OK;
}

int smg_engine_disks_end(struct smg_engine_disks *e, bool committed)
{
	struct smg_dsvc_reply rep;
	int r = SMG_OK, r2;

	if (e == NULL || !e->src)
		return SMG_OK;
	for (unsigned i = 0; i < e->n; i++) {
		/* Before COMMIT the source VM carries on: the service puts
		 * WAIO's writes into the original before its I/O is let go.
		 * After DONE the VM runs elsewhere: this copy goes. */
		if (!e->leased[i])
			continue;
		r2 = call(e, i, committed ? "RELEASE" : "ABORT", NULL, 0, &rep);
		r = r ?: r2;
		e->leased[i] = false;
	}
	e->paused = false;
	return r;
}

/* For each disk D.i of domain held in state `state` by the service at sock,
 * send `verb` (with arg); *n: how many answered OK. */
static int for_held(const char *sock, const char *domain, const char *state,
		    const char *verb, const char *arg, unsigned *n)
{
	struct smg_dsvc_conn *c;
	struct smg_dsvc_reply rep;
	char line[SMG_DSVC_LINE_MAX], name[SMG_DSVC_NAME_MAX + 1];
	int r = SMG_OK;

	*n = 0;
	if (smg_dsvc_connect(sock, &c) != SMG_OK)
		return SMG_OK; /* no disk service on this host: no disks */
	for (unsigned i = 0; i < SMG_DOMAIN_DISKS_MAX; i++) {
		int w = snprintf(name, sizeof(name), "%s.%u", domain, i);

		if (w < 0 || (size_t)w >= sizeof(name) ||
		    !smg_dsvc_name_valid(name, (size_t)w))
			break;
		snprintf(line, sizeof(line), "INFO %s", name);
		if (smg_dsvc_call(c, line, NULL, 0, -1, &rep) != SMG_OK ||
		    rep.nfields < 3 || strcmp(rep.fields[2], state) != 0)
			continue;
		snprintf(line, sizeof(line), "%s %s%s%s", verb, name, arg ? " " : "",
			 arg ? arg : "");
		if (smg_dsvc_call(c, line, NULL, 0, -1, &rep) != SMG_OK) {
			smg_err("disk %s: %s", name, smg_dsvc_errmsg(c));
			r = r ?: rep.err;
			continue;
		}
		(*n)++;
	}
	smg_dsvc_close(c);
	return r;
}

int smg_engine_disks_settle(const char *sock, const char *domain, bool resumed,
			    unsigned *n)
{
	return for_held(sock, domain, "handed-over", "SETTLE",
			resumed ? "resumed" : "aborted", n);
}

int smg_engine_disks_resume_committed(const char *sock, const char *domain, unsigned *n)
{
	return for_held(sock, domain, "committed", "RESUME", NULL, n);
}

/* ---- destination ------------------------------------------------------------ */
int smg_engine_disks_dst_open(const char *sock, const char *const *names, size_t n,
			      const uint64_t *sizes, const uint32_t *chunks,
			      struct smg_engine_disks **out)
{
	struct smg_engine_disks *e;
	struct smg_dsvc_reply rep;
	char line[SMG_DSVC_LINE_MAX];
	int r = SMG_OK;

	*out = NULL;
	if (n > SMG_DOMAIN_DISKS_MAX)
		return SMG_ERR_PROTO;
	if ((e = calloc(1, sizeof(*e))) == NULL)
		return SMG_ERR_NOMEM;
	for (unsigned i = 0; i < n && r == SMG_OK; i++) {
		/* The destination's name for it (plan_check.c); the service
		 * makes its image path from it, never from a peer's string. */
		size_t w = strlen(names[i]);

		if (w >= sizeof(e->name[i]) || !smg_dsvc_name_valid(names[i], w)) {
			r = SMG_ERR_PROTO;
			break;
		}
		memcpy(e->name[i], names[i], w + 1);
		e->n = i + 1;
		e->size[i] = sizes[i];
		e->chunk[i] = chunks[i];
		if ((r = connect_disk(e, i, sock)) != SMG_OK)
			break;
		snprintf(line, sizeof(line), "RECV %s %" PRIu64 " %u %u", e->name[i],
			 sizes[i], chunks[i], i);
		if ((r = call(e, i, line, NULL, 0, &rep)) == SMG_OK)
			e->leased[i] = true;
	}
	if (r != SMG_OK) {
		smg_engine_disks_discard(e);
		return r;
	}
	*out = e;
	return SMG_OK;
}

/* What an APPLY's failure (or one collected with it) means to the engine. */
static int apply_error(struct smg_engine_disks *e, unsigned disk, int r)
{
	if (r == SMG_OK)
		return SMG_OK;
	smg_err("disk %s: APPLY: %s", e->name[disk], smg_dsvc_errmsg(e->c[disk]));
	return r == SMG_ERR_DISK_FULL		      ? SMG_ERR_DISK_FULL
	       : r == SMG_ERR_SYS || r == SMG_ERR_EOF ? SMG_ERR_STORAGE
						      : SMG_ERR_PROTO;
}

int smg_engine_disks_apply(struct smg_engine_disks *e, unsigned chan, unsigned nchan,
			   const uint8_t *p, size_t len)
{
	uint32_t disk;

	/* Version, phase, count, then the disk id: read before anything else
	 * so a frame for a disk we do not have, or on a channel the disk does
	 * not travel on (it could overtake a newer copy), is refused. */
	if (e == NULL || len < SMG_STG_FRAME_HDR || len > SMG_DSVC_FRAME_MAX)
		return SMG_ERR_PROTO;
	disk = smg_load_be32(p + 4);
	if (disk >= e->n || disk % nchan != chan || !e->leased[disk]) {
		smg_peer_log(SMG_LOG_ERROR,
			     "disk frame for disk %u on channel %u refused", disk, chan);
		return SMG_ERR_PROTO;
	}
	/* The service decodes it (smg_stg_dst_apply) and refuses any bad
	 * record before writing anything of the frame. The answer is collected
	 * with the next frame of this disk, or at this channel's ROUND_END
	 * (smg_engine_disks_drain): meanwhile the channel handles pages. */
	return apply_error(e, disk, smg_dsvc_ask(e->c[disk], "APPLY", p, len, -1));
}

int smg_engine_disks_drain(struct smg_engine_disks *e, unsigned chan, unsigned nchan)
{
	struct smg_dsvc_reply rep;

	for (unsigned i = chan; e != NULL && i < e->n; i += nchan) {
		if (!smg_dsvc_asked(e->c[i]))
			continue;
		int r = apply_error(e, i, smg_dsvc_answer(e->c[i], &rep));
		if (r != SMG_OK)
			return r;
	}
	return SMG_OK;
}

int smg_engine_disks_verify(struct smg_engine_disks *e, size_t n_roots,
			    const ProtobufCBinaryData *roots, bool fresh)
{
	uint8_t mine[SMG_DIGEST_LEN], again[SMG_DIGEST_LEN];
	int r;

	if (n_roots != smg_engine_disks_count(e))
		return SMG_ERR_INTEGRITY;
	for (unsigned i = 0; i < n_roots; i++) {
		if ((r = root_of(e, i, "DIGEST", mine)) != SMG_OK)
			return r;
		if (fresh && ((r = root_of(e, i, "CHECK", again)) != SMG_OK ||
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

int smg_engine_disks_resume(struct smg_engine_disks *e)
{
	struct smg_dsvc_reply rep;
	int r = SMG_OK, r2;

	for (unsigned i = 0; e != NULL && i < e->n; i++) {
		if (!e->leased[i])
			continue;
		r2 = call(e, i, "RESUME", NULL, 0, &rep);
		r = r ?: r2;
		e->leased[i] = false;
	}
	return r;
}

void smg_engine_disks_discard(struct smg_engine_disks *e)
{
	struct smg_dsvc_reply rep;

	for (unsigned i = 0; e != NULL && i < e->n; i++) {
		/* Closing the connection would do as much; asking says so in
		 * the service's log and waits for it. */
		if (e->leased[i])
			(void)call(e, i, "DISCARD", NULL, 0, &rep);
		e->leased[i] = false;
	}
	smg_engine_disks_free(e);
}

int smg_engine_disks_quarantine(struct smg_engine_disks *e, const char *dir)
{
	struct smg_dsvc_reply rep;
	char path[1100]; /* dir: the quarantine path, up to 1 KiB */
	int fd, r = SMG_OK;
	FILE *f = NULL;

	if (e == NULL || e->n == 0) {
		smg_engine_disks_free(e);
		return SMG_OK;
	}
	/* The images are the disk service's, in its storage directory: they
	 * stay there, held as committed and never resumed (`secmig disk list`
	 * shows them; `secmig disk delete NAME` once examined), and the
	 * quarantine's `disks` file names them. */
	snprintf(path, sizeof(path), "%s/disks", dir);
	if ((fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
		       0600)) < 0 ||
	    (f = fdopen(fd, "w")) == NULL) {
		r = smg_err_sys(errno);
		if (fd >= 0)
			close(fd);
	}
	for (unsigned i = 0; i < e->n; i++) {
		if (!e->leased[i])
			continue;
		int r2 = call(e, i, "COMMITTED", NULL, 0, &rep);
		if (r2 != SMG_OK) {
			r = r == SMG_OK ? r2 : r;
			continue;
		}
		e->committed = true;
		if (f != NULL)
			fprintf(f, "%s held in the disk service, not resumed\n",
				e->name[i]);
	}
	if (f != NULL && fclose(f) != 0 && r == SMG_OK)
		r = smg_err_sys(errno);
	smg_engine_disks_free(e);
	return r;
}

void smg_engine_disks_free(struct smg_engine_disks *e)
{
	if (e == NULL)
		return;
	/* After COMMIT a source lease stays with the service (in doubt until
	 * RELEASE or `secmig disk settle`), as does a destination lease
	 * COMMITTED but not resumed: closing the connection keeps them. */
	if (e->src && !e->committed)
		(void)smg_engine_disks_end(e, false);
	/* A destination lease still held here (COMMITTED, not resumed) stays
	 * with the service when the connection closes. */
	for (unsigned i = 0; i < e->n; i++)
		smg_dsvc_close(e->c[i]);
	free(e);
}
