/* The qemu device-state blob comes from the sender: header, size cap,
 * zstd frame checks and decompression. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "engine/backend/qemu_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *raw;
	size_t len;

	if (smg_qemu_state_decode(data, size, &raw, &len) == 0)
		free(raw);
	return 0;
}
