/* Source side of one disk's migration: turns chunks into records, phase by
 * phase, and keeps the hash of the version of each chunk it sent last.
 *
 * BULK  one sequential scan of the original image. DBT clears a chunk's
 *       dirty bit before reading it, so a write racing with the read is sent
 *       again. WAIO skips chunks the guest already rewrote on the surrogate:
 *       they go out later, merged, once.
 * ITER  a round over the chunks dirtied since the last round (DBT: in the
 *       original; WAIO: on the surrogate, read merged). WAIO holds back
 *       chunks written in two rounds running: they go once, in FINAL.
 * FINAL the last round, with the guest paused; afterwards the digest is the
 *       image the guest saw at pause. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "base/base.h"
#include "storage/internal.h"

struct smg_stg_src {
	struct smg_vdisk *d;
	enum smg_stg_mode mode;
	uint32_t disk_id;
	enum smg_stg_phase phase;
	uint64_t bulk_next;
	uint64_t *round;      /* chunks of the current ITER/FINAL round */
	uint64_t *wrote_last; /* dirty in the previous round's snapshot */
	uint64_t *deferred;   /* WAIO: hot-written chunks held for FINAL */
	bool round_active;
	uint64_t round_next;
	bool round_ended;
	bool final_done;
	uint64_t budget; /* WAIO: bytes of held-back chunks FINAL may carry */

	bool cur_valid; /* a chunk whose records are partly emitted */
	bool cur_hole;	/* the whole chunk is a hole */
	/* WAIO rounds: only the sectors of cur_delta go (the guest's writes
	 * since the chunk was last sent), the rest is on the destination */
	bool cur_part;
	uint8_t *cur_delta;
	uint64_t cur_c;
	uint32_t cur_len, cur_pos;
	uint8_t *cur; /* the current chunk's bytes: in buf or in the window */
	uint8_t *buf;

	/* The bulk scan's window: chunks [win_c0, win_c0 + win_n) read at
	 * once; win_data[i]: chunk win_c0 + i has data (else a hole). */
	uint8_t *win;
	uint64_t win_c0;
	uint32_t win_n, win_max;
	uint8_t *win_data;

	/* WAIO's reader yields the CPU while the guest does I/O. */
	pid_t tid;
	int nice0, nice_now;
	/* ... and the device while the guest reads the original: after each
	 * piece it leaves it idle nap_pm/1000 times as long as the piece took,
	 * by the guest's recent mix of reads and writes (mix_*: counters at
	 * the start of the current sample). */
	unsigned nap_pm;
	uint64_t mix_t0, mix_r0, mix_w0;

	struct smg_merkle *tree; /* leaf per chunk: the version sent last */
	uint8_t *sent;
	struct smg_stg_stats st;
};

int smg_stg_src_begin(struct smg_vdisk *d, const struct smg_stg_src_opts *o,
		      struct smg_stg_src **out)
{
	struct smg_stg_src *s;
	size_t words = (d->nchunks + 63) / 64;
	int r;

