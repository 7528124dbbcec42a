/* The sim domain config travels in the migration plan: parse any bytes. */
#include <stddef.h>
#include <stdint.h>

#include "simhost/simhost.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smg_sim_config cfg;
	char err[256];

	smg_sim_config_parse((const char *)data, size, &cfg, err, sizeof(err));
	return 0;
}
