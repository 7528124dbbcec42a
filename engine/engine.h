/* The migration engine: source and destination state machines, pre-copy
 * policy, the hypervisor backend interface, integrity and hand-over. */
#ifndef SMG_ENGINE_H
#define SMG_ENGINE_H

/* NULL-terminated list of the backends compiled into this build. */
const char *const *smg_engine_backend_names(void);

#endif
