/* Device state: QEMU's own migration stream with the shared RAM left out
 * (capability x-ignore-shared, set on both sides: the destination refuses
 * a stream whose capability differs). The source runs `migrate` into a
 * pipe whose write end it hands QEMU with `getfd`; the destination gets the
 * end of a socket pair for `migrate-incoming`. secmig carries the bytes
 * between them inside the session (encrypted, hashed into the manifest).
 * The stream is ~600 KB for a small guest, mostly ROM images and device
 * RAM full of zeros, so it travels zstd-compressed. */
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zstd.h>

#include "base/base.h"
#include "engine/backend/qemu_internal.h"

#define STATE_VERSION 1
#define CODEC_RAW     0
#define CODEC_ZSTD    1
#define ZSTD_LEVEL    1 /* it runs in the downtime: the fastest level */
#define STATE_CHUNK   65536u
#define STATE_WAIT_MS 60000u
#define FD_NAME_OUT   "secmig-state-out"
#define FD_NAME_IN    "secmig-state-in"

static void add_cap(struct json_object *list, const char *name, bool on)
{
	struct json_object *c = json_object_new_object();

	json_object_object_add(c, "capability", json_object_new_string(name));
	json_object_object_add(c, "state", json_object_new_boolean(on));
	json_object_array_add(list, c);
}

/* The device state goes out as a plain stream into our pipe, whatever an
 * operator (or an earlier QEMU migration of this VM) left configured:
 * every capability off but x-ignore-shared, no TLS (the session encrypts). */
static int prepare(struct smg_qmp *q)
{
	struct json_object *caps, *list = json_object_new_array(), *a, *p;
	int r;

	if ((r = smg_qmp_call(q, "query-migrate-capabilities", NULL, -1,
			      SMG_QMP_TIMEOUT_MS, &caps)) != SMG_OK) {
		json_object_put(list);
		return r;
	}
	for (size_t i = 0; json_object_is_type(caps, json_type_array) &&
			   i < json_object_array_length(caps);
	     i++) {
		struct json_object *c = json_object_array_get_idx(caps, i), *n, *st;
		if (json_object_object_get_ex(c, "capability", &n) &&
		    json_object_object_get_ex(c, "state", &st) &&
		    json_object_is_type(n, json_type_string) &&
		    json_object_get_boolean(st) &&
		    strcmp(json_object_get_string(n), "x-ignore-shared") != 0)
			add_cap(list, json_object_get_string(n), false);
	}
	json_object_put(caps);
	add_cap(list, "x-ignore-shared", true);
	a = json_object_new_object();
	json_object_object_add(a, "capabilities", list);
	if ((r = smg_qmp_call(q, "migrate-set-capabilities", a, -1, SMG_QMP_TIMEOUT_MS,
			      NULL)) != SMG_OK)
		return r;
	p = json_object_new_object();
	json_object_object_add(p, "tls-creds", json_object_new_string(""));
	json_object_object_add(p, "tls-hostname", json_object_new_string(""));
	return smg_qmp_call(q, "migrate-set-parameters", p, -1, SMG_QMP_TIMEOUT_MS, NULL);
}

static struct json_object *str_arg(const char *k, const char *v)
{
	struct json_object *a = json_object_new_object();

	json_object_object_add(a, k, json_object_new_string(v));
	return a;
}

static int grow(uint8_t **buf, size_t *cap, size_t need)
{
	uint8_t *n;
	size_t c = *cap ? *cap : STATE_CHUNK * 4;

	while (c < need)
		c *= 2;
	if (c == *cap)
		return SMG_OK;
	if ((n = realloc(*buf, c)) == NULL)
		return SMG_ERR_NOMEM;
	*buf = n;
	*cap = c;
	return SMG_OK;
}

/* Drain the pipe while QEMU writes it and answer QMP meanwhile, until the
 * pipe ends (QEMU closes its end when the migration is over). */
static int collect(struct smg_qmp *q, int rd, int64_t id, uint8_t **out, size_t *len)
{
	uint64_t deadline = smg_now_ms() + STATE_WAIT_MS;
	uint8_t *buf = NULL;
	size_t cap = 0, have = 0;
	bool replied = false, eof = false;
	int r = SMG_OK;

	while (r == SMG_OK && !(eof && replied)) {
		struct pollfd pf[2] = {{.fd = rd, .events = POLLIN},
				       {.fd = smg_qmp_fd(q), .events = POLLIN}};
		if (smg_now_ms() >= deadline) {
			r = SMG_ERR_TIMEOUT;
			break;
		}
		if (poll(pf + eof, 2 - eof, 1000) < 0 && errno != EINTR) {
			r = smg_err_sys(errno);
			break;
		}
		if (!replied && (r = smg_qmp_pump(q, id, &replied, NULL)) != SMG_OK)
			break;
		if (eof || !(pf[0].revents & (POLLIN | POLLHUP | POLLERR)))
			continue;
		if ((r = grow(&buf, &cap, have + STATE_CHUNK)) != SMG_OK)
			break;
		ssize_t n = read(rd, buf + have, STATE_CHUNK);
		if (n < 0 && errno != EINTR && errno != EAGAIN)
			r = smg_err_sys(errno);
		else if (n == 0)
			eof = true;
		else if (n > 0 && (have += (size_t)n) > SMG_QEMU_STATE_RAW_MAX)
			r = SMG_ERR_TOO_LONG;
	}
	if (r != SMG_OK) {
		free(buf);
		return r;
	}
	*out = buf;
	*len = have;
	return SMG_OK;
}

