/* libFuzzer harness: the plaintext handshake frame splitter (length cap
 * before buffering) feeding each frame to its message parser. */
#include <stddef.h>
#include <stdint.h>

#include "transport/internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *body;
	size_t blen, used;
	uint8_t type;

	while (smg_hs_frame_get(data, size, &type, &body, &blen, &used) == 0) {
		if (type == SMG_FT_HELLO)
			smg_hs_parse_hello(body, blen);
		else if (type == SMG_FT_AUTH)
			smg_hs_parse_auth(body, blen);
		else if (type == SMG_FT_JOIN)
			smg_hs_parse_join(body, blen);
		data += used;
		size -= used;
	}
	return 0;
}
