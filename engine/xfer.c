/* Page transfer on the data channels: one thread per channel on each side.
 * Source: copy each page of the round's set straight from guest memory into
 * an in-place-encrypted bulk frame (zero pages become 8-byte records), hash
 * it into the Merkle tree, end the round with ROUND_END on the channel.
 * Destination: write each page into the skeleton and hash what it wrote. */
#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/base.h"
#include "engine/internal.h"
#include "proto/proto.h"
#include "secmig.pb-c.h"
#include "transport/transport.h"

#define SLOW_DATA_NS	  100000000L /* fault dst_slow_data: 100 ms per frame */
#define STARVE_DEFAULT_MS (SMG_IO_TIMEOUT_MS * 3 / 2) /* fault src_starve_chan */
#define ZERO_REC_MAX	  ((SMG_FRAME_PAYLOAD_MAX - SMG_PAGES_HDR_LEN) / 8)

void smg_engine_hash(const void *p, size_t len, uint8_t out[SMG_DIGEST_LEN])
{
	crypto_generichash(out, SMG_DIGEST_LEN, p, len, NULL, 0);
}

int smg_ratelim_wait(struct smg_ratelim *rl, size_t bytes)
{
	uint64_t now, start, rate;

	if (rl == NULL)
		return SMG_OK;
	if (rl->cancel != NULL && atomic_load(rl->cancel))
		return SMG_ERR_CANCELLED;
	if (atomic_load(&rl->peer_spoke))
		return SMG_ERR_ABORTED;
	atomic_fetch_add(&rl->bytes, bytes);
	if ((rate = atomic_load(&rl->rate)) == 0)
		return SMG_OK;
	pthread_mutex_lock(&rl->lock);
	now = smg_now_ns();
	start = rl->next_ns > now ? rl->next_ns : now;
	rl->next_ns = start + (uint64_t)((double)bytes * 1e9 / (double)rate);
	pthread_mutex_unlock(&rl->lock);
	if (start > now) {
		struct timespec ts = {.tv_sec = (time_t)((start - now) / 1000000000ull),
				      .tv_nsec = (long)((start - now) % 1000000000ull)};
		nanosleep(&ts, NULL);
	}
	return SMG_OK;
}

void smg_ratelim_pages(struct smg_ratelim *rl, uint64_t pages, uint64_t bytes)
{
	if (rl != NULL) {
		atomic_fetch_add(&rl->pages, pages);
		atomic_fetch_add(&rl->page_bytes, bytes);
	}
}

/* Most pages differ from zero in their first word: look there first, then
 * let memcmp (vectorised, early exit) compare the page with itself shifted. */
static bool is_zero(const uint8_t *p, size_t n)
{
	uint64_t w;

	memcpy(&w, p, 8);
	return w == 0 && memcmp(p, p + 8, n - 8) == 0;
}

/* ---- source ---------------------------------------------------------------- */
/* The begun PAGES frame of a channel: pages are read in batches straight
 * into it from the front (smg_pages_data), zero pages squeezed out of each
 * batch as it lands; the pfn table goes after the last page kept at
 * submit. A frame that ends up without a page is given back unsent. */
struct frame_fill {
	uint8_t *buf; /* payload; NULL: no frame begun */
	uint32_t cnt, max;
	uint64_t *pfns; /* max: the pages in buf */
	uint64_t *zl;	/* ZERO_REC_MAX: zero pages not yet recorded */
	uint32_t nz;
	uint64_t batch[SMG_XFER_BATCH];
	uint32_t nb;
};

/* Channel 0's sender watches for the destination speaking during a round:
 * every channel then stops, and the source reads the ABORT instead of
 * sending on into a session the destination only drains. */
static void watch_peer(struct smg_xfer_send *x)
{
	if (x->chan == 0 && x->rl != NULL && smg_chan_has_input(x->s, 0))
		atomic_store(&x->rl->peer_spoke, true);
}

