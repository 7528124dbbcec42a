/* The frame API on one channel: control and bulk sends (sealed in place in
 * a send-window slot), receive with the stream's end told apart from a cut,
 * and the FINAL exchange of a clean close. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "transport/internal.h"

static int chan_get(struct smg_session *s, unsigned idx, struct chan **out)
{
	struct chan *c;

	if (s == NULL || idx >= s->nchan)
		return SMG_ERR_INVAL;
	*out = c = &s->ch[idx];
	/* Past the session's deadline nothing goes on, not even a peer that
	 * never lets a wait happen. */
	if (c->dead == 0 && smg_live_cut_off(&s->live)) {
		char what[32];

		snprintf(what, sizeof(what), "channel %u", idx);
		c->dead = smg_live_fail(&s->live, LIVE_CUTOFF, what);
	}
	return c->dead;
}

static int send_type_ok(uint8_t type, size_t len)
{
	const struct smg_frame_info *fi = smg_proto_frame_info(type);

	if (fi == NULL || fi->kind == SMG_FK_HANDSHAKE || type == SMG_FT_CLOSE)
		return SMG_ERR_INVAL;
	if (len > fi->max_payload)
		return SMG_ERR_TOO_LONG;
	return SMG_OK;
}

/* The next free slot of the send window, its buffer allocated. */
static int slot_reserve(struct chan *c, uint8_t **buf)
{
	struct tx_slot *slot;
	int r;

	if (c->begun)
		return SMG_ERR_STATE;
	if (c->tx.final)
		return SMG_ERR_AFTER_FINAL;
	/* Back-pressure: a full window waits for the socket to drain. */
	if (c->queued >= TX_SLOTS && (r = smg_chan_io_send(c, true, false)) != 0)
		return r;
	slot = &c->slots[(c->head + c->queued) % TX_SLOTS];
	if (slot->buf == NULL) {
		if ((slot->buf = malloc(FRAME_WIRE_MAX)) == NULL)
			return SMG_ERR_NOMEM;
		c->mem += FRAME_WIRE_MAX;
	}
	*buf = slot->buf;
	return SMG_OK;
}

int smg_chan_bulk_begin(struct smg_session *s, unsigned chan, size_t len,
			uint8_t **payload)
{
	struct chan *c;
	uint8_t *buf;
	int r;

	*payload = NULL;
	if ((r = chan_get(s, chan, &c)) != 0)
		return r;
	if (len > SMG_FRAME_PAYLOAD_MAX)
		return SMG_ERR_TOO_LONG;
	if ((r = slot_reserve(c, &buf)) != 0)
		return r;
	c->begun = true;
	*payload = buf + FRAME_PAYLOAD_OFF;
	return SMG_OK;
}

static int submit(struct chan *c, uint8_t type, size_t len, bool final)
{
	struct tx_slot *slot = &c->slots[(c->head + c->queued) % TX_SLOTS];
	size_t wire;
	int r;

	c->begun = false;
	if ((r = smg_frame_seal(&c->tx, slot->buf, type, len, final, &wire)) != 0)
		return r;
	slot->len = wire;
	slot->sent = 0;
	slot->ping = type == SMG_FT_PING;
	c->queued++;
	return smg_chan_io_send(c, false, false);
}

int smg_chan_bulk_submit(struct smg_session *s, unsigned chan, uint8_t type, size_t len)
{
	struct chan *c;
	int r;

	if ((r = chan_get(s, chan, &c)) != 0)
		return r;
	if (!c->begun)
		return SMG_ERR_STATE;
	if ((r = send_type_ok(type, len)) != 0) {
		c->begun = false;
		return r;
	}
	return submit(c, type, len, false);
}

int smg_chan_bulk_abandon(struct smg_session *s, unsigned chan)
{
	struct chan *c;

	if (s == NULL || chan >= s->nchan)
		return SMG_ERR_INVAL;
	c = &s->ch[chan];
	if (!c->begun)
		return SMG_ERR_STATE;
	/* The slot was never queued nor sealed: the next begin reuses it. */
	c->begun = false;
	return SMG_OK;
}

