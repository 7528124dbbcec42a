/* libFuzzer harness: every control-message decoder. The first byte picks
 * the frame type; the rest is the payload, unpacked with the type's length
 * cap and the bounded allocator (smg_proto_unpack). */
#include <stddef.h>
#include <stdint.h>

#include "proto/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	ProtobufCMessage *m = NULL;

	if (size < 1)
		return 0;
	if (smg_proto_unpack(data[0], data + 1, size - 1, &m) == 0)
		smg_proto_free(m);
	return 0;
}