static int send_zero(struct smg_xfer_send *x, struct frame_fill *f)
{
	uint8_t *buf;
	size_t len = SMG_PAGES_HDR_LEN + (size_t)f->nz * 8;
	int r;

	if (f->nz == 0)
		return SMG_OK;
	if ((r = smg_chan_bulk_begin(x->s, x->chan, len, &buf)) != SMG_OK)
		return r;
	smg_pages_put_hdr(buf, x->round, f->nz);
	for (uint32_t i = 0; i < f->nz; i++)
		smg_store_be64(buf + SMG_PAGES_HDR_LEN + (size_t)i * 8, f->zl[i]);
	/* A cancel still sends the frame begun: the channel stays usable. */
	watch_peer(x);
	int c = smg_ratelim_wait(x->rl, len);
	if ((r = smg_chan_bulk_submit(x->s, x->chan, SMG_FT_ZERO_PAGES, len)) != SMG_OK ||
	    (r = c) != SMG_OK)
		return r;
	smg_ratelim_pages(x->rl, f->nz, len);
	x->zeros += f->nz;
	x->bytes += len;
	f->nz = 0;
	return SMG_OK;
}

/* Close the begun frame: sent if it holds a page, else given back. */
static int submit_pages(struct smg_xfer_send *x, struct frame_fill *f)
{
	uint8_t *buf = f->buf;
	size_t len;
	int r;

	if (buf == NULL)
		return SMG_OK;
	f->buf = NULL;
	if (f->cnt == 0)
		return smg_chan_bulk_abandon(x->s, x->chan);
	len = smg_pages_put_pfns(buf, x->round, x->page_size, f->pfns, f->cnt);
	watch_peer(x);
	int c = smg_ratelim_wait(x->rl, len);
	if ((r = smg_chan_bulk_submit(x->s, x->chan, SMG_FT_PAGES, len)) != SMG_OK ||
	    (r = c) != SMG_OK)
		return r;
	smg_ratelim_pages(x->rl, f->cnt, len);
	x->pages += f->cnt;
	x->bytes += len;
	return SMG_OK;
}

/* Read the batch into the frame, keep the pages that are not zero (hashed
 * from the frame, where they are hot), record the zero ones. */
static int flush_batch(struct smg_xfer_send *x, struct frame_fill *f)
{
	size_t ps = x->page_size;
	uint8_t *slot;
	int r;

	if (f->nb == 0)
		return SMG_OK;
	/* Zero records only travel between page frames (one begun bulk frame
	 * per channel): make room for this batch's worst case first. */
	if (f->nz + f->nb > ZERO_REC_MAX &&
	    ((r = submit_pages(x, f)) != SMG_OK || (r = send_zero(x, f)) != SMG_OK))
		return r;
	if (f->buf == NULL) {
		f->cnt = 0;
		if ((r = smg_chan_bulk_begin(
			 x->s, x->chan, SMG_PAGES_HDR_LEN + (size_t)f->max * (8 + ps),
			 &f->buf)) != SMG_OK)
			return r;
	}
	slot = smg_pages_data(f->buf, x->page_size, f->cnt);
	if ((r = x->be->ops->read_pages(x->be, f->batch, f->nb, slot)) != SMG_OK)
		return r;
	for (uint32_t i = 0; i < f->nb; i++) {
		const uint8_t *page = slot + (size_t)i * ps;
		uint8_t *keep = smg_pages_data(f->buf, x->page_size, f->cnt);

		if (is_zero(page, ps)) {
			f->zl[f->nz++] = f->batch[i];
			smg_merkle_set_zero(x->mk, f->batch[i]);
			continue;
		}
		if (keep != page) /* a zero page came before it in this batch */
			memmove(keep, page, ps);
		smg_merkle_set_leaf(x->mk, f->batch[i], keep, ps);
		f->pfns[f->cnt++] = f->batch[i];
	}
	f->nb = 0;
	r = SMG_OK;
	if (f->cnt == f->max || f->cnt == 0)
		r = submit_pages(x, f);
	if (r == SMG_OK && f->buf == NULL && f->nz + f->max >= ZERO_REC_MAX)
		r = send_zero(x, f);
	/* Between page frames: a disk frame the service has ready goes now. */
	if (r == SMG_OK && f->buf == NULL)
		r = smg_disk_pump_step(&x->pump, false);
	return r;
}

/* Queue one page; a batch never outgrows the room left in the frame. */
static int one_page(struct smg_xfer_send *x, struct frame_fill *f, uint64_t pfn)
{
	uint32_t room = f->buf == NULL ? f->max : f->max - f->cnt;

	f->batch[f->nb++] = pfn;
	if (f->nb < SMG_XFER_BATCH && f->nb < room)
		return SMG_OK;
	return flush_batch(x, f);
}

static int send_round_end(struct smg_xfer_send *x)
{
	Smg__RoundEnd re = SMG__ROUND_END__INIT;

	re.round = x->round;
	re.pages_sent = x->pages + x->zeros;
	re.bytes_sent = x->bytes;
	return smg_chan_send_msg(x->s, x->chan, SMG_FT_ROUND_END, &re.base);
}

