/* libFuzzer: swtpm control-channel replies (GET_STATEBLOB header) and the
 * vTPM state wire form a destination receives. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "attest/attest.h"
#include "base/base.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smg_vtpm_state st;
	uint32_t res, fl, tot, ch;

	if (size < 1)
		return 0;
	if (data[0] & 1) {
		smg_vtpm_parse_getstate_hdr(data + 1, size - 1, &res, &fl, &tot, &ch);
	} else if (smg_vtpm_state_decode(data + 1, size - 1, &st) == 0) {
		uint8_t *buf = NULL;
		size_t len = 0;
		/* what decodes re-encodes to the same bytes */
		if (smg_vtpm_state_encode(&st, &buf, &len) == 0 &&
		    (len != size - 1 || memcmp(buf, data + 1, len) != 0))
			abort();
		free(buf);
		smg_vtpm_state_free(&st);
	}
	return 0;
}
