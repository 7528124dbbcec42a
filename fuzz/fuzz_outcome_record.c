/* libFuzzer harness: a destination's durable outcome record
 * (DIR/outcomes/ID: state, domain, source name and key) as resolve and the
 * hand-over read it back (engine/outcome.c). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "base/base.h"
#include "engine/engine.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smg_outcome_rec r;

	if (smg_outcome_parse((const char *)data, size, &r) == SMG_OK &&
	    (r.state == SMG_OUTCOME_NONE || r.source[0] == '\0'))
		abort();
	return 0;
}
