/* libFuzzer harness: the bulk frame header parser (PAGES, ZERO_PAGES).
 * The first byte picks the kind (bit 0: ZERO_PAGES) and the page size (bits
 * 4-5). DISK_CHUNK's payload is storage's record frame: fuzz_stg_records. */
#include <stddef.h>
#include <stdint.h>

#include "proto/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smg_pages_hdr ph;
	uint32_t ps;
	uint64_t sum = 0;

	if (size < 1)
		return 0;
	ps = 4096u << (data[0] >> 4 & 3);
	if (smg_pages_parse(data + 1, size - 1, ps, data[0] & 1, &ph) == 0)
		for (uint32_t i = 0; i < ph.count; i++)
			sum += smg_pages_pfn(&ph, i) +
			       (ph.data != NULL ? ph.data[(size_t)i * ps + ps - 1] : 0);
	return (int)(sum & 0);
}
