/* The PAGES / ZERO_PAGES packer and parser (proto/bulk.c), table by table:
 * what a sender packs at every page size and count parses back to the same
 * round, pfns and bytes; the frame cap holds exactly smg_pages_per_frame
 * pages; lies about the count, short and long payloads, bad page sizes are
 * refused with the error the spec names (docs/protocol.md "Bulk payloads"). */
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "check.h"
#include "proto/proto.h"

static uint8_t buf[SMG_FRAME_PAYLOAD_MAX + 64];

static const struct {
	uint32_t page_size, count, round;
} packs[] = {
    {4096, 1, 0},   {4096, 2, 7},  {4096, 255, 1}, {8192, 3, 2},
    {16384, 63, 3}, {65536, 1, 9}, {65536, 15, 4}, {4096, 0, 5}, /* max */
};

static void round_trip(void)
{
	for (size_t c = 0; c < SMG_ARRAY_LEN(packs); c++) {
		uint32_t ps = packs[c].page_size;
		uint32_t n = packs[c].count ? packs[c].count : smg_pages_per_frame(ps);
		uint64_t *pfns = calloc(n, sizeof(*pfns));
		struct smg_pages_hdr h;
		size_t len;

		if (pfns == NULL)
			abort();
		for (uint32_t i = 0; i < n; i++) {
			pfns[i] = (uint64_t)i * 0x10001 + ((uint64_t)c << 40);
			memset(smg_pages_data(buf, ps, i), (int)(i * 7 + c), ps);
		}
		len = smg_pages_put_pfns(buf, packs[c].round, ps, pfns, n);
		CHECK(len <= SMG_FRAME_PAYLOAD_MAX);
		CHECK_EQ(len, SMG_PAGES_HDR_LEN + (size_t)n * (ps + 8));
		CHECK_EQ(smg_pages_parse(buf, len, ps, false, &h), SMG_OK);
		CHECK_EQ(h.round, packs[c].round);
		CHECK_EQ(h.count, n);
		for (uint32_t i = 0; i < n && h.count == n; i++) {
			CHECK(smg_pages_pfn(&h, i) == pfns[i]);
			CHECK_EQ(h.data[(size_t)i * ps + ps - 1], (uint8_t)(i * 7 + c));
		}
		/* one byte short or long: the count is a lie about the size */
		CHECK_EQ(smg_pages_parse(buf, len - 1, ps, false, &h), SMG_ERR_TRUNCATED);
		CHECK_EQ(smg_pages_parse(buf, len + 1, ps, false, &h), SMG_ERR_TRAILING);
		/* the same bytes under another page size do not parse as pages */
		CHECK(smg_pages_parse(buf, len, ps == 4096 ? 8192 : 4096, false, &h) !=
		      0);
		if (check_failures)
			fprintf(stderr, "  pack case %zu\n", c);
		free(pfns);
	}
}

static const struct {
	uint32_t page_size;
	uint32_t per_frame;
} caps[] = {
    /* (1 MiB - 8) / (page + 8): a full frame never exceeds the cap */
    {4096, 255}, {8192, 127}, {16384, 63}, {32768, 31},
    {65536, 15}, {2048, 0},   {6000, 0},   {131072, 0},
};

static const struct {
	uint32_t round, count;
	size_t len; /* payload length to claim */
	bool zero;
	int err;
} lies[] = {
    {0, 0, 8, false, SMG_ERR_PROTO},		  /* count 0 */
    {0, 0, 8, true, SMG_ERR_PROTO},		  /* count 0, zero pages */
    {0, 1, 8, true, SMG_ERR_TRUNCATED},		  /* no pfn */
    {0, 1, 16, true, SMG_OK},			  /* one zero page */
    {0, 2, 24, true, SMG_OK},			  /* two */
    {0, 2, 25, true, SMG_ERR_TRAILING},		  /* a byte more */
    {0, 0xffffffff, 16, true, SMG_ERR_TRUNCATED}, /* a count that would wrap */
    {0, 0x20000000, 16, false, SMG_ERR_TRUNCATED},
    {0, 1, 4, false, SMG_ERR_TRUNCATED}, /* no room for the header */
};

static void table(void)
{
	struct smg_pages_hdr h;

	for (size_t i = 0; i < SMG_ARRAY_LEN(caps); i++) {
		CHECK_EQ(smg_pages_per_frame(caps[i].page_size), caps[i].per_frame);
		if (caps[i].per_frame == 0)
			CHECK_EQ(smg_pages_parse(buf, 64, caps[i].page_size, false, &h),
				 SMG_ERR_INVAL);
	}
	for (size_t i = 0; i < SMG_ARRAY_LEN(lies); i++) {
		memset(buf, 0, 64);
		smg_pages_put_hdr(buf, lies[i].round, lies[i].count);
		CHECK_EQ(smg_pages_parse(buf, lies[i].len, 4096, lies[i].zero, &h),
			 lies[i].err);
		if (check_failures)
			fprintf(stderr, "  lie case %zu\n", i);
	}
}

int main(void)
{
	round_trip();
	table();
	return check_result("proto_pages");
}
