/* The xen destination's allow-list over the sender's libxl config
 * (engine/backend/libxl_vet.c). Private to engine/backend and its tests. */
#ifndef SMG_LIBXL_VET_H
#define SMG_LIBXL_VET_H

#include <stddef.h>

#include "engine/backend.h"

#define SMG_LIBXL_JSON_MAX (48 * 1024) /* = SMG_XC_JSON_MAX */

/* json: the sender's libxl_domain_config as JSON (untrusted); b: this
 * host's build (disks, NICs, definition). On success *out is a new JSON
 * text (malloc'd) that names only this host's resources and name the
 * domain's name (c_info.name, [A-Za-z0-9._-]); SMG_ERR_POLICY with the
 * refused field in why otherwise. */
int smg_libxl_vet(const char *json, size_t len, const struct smg_vm_build *b, char **out,
		  char *name, size_t name_cap, char *why, size_t why_len);

#endif