	*out = NULL;
	if (o->mode != SMG_STG_MODE_WAIO && o->mode != SMG_STG_MODE_DBT)
		return SMG_ERR_INVAL;
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return SMG_ERR_NOMEM;
	s->d = d;
	s->mode = o->mode;
	s->disk_id = o->disk_id;
	s->phase = SMG_STG_PHASE_BULK;
	s->budget = UINT64_MAX;
	s->nap_pm = SCAN_NAP_PM_MAX / 2;
	s->round = calloc(words ? words : 1, sizeof(*s->round));
	s->wrote_last = calloc(words ? words : 1, sizeof(*s->round));
	s->deferred = calloc(words ? words : 1, sizeof(*s->round));
	s->sent = calloc(d->nchunks ? d->nchunks : 1, 1);
	if (s->round == NULL || s->wrote_last == NULL || s->deferred == NULL ||
	    s->sent == NULL ||
	    (s->cur_delta = calloc(1, d->chunk / SMG_STG_SECTOR / 8)) == NULL ||
	    posix_memalign((void **)&s->buf, SMG_STG_BLOCK, d->chunk) != 0) {
		r = SMG_ERR_NOMEM;
		goto fail;
	}
	s->win_max = d->chunk >= SCAN_WINDOW ? 1 : SCAN_WINDOW / d->chunk;
	if (posix_memalign((void **)&s->win, SMG_STG_BLOCK,
			   (size_t)s->win_max * d->chunk) != 0 ||
	    (s->win_data = calloc(s->win_max, 1)) == NULL) {
		r = SMG_ERR_NOMEM;
		goto fail;
	}
	if ((r = smg_merkle_new_bytes(d->size, d->chunk, &s->tree)) != 0)
		goto fail;
	r = disk_mig_begin(d,
			   o->mode == SMG_STG_MODE_WAIO ? DISK_MIG_WAIO : DISK_MIG_DBT);
	if (r != 0)
		goto fail;
	if (o->mode == SMG_STG_MODE_WAIO)
		waio_wait_hot(d);
	*out = s;
	return SMG_OK;
fail:
	smg_merkle_free(s->tree);
	free(s->win);
	free(s->win_data);
	free(s->round);
	free(s->wrote_last);
	free(s->deferred);
	free(s->sent);
	free(s->buf);
	free(s->cur_delta);
	free(s);
	return r;
}

static bool test_and_clear(_Atomic uint64_t *w, uint64_t c)
{
	uint64_t bit = 1ull << (c % 64);

	return atomic_fetch_and(&w[c / 64], ~bit) & bit;
}

static bool guest_recent(const _Atomic uint64_t *t)
{
	uint64_t last = atomic_load(t);

	return last != 0 && smg_now_ns() - last < GUEST_RECENT_NS;
}

static void nap_ns(uint64_t ns)
{
	struct timespec ts = {(time_t)(ns / 1000000000u), (long)(ns % 1000000000u)};

	nanosleep(&ts, NULL);
}

/* WAIO's I/O agent yields the CPU to the guest: while the guest did I/O
 * within GUEST_RECENT_NS, the reader's thread runs at SCAN_NICE, so a guest
 * thread woken by its I/O preempts the scan's hashing and copying at once
 * instead of waiting for a time slice (the read tail on a 2-core host). The
 * FINAL phase (the guest is paused) runs at the thread's own priority. */
static void reader_priority(struct smg_stg_src *s, bool yield)
{
	int want;

	if (s->mode != SMG_STG_MODE_WAIO)
		return;
	if (s->tid == 0) {
		s->tid = gettid();
		errno = 0;
		s->nice0 = getpriority(PRIO_PROCESS, (id_t)s->tid);
		if (errno != 0)
			s->nice0 = 0;
		s->nice_now = s->nice0;
	}
	if (gettid() != s->tid)
		return; /* another thread drives us now: leave its priority */
	want = yield && guest_recent(&s->d->guest_last_ns) ? SCAN_NICE : s->nice0;
	/* Raising it back needs CAP_SYS_NICE: without, it stays low. */
	if (want != s->nice_now && setpriority(PRIO_PROCESS, (id_t)s->tid, want) == 0)
		s->nice_now = want;
}

/* How much of the device WAIO's bulk scan leaves a guest that reads the
 * original, from the guest's own mix (sampled every SCAN_MIX_NS): a guest
 * that only reads gets two thirds of it (nap twice the piece's time: its
 * cold reads wait least, and a slow scan costs it nothing); a guest that
 * writes gets less and less, down to no nap at all, because every second
 * the scan lasts it dirties more chunks that must go again and the rounds
 * after the scan grow (docs/storage.md, "Where the read tail came from"). */
