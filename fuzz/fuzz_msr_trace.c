/* libFuzzer: MSR Cambridge trace CSV parser. */
#include "base/base.h"
#include "storage/storage.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smg_trace *t = NULL;

	smg_log_set_level(SMG_LOG_ERROR);
	if (smg_trace_parse(data, size, &t) == 0 && t->n > 0 && t->ops[0].len == 0)
		__builtin_trap(); /* the parser promised len > 0 */
	smg_trace_free(t);
	return 0;
}
