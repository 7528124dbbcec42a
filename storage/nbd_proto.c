/* One NBD session over any byte stream: fixed newstyle handshake, option
 * haggling (EXPORT_NAME, GO, INFO, LIST, ABORT; everything else refused),
 * then simple-reply transmission (READ, WRITE, FLUSH, TRIM, WRITE_ZEROES,
 * DISC). Everything the client sends is parsed with the bounded reader;
 * lengths are capped before anything is allocated. A client that breaks the
 * framing is disconnected; a bad request inside valid framing gets an error
 * reply. Protocol: the NBD spec (doc/proto.md in the nbd project). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "storage/nbd.h"

#define NBD_MAGIC	   0x4e42444d41474943ull /* "NBDMAGIC" */
#define NBD_IHAVEOPT	   0x49484156454f5054ull
#define NBD_REP_MAGIC	   0x0003e889045565a9ull
#define NBD_REQ_MAGIC	   0x25609513u
#define NBD_SIMPLE_MAGIC   0x67446698u
#define NBD_FLAG_FIXED	   (1u << 0)
#define NBD_FLAG_NO_ZEROES (1u << 1)

#define NBD_OPT_EXPORT_NAME 1
#define NBD_OPT_ABORT	    2
#define NBD_OPT_LIST	    3
#define NBD_OPT_INFO	    6
#define NBD_OPT_GO	    7

#define NBD_REP_ACK	    1u
#define NBD_REP_SERVER	    2u
#define NBD_REP_INFO	    3u
#define NBD_REP_ERR_UNSUP   (0x80000000u + 1)
#define NBD_REP_ERR_INVALID (0x80000000u + 3)
#define NBD_REP_ERR_UNKNOWN (0x80000000u + 6)

#define NBD_INFO_EXPORT	    0
#define NBD_INFO_BLOCK_SIZE 3

#define NBD_TF_HAS_FLAGS	 (1u << 0)
#define NBD_TF_SEND_FLUSH	 (1u << 2)
#define NBD_TF_SEND_FUA		 (1u << 3)
#define NBD_TF_SEND_TRIM	 (1u << 5)
#define NBD_TF_SEND_WRITE_ZEROES (1u << 6)
#define NBD_TRANSMIT_FLAGS                                                           \
	(NBD_TF_HAS_FLAGS | NBD_TF_SEND_FLUSH | NBD_TF_SEND_FUA | NBD_TF_SEND_TRIM | \
	 NBD_TF_SEND_WRITE_ZEROES)

#define NBD_CMD_READ	     0
#define NBD_CMD_WRITE	     1
#define NBD_CMD_DISC	     2
#define NBD_CMD_FLUSH	     3
#define NBD_CMD_TRIM	     4
#define NBD_CMD_WRITE_ZEROES 6
#define NBD_CMD_FLAG_FUA     (1u << 0)
#define NBD_CMD_FLAG_NO_HOLE (1u << 1)
#define NBD_CMD_FLAGS_KNOWN  (NBD_CMD_FLAG_FUA | NBD_CMD_FLAG_NO_HOLE)

#define NBD_OPT_HDR 16u
#define NBD_EIO	    5u
#define NBD_EINVAL  22u
#define NBD_ENOSPC  28u
#define NBD_ENOMEM  12u

int smg_nbd_parse_request(const uint8_t *buf, size_t len, struct smg_nbd_req *out)
{
	struct smg_rd rd;
	uint32_t magic;
	int r;

	smg_rd_init(&rd, buf, len);
	if ((r = smg_rd_u32(&rd, &magic)) != 0 ||
	    (r = smg_rd_u16(&rd, &out->flags)) != 0 ||
	    (r = smg_rd_u16(&rd, &out->type)) != 0 ||
	    (r = smg_rd_u64(&rd, &out->cookie)) != 0 ||
	    (r = smg_rd_u64(&rd, &out->offset)) != 0 ||
	    (r = smg_rd_u32(&rd, &out->len)) != 0)
		return r;
	/* A wrong magic means we lost the framing: no reply can be trusted. */
	if (magic != NBD_REQ_MAGIC)
		return SMG_ERR_NBD;
	return smg_rd_end(&rd);
}

static int send_all(struct nbd_io *io, const void *p, size_t n)
{
	return io->send(io->self, p, n);
}

static int opt_reply(struct nbd_io *io, uint32_t opt, uint32_t type, const void *data,
		     uint32_t len)
{
	uint8_t hdr[20];
	int r;

	smg_store_be64(hdr, NBD_REP_MAGIC);
	smg_store_be32(hdr + 8, opt);
	smg_store_be32(hdr + 12, type);
	smg_store_be32(hdr + 16, len);
	if ((r = send_all(io, hdr, sizeof(hdr))) != 0)
		return r;
	return len ? send_all(io, data, len) : SMG_OK;
}

