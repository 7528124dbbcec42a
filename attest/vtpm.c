/* vtpm: a guest vTPM's state through swtpm's control channel (the socket
 * form of swtpm_ioctl: CMD_GET_STATEBLOB / CMD_SET_STATEBLOB / CMD_INIT /
 * CMD_SHUTDOWN, big-endian, docs: swtpm-ioctls(3)). The state is taken from
 * the running instance, never by copying files under it, and loaded into a
 * fresh instance before its TPM is initialised, so the guest resumes with
 * the same PCRs, keys, sessions and NV indices. swtpm's replies are parsed
 * with the bounded reader; a blob larger than SMG_VTPM_BLOB_MAX is refused
 * before anything is allocated for it. */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <sodium.h>

#include "attest/attest.h"
#include "base/base.h"

#define CMD_INIT	  0x02u
#define CMD_SHUTDOWN	  0x03u
#define CMD_GET_STATEBLOB 0x0cu
#define CMD_SET_STATEBLOB 0x0du

#define BLOB_PERMANENT 1u
#define BLOB_VOLATILE  2u

#define GETSTATE_HDR_LEN 16 /* result, flags, totlength, length */
#define CTRL_TIMEOUT_MS	 10000
#define STATE_MAGIC	 "SMGVTPM1"
#define STATE_MAGIC_LEN	 8

static int ctrl_connect(const char *ctrl)
{
	int fd, r;

	if ((r = smg_unix_connect(ctrl, NULL, SOCK_STREAM, &fd)) != SMG_OK) {
		smg_err("vtpm: cannot reach the swtpm control socket %s: %s", ctrl,
			smg_strerror(r));
		return r;
	}
	return fd;
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return smg_err_sys(errno);
		p += w;
		n -= (size_t)w;
	}
	return SMG_OK;
}

