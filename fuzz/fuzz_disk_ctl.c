/* libFuzzer: the disk service's control protocol. The first byte picks the
 * side: even, a request body as the service parses it (every verb's form,
 * names, numbers, payload rules); odd, a reply body as send/recv parse it. */
#include <string.h>

#include "base/base.h"
#include "storage/storage.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smg_dsvc_req q;
	struct smg_dsvc_reply r;

	if (size == 0)
		return 0;
	if (data[0] % 2 == 0) {
		if (smg_dsvc_parse_request(data + 1, size - 1, &q) == 0 &&
		    (q.verb <= 0 || q.verb >= SMG_DSVC_VERB_MAX_ ||
		     (q.name[0] != '\0' && !smg_dsvc_name_valid(q.name, strlen(q.name)))))
			__builtin_trap(); /* accepted something the table cannot say */
	} else {
		(void)smg_dsvc_parse_reply(data + 1, size - 1, &r);
	}
	return 0;
}