static int reply_info(struct nbd_sess *s, uint32_t opt, const uint8_t *data, uint32_t len,
		      bool *go)
{
	const uint8_t *name, *reqs;
	struct smg_vdisk *disk;
	uint64_t size;
	void *ref;
	uint8_t info[18];
	struct smg_rd rd;
	uint16_t nreq, i;
	size_t nlen;
	bool bs = false;
	int r;

	*go = false;
	smg_rd_init(&rd, data, len);
	if (smg_rd_string32(&rd, SMG_NBD_OPT_MAX, &name, &nlen) != 0 ||
	    smg_rd_u16(&rd, &nreq) != 0 ||
	    smg_rd_ptr(&rd, (size_t)nreq * 2, &reqs) != 0 || smg_rd_end(&rd) != 0)
		return opt_reply(s->io, opt, NBD_REP_ERR_INVALID, NULL, 0);
	if ((disk = s->lk->get(s->lk->self, (const char *)name, nlen, &ref)) == NULL)
		return opt_reply(s->io, opt, NBD_REP_ERR_UNKNOWN, NULL, 0);
	size = smg_vdisk_size(disk);
	if (opt == NBD_OPT_GO) {
		s->disk = disk;
		s->ref = ref;
	} else {
		s->lk->put(s->lk->self, ref);
	}
	for (i = 0; i < nreq; i++)
		if (smg_load_be16(reqs + 2 * i) == NBD_INFO_BLOCK_SIZE)
			bs = true;
	smg_store_be16(info, NBD_INFO_EXPORT);
	smg_store_be64(info + 2, size);
	smg_store_be16(info + 10, NBD_TRANSMIT_FLAGS);
	if ((r = opt_reply(s->io, opt, NBD_REP_INFO, info, 12)) != 0)
		return r;
	if (bs) {
		smg_store_be16(info, NBD_INFO_BLOCK_SIZE);
		smg_store_be32(info + 2, 1);
		smg_store_be32(info + 6, SMG_STG_BLOCK);
		smg_store_be32(info + 10, SMG_NBD_REQ_MAX);
		if ((r = opt_reply(s->io, opt, NBD_REP_INFO, info, 14)) != 0)
			return r;
	}
	if ((r = opt_reply(s->io, opt, NBD_REP_ACK, NULL, 0)) != 0)
		return r;
	*go = opt == NBD_OPT_GO;
	return SMG_OK;
}

static int reply_list(struct nbd_sess *s, uint32_t len)
{
	static char names[SMG_DSVC_DISKS_MAX][SMG_DSVC_NAME_MAX + 1];
	static pthread_mutex_t names_mu = PTHREAD_MUTEX_INITIALIZER;
	uint8_t ent[4 + SMG_DSVC_NAME_MAX];
	size_t n, i;
	int r = SMG_OK;

	if (len != 0)
		return opt_reply(s->io, NBD_OPT_LIST, NBD_REP_ERR_INVALID, NULL, 0);
	pthread_mutex_lock(&names_mu);
	n = s->lk->names(s->lk->self, names, SMG_DSVC_DISKS_MAX);
	for (i = 0; i < n && r == 0; i++) {
		uint32_t nl = (uint32_t)strlen(names[i]);

		smg_store_be32(ent, nl);
		memcpy(ent + 4, names[i], nl);
		r = opt_reply(s->io, NBD_OPT_LIST, NBD_REP_SERVER, ent, 4 + nl);
	}
	pthread_mutex_unlock(&names_mu);
	return r ? r : opt_reply(s->io, NBD_OPT_LIST, NBD_REP_ACK, NULL, 0);
}

