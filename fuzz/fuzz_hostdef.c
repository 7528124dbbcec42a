/* libFuzzer harness: the host definitions file (docs/hostdef.md), which
 * configuration management may assemble from remote inputs, and the
 * matchers the receiver runs on it with fuzzer-chosen names and addresses. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "base/base.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smg_hostdef *d = NULL;
	char err[256];
	static int quiet;

	if (!quiet) {
		smg_log_set_stream(fopen("/dev/null", "w"));
		quiet = 1;
	}
	if (smg_hostdef_parse((const char *)data, size, "fuzz", &d, err, sizeof(err)) !=
	    0)
		return 0;
	/* The last 22 bytes, if any, pick a domain, a MAC and an address. */
	if (size >= 22) {
		const uint8_t *t = data + size - 22;
		char dom[9];
		for (int i = 0; i < 8; i++)
			dom[i] = (char)("abcdefghijklmnopqrstuvwxyz0123456789-._*?"[t[i] %
										    42]);
		dom[8] = '\0';
		const struct smg_hostdef_vm *vm = smg_hostdef_find(d, dom, "peer");
		for (unsigned n = 0; vm != NULL && n < vm->n_nics; n++) {
			(void)smg_hostdef_nic_mac_ok(&vm->nics[n], t + 8);
			(void)smg_hostdef_nic_ip_ok(&vm->nics[n], 4, t + 6);
			(void)smg_hostdef_nic_ip_ok(&vm->nics[n], 6, t + 6);
		}
	}
	smg_hostdef_free(d);
	return 0;
}
