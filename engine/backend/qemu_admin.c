/* qemu_admin: what `secmig qemu` asks of the QEMU backend besides start,
 * stop and status (qemu.c): a definition file's check and the command line
 * a VM runs with. The CLI reaches them through engine/engine.h, never this
 * backend's header. */
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "engine/backend/qemu_internal.h"
#include "engine/engine.h"

int smg_qemu_def_check(const char *text, size_t len, struct smg_qemu_vm_info *info,
		       char *err, size_t errlen)
{
	struct smg_qemu_vm vm;
	int r;

	memset(info, 0, sizeof(*info));
	if ((r = smg_qemu_vm_parse(text, len, SMG_QEMU_DEF_LOCAL, &vm, err, errlen)) !=
	    SMG_OK)
		return r;
	memcpy(info->name, vm.name, sizeof(info->name));
	info->mem_bytes = vm.mem_bytes;
	info->vcpus = vm.vcpus;
	info->n_nics = vm.n_nics;
	info->n_disks = vm.n_disks;
	info->vtpm = vm.vtpm;
	return SMG_OK;
}

int smg_qemu_cmdline(const char *state_dir, const char *name, char **line)
{
	struct smg_qemu_vm vm;
	char **argv = NULL, *out;
	size_t n = 1, off = 0;
	int r;

	*line = NULL;
	if ((r = smg_qemu_vm_load(state_dir, name, &vm)) != SMG_OK ||
	    (r = smg_qemu_argv(&vm, state_dir, false, &argv)) != SMG_OK)
		return r;
	for (size_t i = 0; argv[i] != NULL; i++)
		n += strlen(argv[i]) + 1;
	if ((out = malloc(n)) == NULL) {
		smg_qemu_argv_free(argv);
		return SMG_ERR_NOMEM;
	}
	for (size_t i = 0; argv[i] != NULL; i++) {
		size_t l = strlen(argv[i]);

		if (i > 0)
			out[off++] = ' ';
		memcpy(out + off, argv[i], l);
		off += l;
	}
	out[off] = '\0';
	smg_qemu_argv_free(argv);
	*line = out;
	return SMG_OK;
}
