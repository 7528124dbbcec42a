/* Which hypervisor backends this build carries, and opening one by name.
 * Each backend file exports one constructor; nothing else of it is visible. */
#include <stddef.h>
#include <string.h>

#include "base/base.h"
#include "engine/backend.h"
#include "engine/engine.h"

typedef int (*backend_open_fn)(const struct smg_backend_opts *opts,
			       struct smg_backend **out);

/* Constructors, one per backend file (engine/backend/<name>.c). */
int smg_backend_sim_open(const struct smg_backend_opts *opts, struct smg_backend **out);
int smg_backend_qemu_open(const struct smg_backend_opts *opts, struct smg_backend **out);
#if SMG_HAVE_XEN
int smg_backend_xen_open(const struct smg_backend_opts *opts, struct smg_backend **out);
#endif

static const struct {
	const char *name;
	backend_open_fn open;
} backends[] = {
    {"sim", smg_backend_sim_open},
    {"qemu", smg_backend_qemu_open},
#if SMG_HAVE_XEN
    {"xen", smg_backend_xen_open},
#endif
};

static const char *const backend_names[] = {
    "sim",
    "qemu",
#if SMG_HAVE_XEN
    "xen",
#endif
    NULL,
};

const char *const *smg_engine_backend_names(void)
{
	return backend_names;
}

int smg_backend_open(const char *name, const struct smg_backend_opts *opts,
		     struct smg_backend **out)
{
	*out = NULL;
	for (size_t i = 0; i < SMG_ARRAY_LEN(backends); i++)
		if (strcmp(backends[i].name, name) == 0 && backends[i].open != NULL)
			return backends[i].open(opts, out);
	smg_err("unknown backend '%s' (see 'secmig version' for the built ones)", name);
	return SMG_ERR_NO_BACKEND;
}

void smg_backend_close(struct smg_backend *be)
{
	if (be != NULL)
		be->ops->close(be);
}