int smg_qemu_state_prepare(struct smg_qmp *q, int *rd)
{
	int p[2], r;

	*rd = -1;
	if (pipe2(p, O_CLOEXEC) != 0)
		return smg_err_sys(errno);
	r = prepare(q);
	if (r == SMG_OK)
		r = smg_qmp_call(q, "getfd", str_arg("fdname", FD_NAME_OUT), p[1],
				 SMG_QMP_TIMEOUT_MS, NULL);
	close(p[1]); /* QEMU holds its own copy now */
	if (r != SMG_OK) {
		close(p[0]);
		return r;
	}
	*rd = p[0];
	return SMG_OK;
}

int smg_qemu_state_save(struct smg_qmp *q, int rd, uint8_t **blob, size_t *len)
{
	char status[32];
	uint8_t *raw = NULL;
	size_t rawlen = 0;
	int r = SMG_OK;
	int64_t id;
	uint64_t t[5];

	*blob = NULL;
	*len = 0;
	t[0] = smg_now_ns();
	if (rd < 0)
		r = smg_qemu_state_prepare(q, &rd);
	t[1] = smg_now_ns();
	if (r == SMG_OK)
		r = smg_qmp_send(q, "migrate", str_arg("uri", "fd:" FD_NAME_OUT), &id);
	if (r == SMG_OK)
		r = collect(q, rd, id, &raw, &rawlen);
	if (rd >= 0)
		close(rd);
	t[2] = smg_now_ns();
	if (r == SMG_OK && (r = smg_qmp_wait_migration(q, STATE_WAIT_MS, status,
						       sizeof(status))) != SMG_OK)
		smg_err("qemu: saving the device state ended '%s'", status);
	t[3] = smg_now_ns();
	if (r == SMG_OK)
		r = smg_qemu_state_encode(raw, rawlen, blob, len);
	t[4] = smg_now_ns();
	if (r == SMG_OK)
		smg_info("qemu: device state %zu bytes (%zu compressed) in %.1f ms "
			 "(setup %.1f, stream %.1f, completed %.1f, zstd %.1f)",
			 rawlen, *len, (double)(t[4] - t[0]) / 1e6,
			 (double)(t[1] - t[0]) / 1e6, (double)(t[2] - t[1]) / 1e6,
			 (double)(t[3] - t[2]) / 1e6, (double)(t[4] - t[3]) / 1e6);
	free(raw);
	return r;
}

/* Write the stream into the pipe while answering QMP, then close it. */
static int feed(struct smg_qmp *q, int wr, int64_t id, const uint8_t *raw, size_t len)
{
	uint64_t deadline = smg_now_ms() + STATE_WAIT_MS;
	size_t off = 0;
	bool replied = false;
	int r = SMG_OK;

	while (r == SMG_OK && (off < len || !replied)) {
		struct pollfd pf[2] = {{.fd = smg_qmp_fd(q), .events = POLLIN},
				       {.fd = wr, .events = POLLOUT}};
		if (smg_now_ms() >= deadline) {
			r = SMG_ERR_TIMEOUT;
			break;
		}
		if (poll(pf, off < len ? 2 : 1, 1000) < 0 && errno != EINTR) {
			r = smg_err_sys(errno);
			break;
		}
		if (!replied && (r = smg_qmp_pump(q, id, &replied, NULL)) != SMG_OK)
			break;
		if (off == len || !(pf[1].revents & (POLLOUT | POLLERR | POLLHUP)))
			continue;
		size_t n = len - off < STATE_CHUNK ? len - off : STATE_CHUNK;
		ssize_t w = send(wr, raw + off, n, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0 && errno != EINTR && errno != EAGAIN)
			r = smg_err_sys(errno);
		else if (w > 0)
			off += (size_t)w;
	}
	return r;
}