static int read_exact(int fd, uint8_t *p, size_t n)
{
	while (n > 0) {
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		ssize_t r;

		if (poll(&pfd, 1, CTRL_TIMEOUT_MS) == 0) {
			smg_err("vtpm: swtpm control channel timed out");
			return SMG_ERR_TIMEOUT;
		}
		r = read(fd, p, n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return smg_err_sys(errno);
		if (r == 0)
			return SMG_ERR_EOF;
		p += r;
		n -= (size_t)r;
	}
	return SMG_OK;
}

/* One command with a bare 4-byte result, on its own connection. */
static int simple_cmd(const char *ctrl, const uint8_t *req, size_t len, const char *what)
{
	uint8_t res[4];
	uint32_t code;
	int fd, r;

	if ((fd = ctrl_connect(ctrl)) < 0)
		return fd;
	if ((r = write_all(fd, req, len)) == 0)
		r = read_exact(fd, res, sizeof(res));
	close(fd);
	if (r != 0) {
		smg_err("vtpm: %s: no answer from swtpm (%s)", what, smg_strerror(r));
		return r;
	}
	if ((code = smg_load_be32(res)) != 0) {
		smg_err("vtpm: swtpm refused %s: TPM result 0x%x", what, code);
		return SMG_ERR_TPM;
	}
	return SMG_OK;
}

int smg_vtpm_parse_getstate_hdr(const uint8_t *buf, size_t len, uint32_t *tpm_result,
				uint32_t *flags, uint32_t *totlen, uint32_t *chunk)
{
	struct smg_rd rd;
	int r;

	smg_rd_init(&rd, buf, len);
	if ((r = smg_rd_u32(&rd, tpm_result)) != 0 || (r = smg_rd_u32(&rd, flags)) != 0 ||
	    (r = smg_rd_u32(&rd, totlen)) != 0 || (r = smg_rd_u32(&rd, chunk)) != 0)
		return r;
	if ((r = smg_rd_end(&rd)) != 0)
		return r;
	if (*tpm_result != 0)
		return SMG_OK; /* no lengths to check on an error reply */
	/* A lying length must not make us allocate: cap it, and a chunk can
	 * never be longer than what is left of the blob. */
	if (*totlen > SMG_VTPM_BLOB_MAX)
		return SMG_ERR_TOO_LONG;
	if (*chunk > *totlen)
		return SMG_ERR_PROTO;
	return SMG_OK;
}

static int get_blob(const char *ctrl, uint32_t type, uint8_t **out, size_t *out_len,
		    uint32_t *out_flags)
{
	uint8_t req[16], hdr[GETSTATE_HDR_LEN], *blob = NULL;
	uint32_t result, flags = 0, total = 0, left, chunk, got = 0;
	int fd = -1, r;

	*out = NULL;
	*out_len = 0;
	/* swtpm answers the rest of the blob from `offset`; over a socket it
	 * sends it all at once, but a shorter chunk is handled by asking again */
	do {
		smg_store_be32(req, CMD_GET_STATEBLOB);
		smg_store_be32(req + 4, 0); /* state as stored (encrypted stays so) */
		smg_store_be32(req + 8, type);
		smg_store_be32(req + 12, got);
		if ((fd = ctrl_connect(ctrl)) < 0) {
			r = fd;
			goto fail;
		}
		if ((r = write_all(fd, req, sizeof(req))) != 0 ||
		    (r = read_exact(fd, hdr, sizeof(hdr))) != 0)
			goto fail;
		/* totlength counts from `offset` to the end of the blob */
		if ((r = smg_vtpm_parse_getstate_hdr(hdr, sizeof(hdr), &result, &flags,
						     &left, &chunk)) != 0) {
			smg_err("vtpm: bad GET_STATEBLOB reply from swtpm: %s",
				smg_strerror(r));
			goto fail;
		}
		if (result != 0) {
			smg_err("vtpm: swtpm refused GET_STATEBLOB(%u): TPM result 0x%x",
				type, result);
			r = SMG_ERR_TPM;
			goto fail;
		}
		if (blob == NULL) {
			total = left;
			if ((blob = malloc(total ? total : 1)) == NULL) {
				r = SMG_ERR_NOMEM;
				goto fail;
			}
		} else if (left != total - got) {
			r = SMG_ERR_PROTO; /* the blob changed between chunks */
			goto fail;
		}
		if (chunk > total - got) {
			r = SMG_ERR_PROTO;
			goto fail;
		}
		if ((r = read_exact(fd, blob + got, chunk)) != 0)
			goto fail;
		got += chunk;
		close(fd);
		fd = -1;
		if (chunk == 0 && got < total) {
			r = SMG_ERR_PROTO;
			goto fail;
		}
	} while (got < total);
	*out = blob;
	*out_len = total;
	*out_flags = flags;
	return SMG_OK;
fail:
	if (fd >= 0)
		close(fd);
	free(blob);
	return r;
}

int smg_vtpm_get_state(const char *ctrl, struct smg_vtpm_state *out)
{
	int r;

	memset(out, 0, sizeof(*out));
	if ((r = get_blob(ctrl, BLOB_PERMANENT, &out->perm, &out->perm_len,
			  &out->perm_flags)) != 0 ||
	    (r = get_blob(ctrl, BLOB_VOLATILE, &out->vol, &out->vol_len,
			  &out->vol_flags)) != 0) {
		smg_vtpm_state_free(out);
		return r;
	}
	if (out->perm_len == 0) {
		smg_err("vtpm: the instance has no permanent state");
		smg_vtpm_state_free(out);
		return SMG_ERR_TPM;
	}
	return SMG_OK;
}

static int set_blob(const char *ctrl, uint32_t type, uint32_t flags, const uint8_t *p,
		    size_t n)
{
	uint8_t *req;
	int r;

	if (n > SMG_VTPM_BLOB_MAX)
		return SMG_ERR_TOO_LONG;
	if ((req = malloc(16 + n)) == NULL)
		return SMG_ERR_NOMEM;
	smg_store_be32(req, CMD_SET_STATEBLOB);
	smg_store_be32(req + 4, flags);
	smg_store_be32(req + 8, type);
	smg_store_be32(req + 12, (uint32_t)n);
	memcpy(req + 16, p, n);
	r = simple_cmd(ctrl, req, 16 + n,
		       type == BLOB_PERMANENT ? "SET_STATEBLOB(permanent)"
					      : "SET_STATEBLOB(volatile)");
	sodium_memzero(req, 16 + n);
	free(req);
	return r;
}

int smg_vtpm_put_state(const char *ctrl, const struct smg_vtpm_state *st)
{
	uint8_t init[8];
	int r;

	if (st->perm == NULL || st->perm_len == 0)
		return SMG_ERR_INVAL;
	if ((r = set_blob(ctrl, BLOB_PERMANENT, st->perm_flags, st->perm,
			  st->perm_len)) != 0 ||
	    (st->vol_len > 0 && (r = set_blob(ctrl, BLOB_VOLATILE, st->vol_flags, st->vol,
					      st->vol_len)) != 0))
		return r;
	/* Initialise from the blobs just written: the TPM resumes, no Startup */
	smg_store_be32(init, CMD_INIT);
	smg_store_be32(init + 4, 0);
	return simple_cmd(ctrl, init, sizeof(init), "INIT");
}

int smg_vtpm_shutdown(const char *ctrl)
{
	uint8_t req[4];

	smg_store_be32(req, CMD_SHUTDOWN);
	return simple_cmd(ctrl, req, sizeof(req), "SHUTDOWN");
}

void smg_vtpm_state_free(struct smg_vtpm_state *st)
{
	if (st == NULL)
		return;
	if (st->perm != NULL)
		sodium_memzero(st->perm, st->perm_len);
	if (st->vol != NULL)
		sodium_memzero(st->vol, st->vol_len);
	free(st->perm);
	free(st->vol);
	memset(st, 0, sizeof(*st));
}

int smg_vtpm_state_encode(const struct smg_vtpm_state *st, uint8_t **buf, size_t *len)
{
	size_t cap = STATE_MAGIC_LEN + 2 * (4 + 4) + st->perm_len + st->vol_len;
	struct smg_wr wr;
	int r;

	*buf = NULL;
	*len = 0;
	if (st->perm_len > SMG_VTPM_BLOB_MAX || st->vol_len > SMG_VTPM_BLOB_MAX)
		return SMG_ERR_TOO_LONG;
	if ((*buf = malloc(cap)) == NULL)
		return SMG_ERR_NOMEM;
	smg_wr_init(&wr, *buf, cap);
	if ((r = smg_wr_bytes(&wr, STATE_MAGIC, STATE_MAGIC_LEN)) != 0 ||
	    (r = smg_wr_u32(&wr, st->perm_flags)) != 0 ||
	    (r = smg_wr_string32(&wr, st->perm, st->perm_len, SMG_VTPM_BLOB_MAX)) != 0 ||
	    (r = smg_wr_u32(&wr, st->vol_flags)) != 0 ||
	    (r = smg_wr_string32(&wr, st->vol, st->vol_len, SMG_VTPM_BLOB_MAX)) != 0) {
		free(*buf);
		*buf = NULL;
		return r;
	}
	*len = wr.off;
	return SMG_OK;
}

static int dup_blob(const uint8_t *p, size_t n, uint8_t **out)
{
	if ((*out = malloc(n ? n : 1)) == NULL)
		return SMG_ERR_NOMEM;
	memcpy(*out, p, n);
	return SMG_OK;
}

int smg_vtpm_state_decode(const uint8_t *buf, size_t len, struct smg_vtpm_state *out)
{
	const uint8_t *magic, *perm, *vol;
	struct smg_rd rd;
	int r;

	memset(out, 0, sizeof(*out));
	if (len > SMG_VTPM_STATE_MAX)
		return SMG_ERR_TOO_LONG;
	smg_rd_init(&rd, buf, len);
	if ((r = smg_rd_ptr(&rd, STATE_MAGIC_LEN, &magic)) != 0)
		return r;
	if (memcmp(magic, STATE_MAGIC, STATE_MAGIC_LEN) != 0)
		return SMG_ERR_PROTO;
	if ((r = smg_rd_u32(&rd, &out->perm_flags)) != 0 ||
	    (r = smg_rd_string32(&rd, SMG_VTPM_BLOB_MAX, &perm, &out->perm_len)) != 0 ||
	    (r = smg_rd_u32(&rd, &out->vol_flags)) != 0 ||
	    (r = smg_rd_string32(&rd, SMG_VTPM_BLOB_MAX, &vol, &out->vol_len)) != 0 ||
	    (r = smg_rd_end(&rd)) != 0)
		goto fail;
	if (out->perm_len == 0) {
		r = SMG_ERR_PROTO;
		goto fail;
	}
	if ((r = dup_blob(perm, out->perm_len, &out->perm)) != 0 ||
	    (r = dup_blob(vol, out->vol_len, &out->vol)) != 0)
		goto fail;
	return SMG_OK;
fail:
	free(out->perm);
	free(out->vol);
	memset(out, 0, sizeof(*out));
	return r;
}

void smg_vtpm_state_hash(const uint8_t *buf, size_t len, uint8_t out[SMG_VTPM_HASH_LEN])
{
	crypto_generichash(out, SMG_VTPM_HASH_LEN, buf, len, NULL, 0);
}
