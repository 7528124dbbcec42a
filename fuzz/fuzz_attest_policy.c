/* libFuzzer: the policy file parser (smg_policy_parse) on arbitrary bytes. */
#include <stddef.h>
#include <stdint.h>

#include "attest/attest.h"
#include "base/base.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smg_policy *p = NULL;
	char err[256];
	char why[256];
	const char *labels[] = {"region=eu-west", "tier=gold"};

	smg_log_set_level(SMG_LOG_ERROR);
	if (smg_policy_parse((const char *)data, size, "fuzz", &p, err, sizeof(err)) ==
	    0) {
		for (size_t i = 0; i < p->npeers; i++) {
			smg_policy_check_migration(p, SMG_POLICY_AS_RECEIVER,
						   p->peers[i].name, "web-1", labels, 2,
						   why, sizeof(why));
			smg_policy_check_migration(p, SMG_POLICY_AS_SENDER,
						   p->peers[i].name, "web-1", labels, 2,
						   why, sizeof(why));
		}
		smg_policy_free(p);
	}
	return 0;
}
