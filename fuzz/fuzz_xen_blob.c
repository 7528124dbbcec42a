/* The xen backend's parsers of peer bytes: the config blob from the plan
 * (smg_xen_config_parse) and the vCPU/device state blob
 * (smg_xs_parse_records with the state record set). The first byte picks
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
	else
		smg_xs_parse_records(data + 1, size - 1, SMG_XS_STATE_ALLOWED, NULL,
				     NULL);
#else
	(void)data;
	(void)size;
#endif
	return 0;
}