/* Option haggling; *go when the client moves to transmission. */
static int haggle(struct nbd_sess *s, bool *go)
{
	uint8_t hdr[NBD_OPT_HDR], data[SMG_NBD_OPT_MAX];
	struct smg_rd rd;
	uint64_t magic;
	uint32_t opt, len;
	int r;

	*go = false;
	for (;;) {
		if ((r = s->io->recv(s->io->self, hdr, sizeof(hdr))) != 0)
			return r;
		smg_rd_init(&rd, hdr, sizeof(hdr));
		if ((r = smg_rd_u64(&rd, &magic)) != 0 ||
		    (r = smg_rd_u32(&rd, &opt)) != 0 || (r = smg_rd_u32(&rd, &len)) != 0)
			return r;
		if (magic != NBD_IHAVEOPT)
			return SMG_ERR_NBD;
		/* Longer than any option we take: a client trying to make us
		 * buffer or skip without bound. Hang up. */
		if (len > SMG_NBD_OPT_MAX)
			return SMG_ERR_TOO_LONG;
		if (len && (r = s->io->recv(s->io->self, data, len)) != 0)
			return r;
		switch (opt) {
		case NBD_OPT_EXPORT_NAME: {
			uint8_t rep[10 + 124] = {0};

			s->disk =
			    s->lk->get(s->lk->self, (const char *)data, len, &s->ref);
			if (s->disk == NULL)
				return SMG_ERR_NOT_FOUND; /* the spec says: close */
			smg_store_be64(rep, smg_vdisk_size(s->disk));
			smg_store_be16(rep + 8, NBD_TRANSMIT_FLAGS);
			*go = true;
			return send_all(s->io, rep, s->no_zeroes ? 10 : sizeof(rep));
		}
		case NBD_OPT_ABORT:
			(void)opt_reply(s->io, opt, NBD_REP_ACK, NULL, 0);
			return SMG_OK;
		case NBD_OPT_LIST:
			r = reply_list(s, len);
			break;
		case NBD_OPT_INFO:
		case NBD_OPT_GO:
			if ((r = reply_info(s, opt, data, len, go)) == 0 && *go)
				return SMG_OK;
			break;
		default: /* STARTTLS, STRUCTURED_REPLY, META_CONTEXT, ...: simple replies
			    only */
			r = opt_reply(s->io, opt, NBD_REP_ERR_UNSUP, NULL, 0);
			break;
		}
		if (r != 0)
			return r;
	}
}

static int simple_reply(struct nbd_sess *s, uint64_t cookie, uint32_t err,
			const void *data, size_t len)
{
	uint8_t hdr[16];
	int r;

	smg_store_be32(hdr, NBD_SIMPLE_MAGIC);
	smg_store_be32(hdr + 4, err);
	smg_store_be64(hdr + 8, cookie);
	if ((r = send_all(s->io, hdr, sizeof(hdr))) != 0)
		return r;
	return err == 0 && len ? send_all(s->io, data, len) : SMG_OK;
}

static uint32_t nbd_errno(int r)
{
	if (r == SMG_ERR_INVAL)
		return NBD_EINVAL;
	if (r == SMG_ERR_NOMEM)
		return NBD_ENOMEM;
	return NBD_EIO;
}

static int ensure_buf(struct nbd_sess *s, size_t n)
{
	uint8_t *p;

	if (n <= s->cap)
		return SMG_OK;
	if (posix_memalign((void **)&p, SMG_STG_BLOCK, n) != 0)
		return SMG_ERR_NOMEM;
	free(s->buf);
	s->buf = p;
	s->cap = n;
	return SMG_OK;
}

static bool in_range(const struct nbd_sess *s, const struct smg_nbd_req *q)
{
	uint64_t size = smg_vdisk_size(s->disk);

	return q->offset <= size && q->len <= size - q->offset;
}

/* One request whose header parsed; SMG_OK to go on, else disconnect. */
static int serve_request(struct nbd_sess *s, const struct smg_nbd_req *q)
{
	uint32_t err = 0;
	int r = SMG_OK;

	if (q->type == NBD_CMD_WRITE) {
		/* The payload is on the wire whatever we think of the request;
		 * one we will not buffer leaves the stream unframed. */
		if (q->len > SMG_NBD_REQ_MAX)
			return SMG_ERR_TOO_LONG;
		if ((r = ensure_buf(s, q->len)) != 0 ||
		    (q->len > 0 && (r = s->io->recv(s->io->self, s->buf, q->len)) != 0))
			return r;
	}
	if (q->flags & ~NBD_CMD_FLAGS_KNOWN)
		return simple_reply(s, q->cookie, NBD_EINVAL, NULL, 0);
	switch (q->type) {
	case NBD_CMD_READ:
		if (q->len > SMG_NBD_REQ_MAX || !in_range(s, q))
			return simple_reply(s, q->cookie, NBD_EINVAL, NULL, 0);
		if ((r = ensure_buf(s, q->len)) == 0)
			r = smg_vdisk_read(s->disk, s->buf, q->len, q->offset);
		err = r ? nbd_errno(r) : 0;
		return simple_reply(s, q->cookie, err, s->buf, q->len);
	case NBD_CMD_WRITE:
		if (!in_range(s, q))
			return simple_reply(s, q->cookie, NBD_ENOSPC, NULL, 0);
		r = smg_vdisk_write(s->disk, s->buf, q->len, q->offset);
		if (r == 0 && (q->flags & NBD_CMD_FLAG_FUA))
			r = smg_vdisk_flush(s->disk);
		break;
	case NBD_CMD_FLUSH:
		r = smg_vdisk_flush(s->disk);
		break;
	case NBD_CMD_TRIM:
	case NBD_CMD_WRITE_ZEROES:
		/* Our trim always reads back as zeros, so it also zeroes. */
		if (!in_range(s, q))
			return simple_reply(s, q->cookie, NBD_ENOSPC, NULL, 0);
		r = smg_vdisk_trim(s->disk, q->offset, q->len);
		if (r == 0 && (q->flags & NBD_CMD_FLAG_FUA))
			r = smg_vdisk_flush(s->disk);
		break;
	default:
		return simple_reply(s, q->cookie, NBD_EINVAL, NULL, 0);
	}
	err = r ? nbd_errno(r) : 0;
	return simple_reply(s, q->cookie, err, NULL, 0);
}