int smg_chan_send(struct smg_session *s, unsigned chan, uint8_t type, const void *payload,
		  size_t len)
{
	uint8_t *p;
	int r;

	if ((r = send_type_ok(type, len)) != 0)
		return r;
	if ((r = smg_chan_bulk_begin(s, chan, len, &p)) != 0)
		return r;
	if (len > 0)
		memcpy(p, payload, len);
	return submit(&s->ch[chan], type, len, false);
}

int smg_chan_send_msg(struct smg_session *s, unsigned chan, uint8_t type,
		      const ProtobufCMessage *msg)
{
	const struct smg_frame_info *fi = smg_proto_frame_info(type);
	size_t len;
	uint8_t *p;
	int r;

	if (fi == NULL || fi->kind != SMG_FK_CONTROL || msg == NULL ||
	    msg->descriptor != fi->desc)
		return SMG_ERR_INVAL;
	len = protobuf_c_message_get_packed_size(msg);
	if (len > fi->max_payload)
		return SMG_ERR_TOO_LONG;
	if ((r = smg_chan_bulk_begin(s, chan, len, &p)) != 0)
		return r;
	protobuf_c_message_pack(msg, p); /* straight into the frame: no copy */
	return submit(&s->ch[chan], type, len, false);
}

int smg_chan_flush(struct smg_session *s, unsigned chan)
{
	struct chan *c;
	int r;

	if ((r = chan_get(s, chan, &c)) != 0)
		return r;
	return smg_chan_io_send(c, true, true);
}

/* Make room for a frame of `need` bytes starting at rstart. Only called at
 * the start of a recv, when no payload handed out is still in use. */
static void rx_compact(struct chan *c, size_t need)
{
	/* A receive still in flight (its wait was interrupted) fills the
	 * buffer at rend: nothing moves until it completes. */
	if (c->recv_inflight)
		return;
	if (c->rstart == c->rend) {
		c->rstart = c->rend = 0;
	} else if (RX_BUF_BYTES - c->rstart < need) {
		memmove(c->rbuf, c->rbuf + c->rstart, c->rend - c->rstart);
		c->rend -= c->rstart;
		c->rstart = 0;
	}
}

static int recv_after_final(struct chan *c)
{
	if (c->rstart < c->rend)
		return SMG_ERR_AFTER_FINAL;
	if (!c->rx_eof) {
		int r = smg_chan_io_recv(c);

		if (r != 0)
			return r;
		if (c->rstart < c->rend)
			return SMG_ERR_AFTER_FINAL;
	}
	return SMG_ERR_EOF;
}

int smg_chan_recv(struct smg_session *s, unsigned chan, struct smg_frame *out)
{
	struct chan *c;
	size_t need;
	int r;

	memset(out, 0, sizeof(*out));
	if ((r = chan_get(s, chan, &c)) != 0)
		return r;
	if (atomic_load(&s->interrupted))
		return SMG_ERR_CANCELLED;
	c->rx_since = smg_now_ms();
	if (c->eof_returned)
		return recv_after_final(c);
	for (;;) {
		rx_compact(c, FRAME_LEN_BYTES);
		r = smg_frame_check_len(c->rbuf + c->rstart, c->rend - c->rstart, &need);
		if (r == SMG_ERR_TRUNCATED) {
			if (c->rx_eof) {
				r = SMG_ERR_CUT;
				break;
			}
			rx_compact(c, need);
			if ((r = smg_chan_io_recv(c)) != 0)
				return r == SMG_ERR_INTERRUPTED &&
					       atomic_load(&s->interrupted)
					   ? SMG_ERR_CANCELLED
					   : r;
			continue;
		}
		if (r != 0)
			break;
		r = smg_frame_open(&c->rx, c->rbuf + c->rstart, need, out);
		c->rstart += need;
		if (r == SMG_ERR_EOF) {
			c->eof_returned = true;
			memset(out, 0, sizeof(*out));
			return r;
		}
		if (r != 0)
			break;
		if (out->type == SMG_FT_PING)
			continue;
		smg_live_moved(&s->live, true);
		return SMG_OK;
	}
	memset(out, 0, sizeof(*out));
	if (r == SMG_ERR_CUT)
		smg_peer_log(SMG_LOG_ERROR,
			     "channel %u from '%s': stream cut before FINAL", chan,
			     s->peer_name);
	else
		smg_peer_log(SMG_LOG_ERROR, "channel %u from '%s': bad frame: %s", chan,
			     s->peer_name, smg_strerror(r));
	c->dead = r;
	return r;
}

