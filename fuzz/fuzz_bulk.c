/* libFuzzer harness: the bulk frame header parsers (PAGES, ZERO_PAGES,
 * DISK_CHUNK). The first byte picks parser and page size. */
#include <stddef.h>
#include <stdint.h>

#include "proto/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smg_pages_hdr ph;
	struct smg_disk_chunk_hdr dh;
	uint32_t ps;
	uint64_t sum = 0;

	if (size < 1)
		return 0;
	ps = 4096u << (data[0] >> 4 & 3);
	switch (data[0] & 3) {
	case 0:
	case 1:
		if (smg_pages_parse(data + 1, size - 1, ps, data[0] & 1, &ph) == 0)
			for (uint32_t i = 0; i < ph.count; i++)
				sum += smg_pages_pfn(&ph, i) +
				       (ph.data != NULL ? ph.data[(size_t)i * ps + ps - 1]
							: 0);
		break;
	default:
		if (smg_disk_chunk_parse(data + 1, size - 1, &dh) == 0)
			sum += dh.data[dh.length - 1];
		break;
	}
	return (int)(sum & 0);
}
