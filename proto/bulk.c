/* Bulk frame headers: PAGES and ZERO_PAGES (DISK_CHUNK carries storage's
 * record frame, storage/record.c). The payload of a bulk
 * frame is attacker-controlled until the engine checks it against the plan,
 * so every count and length is checked against the bytes actually present. */
#include "base/base.h"
#include "proto/proto.h"

static bool page_size_ok(uint32_t ps)
{
	return ps >= SMG_PAGE_SIZE_MIN && ps <= SMG_PAGE_SIZE_MAX && (ps & (ps - 1)) == 0;
}

uint32_t smg_pages_per_frame(uint32_t page_size)
{
	if (!page_size_ok(page_size))
		return 0;
	return (uint32_t)((SMG_FRAME_PAYLOAD_MAX - SMG_PAGES_HDR_LEN) / (8 + page_size));
}

void smg_pages_put_hdr(uint8_t *buf, uint32_t round, uint32_t count)
{
	smg_store_be32(buf, round);
	smg_store_be32(buf + 4, count);
}

size_t smg_pages_put_pfns(uint8_t *payload, uint32_t round, uint32_t page_size,
			  const uint64_t *pfns, uint32_t count)
{
	uint8_t *t = smg_pages_data(payload, page_size, count);

	smg_pages_put_hdr(payload, round, count);
	for (uint32_t i = 0; i < count; i++)
		smg_store_be64(t + (size_t)i * 8, pfns[i]);
	return SMG_PAGES_HDR_LEN + (size_t)count * (page_size + 8);
}

int smg_pages_parse(const uint8_t *p, size_t len, uint32_t page_size, bool zero,
		    struct smg_pages_hdr *out)
{
	struct smg_rd rd;
	uint32_t round, count;
	size_t per;
	int r;

	if (!page_size_ok(page_size))
		return SMG_ERR_INVAL;
	smg_rd_init(&rd, p, len);
	if ((r = smg_rd_u32(&rd, &round)) != 0 || (r = smg_rd_u32(&rd, &count)) != 0)
		return r;
	/* A count that claims more pages than the frame holds is a lie about
	 * the size; check it before multiplying anything. */
	per = zero ? 8 : 8 + (size_t)page_size;
	if (count == 0 || count > smg_rd_left(&rd) / per)
		return count == 0 ? SMG_ERR_PROTO : SMG_ERR_TRUNCATED;
	if (smg_rd_left(&rd) != count * per)
		return SMG_ERR_TRAILING;
	out->round = round;
	out->count = count;
	out->data = zero ? NULL : p + SMG_PAGES_HDR_LEN;
	out->pfns = p + SMG_PAGES_HDR_LEN + (zero ? 0 : (size_t)count * page_size);
	return SMG_OK;
}
