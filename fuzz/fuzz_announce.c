/* libFuzzer: captured frames into the announcement parser (what
 * `smg-nettool capture` reads off the wire). A frame that parses must
 * rebuild to a frame that parses the same. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "engine/engine.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smg_announce_frame f, g;
	uint8_t buf[SMG_ANNOUNCE_FRAME_MAX];
	size_t len;

	if (smg_announce_parse(data, size, &f) != SMG_OK)
		return 0;
	if (smg_announce_build(f.kind, f.mac, f.ip, buf, sizeof(buf), &len) != SMG_OK ||
	    smg_announce_parse(buf, len, &g) != SMG_OK || memcmp(&f, &g, sizeof(f)) != 0)
		abort();
	return 0;
}