static int transmit(struct nbd_sess *s)
{
	uint8_t hdr[SMG_NBD_REQ_HDR];
	struct smg_nbd_req q;
	int r;

	for (;;) {
		if ((r = s->io->recv(s->io->self, hdr, sizeof(hdr))) != 0)
			return r;
		if ((r = smg_nbd_parse_request(hdr, sizeof(hdr), &q)) != 0) {
			smg_peer_log(SMG_LOG_WARN,
				     "nbd: bad request magic; disconnecting");
			return r;
		}
		if (q.type == NBD_CMD_DISC)
			return SMG_OK;
		if ((r = serve_request(s, &q)) != 0)
			return r;
	}
}

int nbd_session_run(struct nbd_sess *s)
{
	uint8_t hello[18], cflags[4];
	uint32_t flags;
	bool go;
	int r;

	smg_store_be64(hello, NBD_MAGIC);
	smg_store_be64(hello + 8, NBD_IHAVEOPT);
	smg_store_be16(hello + 16, NBD_FLAG_FIXED | NBD_FLAG_NO_ZEROES);
	if ((r = send_all(s->io, hello, sizeof(hello))) != 0 ||
	    (r = s->io->recv(s->io->self, cflags, sizeof(cflags))) != 0)
		goto out;
	flags = smg_load_be32(cflags);
	/* Unknown client flags, or a client that is not fixed newstyle. */
	if ((flags & ~(NBD_FLAG_FIXED | NBD_FLAG_NO_ZEROES)) ||
	    !(flags & NBD_FLAG_FIXED)) {
		r = SMG_ERR_NBD;
		goto out;
	}
	s->no_zeroes = flags & NBD_FLAG_NO_ZEROES;
	if ((r = haggle(s, &go)) != 0 || !go)
		goto out;
	r = transmit(s);
out:
	if (s->disk != NULL)
		s->lk->put(s->lk->self, s->ref);
	s->disk = NULL;
	free(s->buf);
	s->buf = NULL;
	s->cap = 0;
	return r;
}

/* ---- the in-memory stream for fuzzing and tests ------------------------------ */
struct buf_stream {
	const uint8_t *in;
	size_t len, off;
};

static int buf_recv(void *self, void *p, size_t n)
{
	struct buf_stream *b = self;

	if (n == 0)
		return SMG_OK;
	if (n > b->len - b->off)
		return SMG_ERR_EOF;
	memcpy(p, b->in + b->off, n);
	b->off += n;
	return SMG_OK;
}

static int buf_send(void *self, const void *p, size_t n)
{
	(void)self;
	(void)p;
	(void)n;
	return SMG_OK;
}

/* One disk, export SMG_NBD_EXPORT_NAME (or ""). */
static struct smg_vdisk *one_get(void *self, const char *name, size_t n, void **ref)
{
	*ref = NULL;
	if (n != 0 && (n != strlen(SMG_NBD_EXPORT_NAME) ||
		       memcmp(name, SMG_NBD_EXPORT_NAME, n) != 0))
		return NULL;
	return self;
}

static void one_put(void *self, void *ref)
{
	(void)self;
	(void)ref;
}

static size_t one_names(void *self, char (*out)[SMG_DSVC_NAME_MAX + 1], size_t max)
{
	(void)self;
	if (max == 0)
		return 0;
	snprintf(out[0], sizeof(out[0]), "%s", SMG_NBD_EXPORT_NAME);
	return 1;
}

int smg_nbd_serve_buffer(struct smg_vdisk *d, const uint8_t *in, size_t len)
{
	struct buf_stream b = {in, in ? len : 0, 0};
	struct nbd_io io = {buf_recv, buf_send, &b};
	struct nbd_lookup lk = {one_get, one_put, one_names, d};
	struct nbd_sess s = {.lk = &lk, .io = &io};

	return nbd_session_run(&s);
}