static void scan_mix(struct smg_stg_src *s)
{
	struct smg_vdisk *d = s->d;
	uint64_t now = smg_now_ns(), r = atomic_load(&d->st_reads),
		 w = atomic_load(&d->st_writes), dr = r - s->mix_r0, dw = w - s->mix_w0;

	if (s->mix_t0 != 0 && now - s->mix_t0 < SCAN_MIX_NS)
		return;
	if (s->mix_t0 != 0 && dr + dw > 0) {
		double rs = (double)dr / (double)(dr + dw);

		s->nap_pm = (unsigned)(SCAN_NAP_PM_MAX * rs * rs);
	}
	s->mix_t0 = now;
	s->mix_r0 = r;
	s->mix_w0 = w;
}

/* WAIO's reader yields the device too: it waits for guest reads in flight
 * on the original, and while the guest reads the original it leaves the
 * device idle after each of its own reads (scan_mix says how long), instead
 * of queueing reads in front of the guest's. */
static int scan_read_yielding(struct smg_stg_src *s, uint8_t *buf, uint32_t len,
			      uint64_t base)
{
	struct smg_vdisk *d = s->d;
	/* A guest that mostly writes gets whole windows: it reads little of
	 * the original, and 64 KiB reads at queue depth one are slow. */
	uint32_t pos, waited, piece = s->nap_pm >= SCAN_NAP_PM_MAX / 4 ? SCAN_PIECE : len;
	int r;

	for (pos = 0; pos < len; pos += piece) {
		uint32_t n = len - pos < piece ? len - pos : piece;
		uint64_t t0 = smg_now_ns();

		for (waited = 0;
		     atomic_load(&d->orig_guest) > 0 && waited < SCAN_YIELD_MAX_US;
		     waited += 20)
			usleep(20);
		s->st.yield_ns += smg_now_ns() - t0;
		t0 = smg_now_ns();
		if ((r = smg_image_read_sparse(d->orig, buf + pos, n, base + pos)) != 0)
			return r;
		if (s->nap_pm > 0 && guest_recent(&d->guest_orig_ns)) {
			uint64_t took = smg_now_ns() - t0, nap = took * s->nap_pm / 1000;

			nap_ns(nap < SCAN_GAP_MAX_NS ? nap : SCAN_GAP_MAX_NS);
			s->st.yield_ns += smg_now_ns() - t0 - took;
		}
	}
	return SMG_OK;
}

/* Fill the bulk window from chunk c: one large read while the guest leaves
 * the original alone (and always for DBT, like QEMU's 1 MiB block
 * migration reads), one chunk at a time while a read-mostly guest reads it
 * (WAIO), piece by piece while a writing guest does. */
static int fill_window(struct smg_stg_src *s, uint64_t c)
{
	struct smg_vdisk *d = s->d;
	uint64_t base = c * d->chunk, end, ds, de, pos;
	uint32_t n = s->win_max, len;
	int r;

	if (s->mode == SMG_STG_MODE_WAIO && !d->no_yield) {
		scan_mix(s);
		/* A guest that mostly reads: one chunk at a time, so its cold
		 * reads never queue behind more than one piece. */
		if (s->nap_pm >= SCAN_NAP_PM_MAX / 2 && guest_recent(&d->guest_orig_ns))
			n = 1;
	}
	if (n > d->nchunks - c)
		n = (uint32_t)(d->nchunks - c);
	end = c + n == d->nchunks ? d->size : (c + n) * d->chunk;
	len = (uint32_t)(end - base);
	/* DBT: cleared before the read, so a write racing with it is sent
	 * again; chunks served from the window are not cleared twice. */
	for (uint64_t k = c; s->mode == SMG_STG_MODE_DBT && k < c + n; k++)
		(void)test_and_clear(d->dirty, k);
	memset(s->win_data, 0, n);
	for (pos = base; pos < end; pos = de) {
		if ((r = smg_image_next_data(d->orig, pos, &ds, &de)) != 0)
			return r;
		if (ds >= end)
			break;
		for (uint64_t k = ds / d->chunk; k * d->chunk < de && k < c + n; k++)
			s->win_data[k - c] = 1;
	}
	s->win_c0 = c;
	s->win_n = n;
	if (s->mode == SMG_STG_MODE_WAIO && !d->no_yield)
		r = scan_read_yielding(s, s->win, len, base);
	else
		r = smg_image_read_sparse(d->orig, s->win, len, base);
	if (r != 0)
		s->win_n = 0;
	return r;
}

