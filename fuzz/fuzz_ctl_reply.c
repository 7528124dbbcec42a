/* libFuzzer harness: a control-socket reply (JSON via json-c, bounded
 * depth and size; cli/ctl_proto.c, the metrics object in cli/metrics.c),
 * as secmig status/cancel/tune/metrics read it from a migration process.
 * Oracle: accepted metrics re-encode (smg_metrics_json) and parse back to
 * the same counters. */
#include <json-c/json.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "cli/migrate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct smg_ctl_reply r; /* large: not on the stack */
	struct smg_metrics back;
	json_object *j;

	if (smg_ctl_parse_reply((const char *)data, size, &r) != SMG_OK)
		return 0;
	if (r.n > SMG_CTL_MIGRATIONS_MAX)
		abort();
	if (r.has_metrics) {
		j = smg_metrics_json(&r.metrics);
		if (smg_metrics_from_json(j, &back) != SMG_OK ||
		    memcmp(&back, &r.metrics, sizeof(back)) != 0)
			abort();
		json_object_put(j);
	}
	return 0;
}