int smg_qemu_state_load(struct smg_qmp *q, const uint8_t *raw, size_t len)
{
	char status[32];
	int p[2], r;
	int64_t id;
	uint64_t t0 = smg_now_ns(), t1;

	/* A socket, not a pipe: a QEMU that gives up mid-stream must not kill
	 * us with SIGPIPE (MSG_NOSIGNAL). */
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p) != 0)
		return smg_err_sys(errno);
	r = smg_qmp_call(q, "getfd", str_arg("fdname", FD_NAME_IN), p[0],
			 SMG_QMP_TIMEOUT_MS, NULL);
	close(p[0]);
	if (r == SMG_OK)
		r = smg_qmp_send(q, "migrate-incoming", str_arg("uri", "fd:" FD_NAME_IN),
				 &id);
	if (r == SMG_OK)
		r = feed(q, p[1], id, raw, len);
	shutdown(p[1], SHUT_WR); /* end of stream */
	close(p[1]);
	t1 = smg_now_ns();
	if (r == SMG_OK && (r = smg_qmp_wait_migration(q, STATE_WAIT_MS, status,
						       sizeof(status))) != SMG_OK)
		smg_err("qemu: loading the device state ended '%s' (see the VM's "
			"QEMU log)",
			status);
	if (r == SMG_OK)
		smg_debug("qemu: device state loaded in %.1f ms (stream %.1f, completed "
			  "%.1f)",
			  (double)(smg_now_ns() - t0) / 1e6, (double)(t1 - t0) / 1e6,
			  (double)(smg_now_ns() - t1) / 1e6);
	return r;
}

int smg_qemu_state_encode(const uint8_t *raw, size_t len, uint8_t **blob, size_t *blen)
{
	size_t bound = ZSTD_compressBound(len), n;
	uint8_t *b;

	*blob = NULL;
	*blen = 0;
	if (len > SMG_QEMU_STATE_RAW_MAX)
		return SMG_ERR_TOO_LONG;
	if ((b = malloc(SMG_QEMU_STATE_HDR_LEN + bound)) == NULL)
		return SMG_ERR_NOMEM;
	n = ZSTD_compress(b + SMG_QEMU_STATE_HDR_LEN, bound, raw, len, ZSTD_LEVEL);
	if (ZSTD_isError(n)) {
		smg_err("qemu: zstd: %s", ZSTD_getErrorName(n));
		free(b);
		return SMG_ERR_INTERNAL;
	}
	memcpy(b, SMG_QEMU_STATE_MAGIC, 4);
	b[4] = STATE_VERSION;
	b[5] = CODEC_ZSTD;
	smg_store_be16(b + 6, 0);
	smg_store_be32(b + 8, (uint32_t)len);
	*blob = b;
	*blen = SMG_QEMU_STATE_HDR_LEN + n;
	return SMG_OK;
}

int smg_qemu_state_decode(const uint8_t *blob, size_t len, uint8_t **raw, size_t *rawlen)
{
	struct smg_rd rd;
	const uint8_t *magic, *payload;
	uint8_t version, codec;
	uint16_t resv;
	uint32_t want;
	unsigned long long fsize;
	size_t plen, n;
	uint8_t *out;
	int r;

	*raw = NULL;
	*rawlen = 0;
	smg_rd_init(&rd, blob, len);
	if ((r = smg_rd_ptr(&rd, 4, &magic)) != SMG_OK ||
	    (r = smg_rd_u8(&rd, &version)) || (r = smg_rd_u8(&rd, &codec)) ||
	    (r = smg_rd_u16(&rd, &resv)) || (r = smg_rd_u32(&rd, &want)))
		return r;
	if (memcmp(magic, SMG_QEMU_STATE_MAGIC, 4) != 0 || version != STATE_VERSION ||
	    resv != 0 || (codec != CODEC_RAW && codec != CODEC_ZSTD))
		return SMG_ERR_PROTO;
	/* Cap the allocation before anything is decompressed: a few bytes of
	 * zstd can claim gigabytes. */
	if (want == 0 || want > SMG_QEMU_STATE_RAW_MAX)
		return SMG_ERR_TOO_LONG;
	plen = smg_rd_left(&rd);
	if ((r = smg_rd_ptr(&rd, plen, &payload)) != SMG_OK)
		return r;
	if (codec == CODEC_RAW && plen != want)
		return SMG_ERR_PROTO;
	if (codec == CODEC_ZSTD) {
		/* one frame, of exactly the announced size, nothing after it */
		fsize = ZSTD_getFrameContentSize(payload, plen);
		if (fsize != want || ZSTD_findFrameCompressedSize(payload, plen) != plen)
			return SMG_ERR_PROTO;
	}
	if ((out = malloc(want)) == NULL)
		return SMG_ERR_NOMEM;
	if (codec == CODEC_RAW) {
		memcpy(out, payload, want);
	} else {
		n = ZSTD_decompress(out, want, payload, plen);
		if (ZSTD_isError(n) || n != want) {
			free(out);
			return SMG_ERR_PROTO;
		}
	}
	*raw = out;
	*rawlen = want;
	return SMG_OK;
}
