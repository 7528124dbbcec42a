/* libFuzzer harness: the JOIN message parser of a data channel. */
#include <stddef.h>
#include <stdint.h>

#include "transport/internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;

	if (!ready)
		ready = sodium_init() >= 0;
	smg_hs_parse_join(data, size);
	return 0;
}