void *smg_xfer_send_main(void *arg)
{
	struct smg_xfer_send *x = arg;
	struct frame_fill f = {.max = smg_pages_per_frame(x->page_size)};
	uint64_t groups =
	    (x->npages + (1u << SMG_XFER_GROUP_SHIFT) - 1) >> SMG_XFER_GROUP_SHIFT;
	int r;

	f.zl = malloc(ZERO_REC_MAX * sizeof(uint64_t));
	f.pfns = malloc((f.max ? f.max : 1) * sizeof(uint64_t));
	r = f.zl == NULL || f.pfns == NULL || f.max == 0 ? SMG_ERR_NOMEM : SMG_OK;
	/* The disk service reads this channel's first disk frame meanwhile. */
	r = r
		?: smg_disk_pump_start(&x->pump, x->disks, x->s, x->chan, x->nchan,
				       x->final, x->rl, &x->bytes);
	if (x->round == 0 && x->chan > 0 && x->chan == x->nchan - 1 &&
	    smg_fault_on(SMG_FI_SRC_STARVE_CHAN)) {
		/* One data channel silent for longer than the idle limit while
		 * the others work: the session is alive, so must be the channel. */
		unsigned ms = smg_fault_stall_ms(STARVE_DEFAULT_MS);
		smg_warn("fault injection: src_starve_chan: channel %u idle %u ms",
			 x->chan, ms);
		usleep((useconds_t)ms * 1000);
	}
	for (uint64_t g = x->chan; r == SMG_OK && g < groups; g += x->nchan) {
		uint64_t lo = g << SMG_XFER_GROUP_SHIFT;
		uint64_t hi = lo + (1u << SMG_XFER_GROUP_SHIFT);

		if (hi > x->npages)
			hi = x->npages;
		for (uint64_t w = lo / 64; r == SMG_OK && w * 64 < hi; w++) {
			uint64_t v = x->bitmap[w];
			while (v != 0 && r == SMG_OK) {
				uint64_t pfn = w * 64 + (uint64_t)__builtin_ctzll(v);
				v &= v - 1;
				if (pfn < hi)
					r = one_page(x, &f, pfn);
			}
		}
	}
	r = r ?: flush_batch(x, &f);
	r = r ?: submit_pages(x, &f);
	r = r ?: send_zero(x, &f);
	r = r ?: smg_disk_pump_finish(&x->pump);
	r = r ?: send_round_end(x);
	r = r ?: smg_chan_flush(x->s, x->chan);
	x->err = r;
	free(f.zl);
	free(f.pfns);
	return NULL;
}

/* ---- destination ------------------------------------------------------------ */
/* Sequence on one channel (docs/protocol.md, "Sequence"): the channel's
 * frames belong to its current round x->round, which ROUND_END{x->round}
 * ends; on channel 0 that round's ROUND_START came first on the same
 * stream, so anything else there is impossible, never something to wait
 * for. A data channel may run ahead of channel 0 by the ROUND_START in
 * flight, which it waits for under the session's liveness rule. */
static bool round_started(struct smg_xfer_dest *d, uint32_t round)
{
	pthread_mutex_lock(&d->lock);
	bool r = d->known_round > round;
	pthread_mutex_unlock(&d->lock);
	return r;
}

static int out_of_sequence(struct smg_xfer_recv *x, const char *what, uint32_t round)
{
	smg_peer_log(SMG_LOG_ERROR, "channel %u: %s for round %u while in round %u",
		     x->chan, what, round, x->round);
	return SMG_ERR_STATE;
}

