#include <string.h>

#include "base/base.h"

void smg_wr_init(struct smg_wr *wr, void *buf, size_t cap)
{
	wr->buf = buf;
	wr->cap = buf != NULL ? cap : 0;
	wr->off = 0;
}

int smg_wr_reserve(struct smg_wr *wr, size_t n, uint8_t **p)
{
	if (n > wr->cap - wr->off)
		return SMG_ERR_NOSPACE;
	*p = wr->buf + wr->off;
	wr->off += n;
	return SMG_OK;
}

int smg_wr_bytes(struct smg_wr *wr, const void *src, size_t n)
{
	uint8_t *p;
	int r;

	if ((r = smg_wr_reserve(wr, n, &p)) != 0)
		return r;
	if (n > 0)
		memcpy(p, src, n);
	return SMG_OK;
}

int smg_wr_u8(struct smg_wr *wr, uint8_t v)
{
	return smg_wr_bytes(wr, &v, 1);
}

int smg_wr_u16(struct smg_wr *wr, uint16_t v)
{
	uint8_t *p;
	int r;

	if ((r = smg_wr_reserve(wr, 2, &p)) != 0)
		return r;
	smg_store_be16(p, v);
	return SMG_OK;
}

int smg_wr_u32(struct smg_wr *wr, uint32_t v)
{
	uint8_t *p;
	int r;

	if ((r = smg_wr_reserve(wr, 4, &p)) != 0)
		return r;
	smg_store_be32(p, v);
	return SMG_OK;
}

int smg_wr_u64(struct smg_wr *wr, uint64_t v)
{
	uint8_t *p;
	int r;

	if ((r = smg_wr_reserve(wr, 8, &p)) != 0)
		return r;
	smg_store_be64(p, v);
	return SMG_OK;
}

static int wr_string(struct smg_wr *wr, size_t prefix, const void *src, size_t n,
		     size_t max)
{
	size_t save = wr->off;
	int r;

	if (n > max || (prefix == 2 && n > UINT16_MAX) || (prefix == 4 && n > UINT32_MAX))
		return SMG_ERR_TOO_LONG;
	r = prefix == 2 ? smg_wr_u16(wr, (uint16_t)n) : smg_wr_u32(wr, (uint32_t)n);
	if (r == 0)
		r = smg_wr_bytes(wr, src, n);
	if (r != 0)
		wr->off = save;
	return r;
}

int smg_wr_string16(struct smg_wr *wr, const void *p, size_t n, size_t max)
{
	return wr_string(wr, 2, p, n, max);
}

int smg_wr_string32(struct smg_wr *wr, const void *p, size_t n, size_t max)
{
	return wr_string(wr, 4, p, n, max);
}
