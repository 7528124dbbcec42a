/* The qemu VM description travels in the migration plan, and a host's own
 * definition file is read from disk: parse any bytes in both modes, and
 * what parses as a description must round-trip through describe. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "engine/backend/qemu_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smg_qemu_vm vm, again;
	char err[256], why[256], *text;
	size_t len;

	smg_qemu_vm_parse((const char *)data, size, SMG_QEMU_DEF_LOCAL, &vm, err,
			  sizeof(err));
	if (smg_qemu_vm_parse((const char *)data, size, SMG_QEMU_DEF_PLAN, &vm, err,
			      sizeof(err)) != 0)
		return 0;
	if (smg_qemu_vm_describe(&vm, &text, &len) != 0)
		return 0;
	if (smg_qemu_vm_parse(text, len, SMG_QEMU_DEF_PLAN, &again, err, sizeof(err)) !=
		0 ||
	    smg_qemu_vm_match(&vm, &again, why, sizeof(why)) != 0)
		__builtin_trap(); /* a description we write must read back equal */
	free(text);
	return 0;
}
