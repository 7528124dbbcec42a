/* libFuzzer harness: a control-socket request line (secmig status, metrics, cancel,
 * tune; cli/ctl_proto.c). The socket is root-only, the parser trusts it
 * no more for that. Round trip: what parses formats and parses again to
 * the same request. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "cli/migrate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smg_ctl_req r, again;
	char line[SMG_CTL_REQ_MAX + 2];
	int n;

	if (smg_ctl_parse_request(data, size, &r) != SMG_OK)
		return 0;
	if ((n = smg_ctl_format_request(&r, line, sizeof(line))) < 0 ||
	    smg_ctl_parse_request((const uint8_t *)line, (size_t)n, &again) != SMG_OK ||
	    memcmp(&r, &again, sizeof(r)) != 0)
		abort();
	return 0;
}