static int recv_pages(struct smg_xfer_recv *x, const uint8_t *p, size_t len, bool zero)
{
	struct smg_xfer_dest *d = x->d;
	unsigned chan = x->chan;
	struct smg_pages_hdr h;
	uint64_t pfns[32]; /* a run written, then hashed while it is in L1/L2 */
	int r;

	if ((r = smg_pages_parse(p, len, d->page_size, zero, &h)) != SMG_OK)
		return r;
	if (h.round != x->round || (chan == 0 && !round_started(d, h.round)))
		return out_of_sequence(x, "pages", h.round);
	for (uint32_t i = 0; i < h.count; i += (uint32_t)SMG_ARRAY_LEN(pfns)) {
		uint32_t n = h.count - i < SMG_ARRAY_LEN(pfns)
				 ? h.count - i
				 : (uint32_t)SMG_ARRAY_LEN(pfns);
		for (uint32_t j = 0; j < n; j++) {
			pfns[j] = smg_pages_pfn(&h, i + j);
			/* A page outside the plan, or on a channel it does not
			 * belong to (it could overtake a newer copy): reject. */
			if (pfns[j] >= d->npages ||
			    smg_xfer_chan_of(pfns[j], d->nchan) != chan) {
				smg_peer_log(
				    SMG_LOG_ERROR,
				    "page %llu out of range or on the wrong channel",
				    (unsigned long long)pfns[j]);
				return SMG_ERR_PROTO;
			}
		}
		const uint8_t *data = zero ? NULL : h.data + (size_t)i * d->page_size;
		if (chan > 0 && smg_fault_on(SMG_FI_DST_WRITE_FAIL))
			return SMG_ERR_BACKEND;
		/* A slow hypervisor (xen: libxc's restore under emulation) can
		 * hold this thread for long; the other channels' waits must
		 * not take that for the peer's silence. */
		smg_session_busy(d->s, true);
		r = d->be->ops->write_pages(d->be, pfns, n, data, zero);
		smg_session_busy(d->s, false);
		if (r != SMG_OK)
			return r;
		for (uint32_t j = 0; j < n; j++) {
			if (zero)
				smg_merkle_set_zero(d->mk, pfns[j]);
			else
				smg_merkle_set_leaf(d->mk, pfns[j],
						    data + (size_t)j * d->page_size,
						    d->page_size);
		}
	}
	atomic_fetch_add(zero ? &d->zeros : &d->pages, h.count);
	atomic_fetch_add(&d->bytes, len);
	return SMG_OK;
}

/* Wait (channel > 0) until channel 0 has seen ROUND_START{round}; the
 * session's liveness bounds the wait, the control thread's stop ends it. */
static int wait_round_start(struct smg_xfer_recv *x, uint32_t round)
{
	struct smg_xfer_dest *d = x->d;
	uint64_t since = smg_now_ms();
	int r = SMG_OK;

	pthread_mutex_lock(&d->lock);
	while (d->known_round <= round && !d->stop && r == SMG_OK)
		r = smg_engine_cond_wait(&d->cond, &d->lock, d->s, since);
	if (r == SMG_OK && d->stop)
		r = SMG_ERR_ABORTED;
	pthread_mutex_unlock(&d->lock);
	return r;
}

static int round_end(struct smg_xfer_recv *x, const uint8_t *p, size_t len)
{
	struct smg_xfer_dest *d = x->d;
	ProtobufCMessage *m;
	uint32_t round;
	int r;

	if ((r = smg_proto_unpack(SMG_FT_ROUND_END, p, len, &m)) != SMG_OK)
		return r;
	round = ((Smg__RoundEnd *)m)->round;
	smg_proto_free(m);
	if (round != x->round)
		return out_of_sequence(x, "ROUND_END", round);
	if (x->chan == 0) {
		if (!round_started(d, round))
			return out_of_sequence(x, "ROUND_END", round);
	} else if ((r = wait_round_start(x, round)) != SMG_OK) {
		return r;
	}
	/* The round's disk frames are written (or one failed) before it ends. */
	smg_session_busy(d->s, true);
	r = smg_err_classify(smg_engine_disks_drain(d->disks, x->chan, d->nchan));
	smg_session_busy(d->s, false);
	if (r != SMG_OK)
		return r;
	if (x->disk_frames > 0)
		smg_peer_log(SMG_LOG_DEBUG,
			     "channel %u round %u: %u disk frames, %u page frames after "
			     "the first of them",
			     x->chan, round, x->disk_frames, x->pages_after_disk);
	x->disk_frames = x->pages_after_disk = 0;
	pthread_mutex_lock(&d->lock);
	x->finished = d->final_round == (int64_t)round;
	pthread_mutex_unlock(&d->lock);
	x->round++;
	return SMG_OK;
}

