/* libFuzzer harness: the HELLO handshake message parser (bounded protobuf-c unpack +
 * field checks). */
#include <stddef.h>
#include <stdint.h>

#include "transport/internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;

	if (!ready)
		ready = sodium_init() >= 0;
	smg_hs_parse_hello(data, size);
	return 0;
}
