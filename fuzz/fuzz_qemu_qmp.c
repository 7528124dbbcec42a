/* One line from QEMU's QMP socket: a guest that took over its QEMU
 * controls these bytes. */
#include <stddef.h>
#include <stdint.h>

#include "engine/backend/qemu_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smg_qmp_msg m;

	if (smg_qmp_parse((const char *)data, size, &m) == 0)
		smg_qmp_msg_free(&m);
	return 0;
}
