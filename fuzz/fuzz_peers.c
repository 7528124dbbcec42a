/* libFuzzer harness: the peers file parser (a file an operator edits, and
 * that configuration management may assemble from remote inputs). */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "base/base.h"
#include "transport/transport.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smg_peers *p = NULL;
	static int quiet;

	if (!quiet) { /* parse errors are logged: keep them off the terminal */
		smg_log_set_stream(fopen("/dev/null", "w"));
		quiet = 1;
	}
	if (smg_peers_parse((const char *)data, size, &p) == 0)
		smg_peers_free(p);
	return 0;
}
