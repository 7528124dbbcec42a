/* The xen backend's parsers of peer bytes: the config blob from the plan
 * (smg_xen_config_parse) and the vCPU/device state blob with its final
 * frame set (smg_xen_state_parse). The first byte picks
 * which one. Without libxen-dev the backend is not built: nothing to fuzz. */
#include <stddef.h>
#include <stdint.h>

#if SMG_HAVE_XEN
#include "engine/backend/xen_internal.h"
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
#if SMG_HAVE_XEN
	static struct smg_xen_config cfg;

	if (size < 1)
		return 0;
	if (data[0] & 1)
		smg_xen_config_parse(data + 1, size - 1, &cfg);
	else {
		struct smg_xen_state st;

		/* a 4 GiB physmap, as a 128 MiB PVH guest has */
		if (smg_xen_state_parse(data + 1, size - 1, 0xff000, &st) == 0)
			smg_xen_state_free(&st);
	}
#else
	(void)data;
	(void)size;
#endif
	return 0;
}