static bool in_window(const struct smg_stg_src *s, uint64_t c)
{
	return s->win_n > 0 && c >= s->win_c0 && c < s->win_c0 + s->win_n;
}

enum load_how {
	LOAD_BULK,   /* the bulk scan: through the window */
	LOAD_MERGED, /* WAIO rounds: the guest's view, original + surrogate */
	LOAD_DIRECT, /* DBT rounds: the original, this chunk alone, now */
};

/* Read chunk c as it is now and hash it: the version we are about to send. */
static int load_chunk(struct smg_stg_src *s, uint64_t c, enum load_how how)
{
	struct smg_vdisk *d = s->d;
	uint64_t base = c * d->chunk, ds, de;
	int r = SMG_OK;

	s->cur_c = c;
	s->cur_len = chunk_len(d, c);
	s->cur_pos = 0;
	s->cur_hole = false;
	s->cur_part = false;
	s->cur = s->buf;
	if (how == LOAD_MERGED) {
		/* Taken before the read: a write landing in between is in the
		 * bytes read and goes again with the next delta. A chunk the
		 * destination has (sent before) gets only what the guest wrote
		 * since, unless that is most of it. */
		uint32_t nd = waio_take_delta(d, c, s->cur_delta),
			 ns = (s->cur_len + SMG_STG_SECTOR - 1) / SMG_STG_SECTOR;

		s->cur_part = s->sent[c] && nd * 2 < ns;
		r = waio_read_chunk(d, c, s->buf);
	} else if (how == LOAD_BULK) {
		if (!in_window(s, c) && (r = fill_window(s, c)) != 0)
			return r;
		s->cur = s->win + (c - s->win_c0) * d->chunk;
		s->cur_hole = !s->win_data[c - s->win_c0];
	} else {
		/* Never from the window: it holds what the bulk scan saw. */
		if ((r = smg_image_next_data(d->orig, base, &ds, &de)) != 0)
			return r;
		if (ds >= base + s->cur_len)
			s->cur_hole = true;
		else
			r = smg_image_read_sparse(d->orig, s->buf, s->cur_len, base);
	}
	if (r != 0)
		return r;
	if (s->cur_hole)
		smg_merkle_set_zero(s->tree, c);
	else
		smg_merkle_set_leaf(s->tree, c, s->cur, s->cur_len);
	if (s->sent[c])
		s->st.chunks_resent++;
	s->sent[c] = 1;
	s->st.chunks_sent++;
	s->cur_valid = true;
	return SMG_OK;
}

static bool block_zero(const uint8_t *p, size_t n)
{
	return p[0] == 0 && memcmp(p, p + 1, n - 1) == 0;
}

/* Length of the run at pos, up to lim, of blocks that are all zero (or all
 * not). */
static uint32_t run_len(const struct smg_stg_src *s, uint32_t pos, uint32_t lim,
			bool *zero)
{
	uint32_t end = pos;
	bool z = false;

	if (s->cur_hole) {
		*zero = true;
		return lim - pos;
	}
	while (end < lim) {
		uint32_t n = lim - end < SMG_STG_BLOCK ? lim - end : SMG_STG_BLOCK;
		bool bz = block_zero(s->cur + end, n);

		if (end == pos)
			z = bz;
		else if (bz != z)
			break;
		end += n;
	}
	*zero = z;
	return end - pos;
}

static bool hdr_fits(const struct rec_frame *f)
{
	return f->count < SMG_STG_RECS_MAX && f->cap - f->off >= SMG_STG_REC_HDR;
}

/* A partial chunk: move cur_pos to the next sector of its delta (if it is
 * not in one) and set *lim to the end of that run; false: none left. */
