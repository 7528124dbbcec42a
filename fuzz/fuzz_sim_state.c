/* The device-state blob arrives from the network (DEVICE_STATE): restore
 * any bytes into a small domain without crashing or overrunning it. */
#include <stddef.h>
#include <stdint.h>

#include "simhost/simhost.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct smg_sim_mem m;
	static int ready;
	static const struct smg_sim_config cfg = {
	    .name = "fuzz", .mem_bytes = 1u << 20, .vcpus = 2, .seed = 1};

	if (!ready) {
		if (smg_sim_mem_create(&cfg, false, &m) != 0)
			return 0;
		ready = 1;
	}
	smg_sim_state_restore(&m, data, size);
	return 0;
}
