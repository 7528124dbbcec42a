/* The sim backend's own header: what its fuzzers and tests call besides
 * the backend ops (engine/backend.h). The domains it migrates live in a sim
 * host (simhost/simhost.h), which it talks to over the host's socket. */
#ifndef SMG_BACKEND_SIM_H
#define SMG_BACKEND_SIM_H

#include <stddef.h>
#include <stdint.h>

#include "engine/backend.h"
#include "simhost/simhost.h"

/* The destination's own config for an incoming domain: the sender's
 * config (untrusted) is parsed and checked against the build (sizes, NICs,
 * vTPM, disk count), then written anew from the build (this host's disk
 * service names, no trace path). *text is malloc'd. SMG_ERR_POLICY with the reason
 * in build->why. Pure: fuzzed (fuzz_plan). */
int smg_sim_build_config(const uint8_t *config, size_t len, struct smg_vm_build *build,
			 char **text, size_t *tlen);

#endif