static bool delta_run(struct smg_stg_src *s, uint32_t *lim)
{
	uint32_t ns = (s->cur_len + SMG_STG_SECTOR - 1) / SMG_STG_SECTOR,
		 sec = s->cur_pos / SMG_STG_SECTOR, e;

	while (sec < ns && !(s->cur_delta[sec / 8] & (1u << (sec % 8))))
		sec++;
	if (sec == ns) {
		s->cur_pos = s->cur_len;
		return false;
	}
	if (s->cur_pos < sec * SMG_STG_SECTOR)
		s->cur_pos = sec * SMG_STG_SECTOR;
	for (e = sec; e < ns && (s->cur_delta[e / 8] & (1u << (e % 8))); e++)
		;
	*lim = e * SMG_STG_SECTOR < s->cur_len ? e * SMG_STG_SECTOR : s->cur_len;
	return true;
}

/* Emit records of the current chunk until it is done or the frame is full. */
static void emit_chunk(struct smg_stg_src *s, struct rec_frame *f)
{
	uint64_t base = s->cur_c * s->d->chunk;

	while (s->cur_pos < s->cur_len) {
		uint32_t lim = s->cur_len, n;
		bool zero;
		size_t room;

		if (s->cur_part && !delta_run(s, &lim))
			break;
		n = run_len(s, s->cur_pos, lim, &zero);
		if (!hdr_fits(f))
			return;
		if (zero) {
			rec_frame_add(f, SMG_STG_REC_HOLE, base + s->cur_pos, n, NULL);
			s->st.hole_bytes += n;
		} else {
			room = rec_frame_room(f);
			if (room < n && room < SMG_STG_BLOCK)
				return; /* no tiny fragments: next frame */
			if (room < n)
				n = (uint32_t)(room / SMG_STG_BLOCK * SMG_STG_BLOCK);
			rec_frame_add(f, SMG_STG_REC_DATA, base + s->cur_pos, n,
				      s->cur + s->cur_pos);
			s->st.data_bytes += n;
		}
		s->st.records++;
		s->cur_pos += n;
	}
	s->cur_valid = false;
}

/* What chunk c would put on the wire in a round or FINAL now: WAIO sends a
 * chunk the destination has only as the sectors written since (plus a
 * record header per run, counted as one per chunk). */
/* What chunk c costs the pause if it goes in FINAL: its whole length, also
 * for WAIO's sector deltas. The wire carries only the sectors written, but
 * both sides then hash the whole chunk again for its leaf (the source from
 * its copy, the destination from its image), and that reading and hashing
 * dominated: with the delta's bytes as the cost, a write-heavy guest's
 * FINAL of 1.7 MiB on the wire over 550 chunks took 47-105 ms against a
 * 30 ms budget (bench_storage, quiet run). Counting at the link's rate
 * over-states the hashing (SHA-256 runs faster than this link), so the
 * rule errs towards one more cheap round, not a longer pause. */
static uint64_t pause_cost_of(const struct smg_stg_src *s, uint64_t c)
{
	return chunk_len(s->d, c);
}