int smg_xfer_recv_frame(struct smg_xfer_recv *x, uint8_t type, const uint8_t *p,
			size_t len)
{
	int r;

	if (x->finished) {
		smg_peer_log(SMG_LOG_ERROR,
			     "channel %u: frame 0x%02x after the final round", x->chan,
			     type);
		return SMG_ERR_STATE;
	}
	switch (type) {
	case SMG_FT_PAGES:
	case SMG_FT_ZERO_PAGES:
		x->pages_after_disk += x->disk_frames > 0;
		return recv_pages(x, p, len, type == SMG_FT_ZERO_PAGES);
	case SMG_FT_ROUND_END:
		return round_end(x, p, len);
	case SMG_FT_DISK_CHUNK:
		if (x->chan == 0 && !round_started(x->d, x->round))
			return out_of_sequence(x, "a disk chunk", x->round);
		atomic_fetch_add(&x->d->bytes, len);
		x->disk_frames++;
		smg_session_busy(x->d->s, true);
		r = smg_err_classify(
		    smg_engine_disks_apply(x->d->disks, x->chan, x->d->nchan, p, len));
		smg_session_busy(x->d->s, false);
		return r;
	default:
		smg_peer_log(SMG_LOG_ERROR,
			     "frame type 0x%02x not valid on a data channel", type);
		return SMG_ERR_STATE;
	}
}

static bool final_begun(struct smg_xfer_dest *d)
{
	pthread_mutex_lock(&d->lock);
	bool r = d->final_round >= 0;
	pthread_mutex_unlock(&d->lock);
	return r;
}

/* A channel thread failed: record it and wake the control thread, which
 * may be blocked waiting for channel 0's next frame. */
static void chan_failed(struct smg_xfer_recv *x, int r, uint64_t t_last)
{
	int zero = 0;

	smg_err("data channel %u: %s (%llu ms after its last frame)", x->chan,
		smg_strerror(r), (unsigned long long)(smg_now_ms() - t_last));
	atomic_compare_exchange_strong(&x->d->err, &zero, r);
	smg_chan_interrupt(x->d->s, 0);
}

static bool stopped(struct smg_xfer_dest *d)
{
	pthread_mutex_lock(&d->lock);
	bool r = d->stop;
	pthread_mutex_unlock(&d->lock);
	return r;
}

/* Keep reading (and dropping) until the source hangs up, so it never
 * stalls on a channel nobody reads nor finds the connection reset by our
 * close: it learns of the abort on the control channel and ends the
 * session. The control thread bounds this with smg_session_set_deadline.
 * A cancel here interrupted every receive: wait for the control thread to
 * give up (it makes receives work again first), then drain. */
static void drain(struct smg_xfer_recv *x, int r)
{
	struct smg_xfer_dest *d = x->d;
	uint64_t since = smg_now_ms();
	struct smg_frame f;

	if (r == SMG_ERR_CANCELLED || r == SMG_ERR_INTERRUPTED) {
		r = SMG_OK;
		pthread_mutex_lock(&d->lock);
		while (!d->stop && r == SMG_OK)
			r = smg_engine_cond_wait(&d->cond, &d->lock, d->s, since);
		pthread_mutex_unlock(&d->lock);
	}
	if (r == SMG_ERR_EOF || r == SMG_ERR_CUT || r == SMG_ERR_TIMEOUT ||
	    r == SMG_ERR_SYS)
		return;
	while ((r = smg_chan_recv(d->s, x->chan, &f)) == SMG_OK ||
	       r == SMG_ERR_INTERRUPTED)
		;
}

void *smg_xfer_recv_main(void *arg)
{
	struct smg_xfer_recv *x = arg;
	struct smg_xfer_dest *d = x->d;
	struct smg_frame f;
	int r = SMG_OK;

	uint64_t t_last = smg_now_ms();

	while (!x->finished) {
		if ((r = smg_chan_recv(d->s, x->chan, &f)) != SMG_OK)
			break;
		t_last = smg_now_ms();
		if (stopped(d)) {
			/* the control thread gave up: write nothing more */
			r = SMG_ERR_ABORTED;
			break;
		}
		if (smg_fault_on(SMG_FI_DST_SLOW_DATA) && final_begun(d)) {
			/* the state on channel 0 overtakes this channel's last pages */
			struct timespec lag = {0, SLOW_DATA_NS};
			nanosleep(&lag, NULL);
		}
		if ((r = smg_xfer_recv_frame(x, f.type, f.payload, f.len)) != SMG_OK)
			break;
	}
	if (r != SMG_OK && !stopped(d))
		chan_failed(x, r, t_last);
	pthread_mutex_lock(&d->lock);
	d->chans_done++;
	pthread_cond_broadcast(&d->cond);
	pthread_mutex_unlock(&d->lock);
	if (r != SMG_OK)
		drain(x, r);
	return NULL;
}
