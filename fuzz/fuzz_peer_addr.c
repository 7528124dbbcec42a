/* libFuzzer harness: the addr=HOST[:PORT] option of a peers-file line
 * (cli/addr.c), which `send --to NAME` connects to. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "cli/migrate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char opts[SMG_PEER_OPTS_MAX + 1], host[SMG_CLI_HOST_MAX];
	uint16_t port;
	bool given;

	if (size > SMG_PEER_OPTS_MAX)
		return 0;
	memcpy(opts, data, size); /* options are a C string in struct smg_peer */
	opts[size] = '\0';
	if (smg_cli_peer_addr(opts, host, sizeof(host), &port, &given) == SMG_OK &&
	    (host[0] == '\0' || strlen(host) >= sizeof(host)))
		abort();
	return 0;
}