/* Next chunk of the phase, loaded; *done when the phase has no more. */
static int next_chunk(struct smg_stg_src *s, enum smg_stg_phase ph, bool *done)
{
	struct smg_vdisk *d = s->d;
	size_t words = (d->nchunks + 63) / 64, i;

	*done = false;
	if (ph == SMG_STG_PHASE_BULK) {
		while (s->bulk_next < d->nchunks) {
			uint64_t c = s->bulk_next++;

			if (s->mode == SMG_STG_MODE_DBT)
				return load_chunk(s, c, LOAD_BULK);
			/* WAIO: rewritten on the surrogate, sent merged later. */
			if (atomic_load(&d->dirty[c / 64]) & (1ull << (c % 64)))
				continue;
			return load_chunk(s, c, LOAD_BULK);
		}
		s->win_n = 0; /* the scan is over: its window is stale from now on */
		*done = true;
		return SMG_OK;
	}
	if (!s->round_active) {
		uint64_t held = 0;

		for (i = 0; i < words; i++) {
			uint64_t now = atomic_exchange(&d->dirty[i], 0);
			uint64_t twice = atomic_exchange(&d->dirty2[i], 0);

			if (s->mode == SMG_STG_MODE_WAIO && ph == SMG_STG_PHASE_ITER) {
				/* Written twice within the last round and in the
				 * round before: the guest rewrites it faster than
				 * rounds go by. It stays on the surrogate until the
				 * final phase instead of going out every round, in
				 * at most half the pause's budget: the other half
				 * is for the chunks written in the last round, or
				 * the delta would never fit (docs/storage.md). */
				uint64_t hot = now & twice & s->wrote_last[i], keep = 0;

				while (hot != 0) {
					uint64_t bit = hot & -hot,
						 b = pause_cost_of(
						     s,
						     i * 64 +
							 (uint64_t)__builtin_ctzll(hot));

					if (held + b > s->budget / 2)
						break;
					keep |= bit;
					hot &= hot - 1;
					held += b;
				}
				s->round[i] = (now & ~keep) | (s->deferred[i] & ~now);
				s->deferred[i] = keep;
			} else {
				s->round[i] = now | s->deferred[i];
				s->deferred[i] = 0;
			}
			s->wrote_last[i] = now;
		}
		s->round_active = true;
		s->round_next = 0;
	}
	for (; s->round_next < d->nchunks; s->round_next++) {
		uint64_t c = s->round_next;

		if (!(s->round[c / 64] & (1ull << (c % 64))))
			continue;
		s->round_next++;
		return load_chunk(
		    s, c, s->mode == SMG_STG_MODE_WAIO ? LOAD_MERGED : LOAD_DIRECT);
	}
	s->round_active = false;
	*done = true;
	return SMG_OK;
}

static bool disk_paused(struct smg_vdisk *d)
{
	bool p;

	pthread_mutex_lock(&d->gate_mu);
	p = d->paused > 0;
	pthread_mutex_unlock(&d->gate_mu);
	return p;
}

int smg_stg_src_next(struct smg_stg_src *s, enum smg_stg_phase ph, uint8_t *buf,
		     size_t cap, size_t *used)
{
	struct rec_frame f;
	bool done = false;
	int r = SMG_OK;

	*used = 0;
	if (ph < s->phase || ph < SMG_STG_PHASE_BULK || ph > SMG_STG_PHASE_FINAL)
		return SMG_ERR_STATE;
	/* The bulk scan yields; ITER rounds (a few chunks, from the surrogate)
	 * and FINAL run at full speed: a slow round lets more be dirtied. */
	reader_priority(s, ph == SMG_STG_PHASE_BULK && !s->d->no_yield);
	if (cap < SMG_STG_FRAME_HDR + SMG_STG_REC_HDR + SMG_STG_BLOCK)
		return SMG_ERR_NOSPACE;
	/* Later phases only make sense once every chunk went out once. */
	if (ph > SMG_STG_PHASE_BULK && s->bulk_next < s->d->nchunks)
		return SMG_ERR_STATE;
	if (ph == SMG_STG_PHASE_FINAL && !disk_paused(s->d))
		return SMG_ERR_STATE;
	if (ph == SMG_STG_PHASE_FINAL && s->phase == SMG_STG_PHASE_ITER &&
	    s->round_active) {
		/* FINAL takes a fresh snapshot; the round's unsent chunks join it. */
		for (uint64_t c = s->round_next; c < s->d->nchunks; c++)
			if (s->round[c / 64] & (1ull << (c % 64)))
				dirty_set(s->d, c);
		s->round_active = false;
	}
	if (ph == SMG_STG_PHASE_FINAL)
		s->round_ended = false;
	if (ph == SMG_STG_PHASE_ITER && s->round_ended) {
		s->round_ended = false; /* the last frame ended the round */
		return SMG_OK;
	}
	s->phase = ph;
	if (ph == SMG_STG_PHASE_FINAL && s->final_done)
		return SMG_OK;
	rec_frame_begin(&f, buf, cap, (uint8_t)ph, s->disk_id);
	while (hdr_fits(&f)) {
		if (s->cur_valid) {
			emit_chunk(s, &f);
			if (s->cur_valid)
				break; /* frame full */
		}
		if ((r = next_chunk(s, ph, &done)) != 0 || done)
			break;
	}
	*used = rec_frame_end(&f);
	if (*used > 0) {
		s->st.frames++;
		s->st.wire_bytes += *used;
	}
	if (r == 0 && done && *used > 0 && ph == SMG_STG_PHASE_ITER)
		s->round_ended = true;
	if (r == 0 && done && ph != SMG_STG_PHASE_FINAL) {
		/* Fold this phase's leaves in now: the pause then rehashes
		 * only the paths of what changed since. */
		uint8_t scratch[SMG_STG_DIGEST_LEN];

		smg_merkle_root(s->tree, scratch);
	}
	if (r == 0 && done && *used == 0 && ph == SMG_STG_PHASE_FINAL)
		s->final_done = true;
	return r;
}

