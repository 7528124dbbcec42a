/* libFuzzer harness: the encrypted frame decoder (length checks, secretstream open,
 * type/tag rules, then the payload's bulk or control parser) over a stream of wire frames
 * under a fixed key. */
#include <stddef.h>
#include <stdint.h>

#include "transport/internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;

	if (!ready)
		ready = sodium_init() >= 0;
	smg_frame_decode_stream(data, size);
	return 0;
}
