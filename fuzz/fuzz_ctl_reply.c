/* libFuzzer harness: a control-socket reply (JSON via json-c, bounded
 * depth and size; cli/ctl_proto.c), as secmig status/cancel/tune read it
 * from a migration process. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "base/base.h"
#include "cli/migrate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct smg_ctl_reply r; /* large: not on the stack */

	if (smg_ctl_parse_reply((const char *)data, size, &r) == SMG_OK &&
	    r.n > SMG_CTL_MIGRATIONS_MAX)
		abort();
	return 0;
}