uint64_t smg_stg_src_pending(const struct smg_stg_src *s)
{
	struct smg_stg_pending p;

	smg_stg_src_get_pending(s, &p);
	return p.chunks;
}

void smg_stg_src_get_pending(const struct smg_stg_src *s, struct smg_stg_pending *p)
{
	const struct smg_vdisk *d = s->d;
	uint64_t n = 0, c, held = 0, bytes = 0;
	size_t i;

	for (i = 0; i < (d->nchunks + 63) / 64; i++) {
		uint64_t w = atomic_load(&d->dirty[i]) | s->deferred[i];

		held += (uint64_t)__builtin_popcountll(s->deferred[i]);
		if (s->round_active)
			for (c = i * 64; c < i * 64 + 64 && c < d->nchunks; c++)
				if (c >= s->round_next && (s->round[i] >> (c % 64)) & 1)
					w |= 1ull << (c % 64);
		n += (uint64_t)__builtin_popcountll(w);
		for (; w != 0; w &= w - 1)
			bytes += pause_cost_of(s, i * 64 + (uint64_t)__builtin_ctzll(w));
	}
	p->chunks = n;
	p->held = held;
	p->bytes = bytes;
	p->bulk_left =
	    s->bulk_next < d->nchunks ? d->size - s->bulk_next * (uint64_t)d->chunk : 0;
}

void smg_stg_src_set_budget(struct smg_stg_src *s, uint64_t bytes)
{
	s->budget = bytes;
}

void smg_stg_src_get_stats(const struct smg_stg_src *s, struct smg_stg_stats *st)
{
	*st = s->st;
}

int smg_stg_src_digest(struct smg_stg_src *s, uint8_t out[static SMG_STG_DIGEST_LEN])
{
	uint64_t c;

	if (!s->final_done)
		return SMG_ERR_STATE;
	for (c = 0; c < s->d->nchunks; c++)
		if (!s->sent[c])
			return SMG_ERR_STATE;
	smg_merkle_root(s->tree, out);
	return SMG_OK;
}

int smg_stg_src_end(struct smg_stg_src *s, bool merge)
{
	int r;

	if (s == NULL)
		return SMG_OK;
	if (s->tid != 0 && s->tid == gettid() && s->nice_now != s->nice0)
		(void)setpriority(PRIO_PROCESS, (id_t)s->tid, s->nice0);
	r = disk_mig_end(s->d, merge);
	free(s->round);
	free(s->wrote_last);
	free(s->deferred);
	smg_merkle_free(s->tree);
	free(s->sent);
	free(s->buf);
	free(s->cur_delta);
	free(s->win);
	free(s->win_data);
	free(s);
	return r;
}