int smg_chan_discard(struct smg_session *s, unsigned chan, uint64_t *bytes)
{
	struct chan *c;
	int r, dead;

	*bytes = 0;
	if ((r = chan_get(s, chan, &c)) != 0)
		return r;
	dead = c->dead;
	if (dead == 0 || dead == SMG_ERR_CUT || c->rx_eof)
		return SMG_ERR_STATE; /* readable, or nothing more will come */
	c->rx_since = smg_now_ms();
	for (;;) {
		if (!c->recv_inflight) { /* a receive in flight fills at rend */
			*bytes += c->rend - c->rstart;
			c->rstart = c->rend = 0;
		}
		c->dead = 0; /* the bytes, not the frames: the I/O may go on */
		r = smg_chan_io_recv(c);
		if (r == SMG_OK && c->rx_eof)
			r = SMG_ERR_EOF;
		if (r == SMG_ERR_INTERRUPTED && !atomic_load(&s->interrupted))
			continue;
		if (r != SMG_OK)
			break;
	}
	*bytes += c->recv_inflight ? 0 : c->rend - c->rstart;
	c->rstart = c->rend = c->recv_inflight ? c->rend : 0;
	c->dead = dead;
	return r;
}

void smg_chan_interrupt(struct smg_session *s, unsigned chan)
{
	if (s != NULL && chan < s->nchan)
		atomic_store(&s->ch[chan].intr, true);
}

bool smg_chan_has_input(struct smg_session *s, unsigned chan)
{
	struct chan *c;

	return chan_get(s, chan, &c) == SMG_OK && smg_chan_io_pending(c);
}

int smg_frame_unpack(const struct smg_frame *f, const ProtobufCMessageDescriptor *desc,
		     ProtobufCMessage **out)
{
	const struct smg_frame_info *fi = smg_proto_frame_info(f->type);

	*out = NULL;
	if (fi == NULL || fi->kind != SMG_FK_CONTROL || fi->desc != desc)
		return SMG_ERR_STATE;
	return smg_proto_unpack(f->type, f->payload, f->len, out);
}

void smg_frame_msg_free(ProtobufCMessage *msg)
{
	smg_proto_free(msg);
}

static int chan_send_final(struct chan *c)
{
	uint8_t *buf;
	int r;

	if (c->dead || c->tx_dead)
		return c->dead ?: c->tx_dead;
	if (c->tx.final)
		return SMG_OK;
	if ((r = slot_reserve(c, &buf)) != 0 ||
	    (r = submit(c, SMG_FT_CLOSE, 0, true)) != 0 ||
	    (r = smg_chan_io_send(c, true, true)) != 0)
		return r;
	shutdown(c->fd, SHUT_WR);
	return SMG_OK;
}

/* Wait for the peer's FINAL; frames still in flight before it are
 * dropped (the caller is done with the session). */
static int chan_wait_final(struct smg_session *s, unsigned idx)
{
	struct smg_frame f;
	int r;

	if (s->ch[idx].eof_returned)
		return SMG_OK;
	while ((r = smg_chan_recv(s, idx, &f)) == 0)
		;
	return r == SMG_ERR_EOF ? SMG_OK : r;
}

int smg_session_close(struct smg_session *s)
{
	int r = SMG_OK, e;

	if (s == NULL)
		return SMG_OK;
	for (unsigned i = 0; i < s->nchan; i++)
		if ((e = chan_send_final(&s->ch[i])) != 0 && r == 0)
			r = e;
	for (unsigned i = 0; i < s->nchan && r == 0; i++)
		if ((e = chan_wait_final(s, i)) != 0 && r == 0)
			r = e;
	smg_session_free(s);
	return r;
}
