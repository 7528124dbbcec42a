/* Bounded reader: every read checks what is left before it touches a byte,
 * and every length prefix is capped before the caller can allocate. */
#include <string.h>

#include "base/base.h"

void smg_rd_init(struct smg_rd *rd, const void *buf, size_t len)
{
	rd->buf = buf;
	rd->len = buf != NULL ? len : 0;
	rd->off = 0;
}

size_t smg_rd_left(const struct smg_rd *rd)
{
	return rd->len - rd->off;
}

int smg_rd_ptr(struct smg_rd *rd, size_t n, const uint8_t **p)
{
	if (n > smg_rd_left(rd))
		return SMG_ERR_TRUNCATED;
	*p = rd->buf + rd->off;
	rd->off += n;
	return SMG_OK;
}

int smg_rd_skip(struct smg_rd *rd, size_t n)
{
	const uint8_t *p;

	return smg_rd_ptr(rd, n, &p);
}

int smg_rd_bytes(struct smg_rd *rd, void *out, size_t n)
{
	const uint8_t *p;
	int r;

	if ((r = smg_rd_ptr(rd, n, &p)) != 0)
		return r;
	if (n > 0)
		memcpy(out, p, n);
	return SMG_OK;
}

int smg_rd_u8(struct smg_rd *rd, uint8_t *v)
{
	const uint8_t *p;
	int r;

	if ((r = smg_rd_ptr(rd, 1, &p)) != 0)
		return r;
	*v = p[0];
	return SMG_OK;
}

int smg_rd_u16(struct smg_rd *rd, uint16_t *v)
{
	const uint8_t *p;
	int r;

	if ((r = smg_rd_ptr(rd, 2, &p)) != 0)
		return r;
	*v = smg_load_be16(p);
	return SMG_OK;
}

int smg_rd_u32(struct smg_rd *rd, uint32_t *v)
{
	const uint8_t *p;
	int r;

	if ((r = smg_rd_ptr(rd, 4, &p)) != 0)
		return r;
	*v = smg_load_be32(p);
	return SMG_OK;
}

int smg_rd_u64(struct smg_rd *rd, uint64_t *v)
{
	const uint8_t *p;
	int r;

	if ((r = smg_rd_ptr(rd, 8, &p)) != 0)
		return r;
	*v = smg_load_be64(p);
	return SMG_OK;
}

/* The prefix is consumed only when the whole string is there, so a failed
 * read leaves the reader where it was. */
static int rd_string(struct smg_rd *rd, size_t prefix, size_t max, const uint8_t **p,
		     size_t *n)
{
	size_t save = rd->off;
	uint16_t l16 = 0;
	uint32_t l32 = 0;
	size_t len;
	int r;

	r = prefix == 2 ? smg_rd_u16(rd, &l16) : smg_rd_u32(rd, &l32);
	if (r != 0)
		return r;
	len = prefix == 2 ? l16 : l32;
	if (len > max) {
		rd->off = save;
		return SMG_ERR_TOO_LONG;
	}
	if ((r = smg_rd_ptr(rd, len, p)) != 0) {
		rd->off = save;
		return r;
	}
	*n = len;
	return SMG_OK;
}

int smg_rd_string16(struct smg_rd *rd, size_t max, const uint8_t **p, size_t *n)
{
	return rd_string(rd, 2, max, p, n);
}

int smg_rd_string32(struct smg_rd *rd, size_t max, const uint8_t **p, size_t *n)
{
	return rd_string(rd, 4, max, p, n);
}

int smg_rd_end(const struct smg_rd *rd)
{
	return smg_rd_left(rd) == 0 ? SMG_OK : SMG_ERR_TRAILING;
}
