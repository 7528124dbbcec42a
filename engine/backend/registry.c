/* Which hypervisor backends this build carries. */
#include <stddef.h>

#include "engine/engine.h"

static const char *const backend_names[] = {
    "sim",
#if SMG_HAVE_XEN
    "xen",
#endif
    NULL,
};

const char *const *smg_engine_backend_names(void)
{
	return backend_names;
}
