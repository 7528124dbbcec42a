/* libFuzzer harness: the COMMIT record's peer token (NAME,KEYHEX,ADDR) as
 * resolve reads it back from the backend's durable record (a file). What
 * parses formats back to the same token. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "engine/engine.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smg_commit_peer p, q;
	char tok[SMG_COMMIT_PEER_MAX + 1];

	if (smg_commit_peer_parse((const char *)data, size, &p) != SMG_OK)
		return 0;
	if (smg_commit_peer_format(&p, tok, sizeof(tok)) != SMG_OK ||
	    smg_commit_peer_parse(tok, strlen(tok), &q) != SMG_OK ||
	    memcmp(&p, &q, sizeof(p)) != 0)
		abort();
	return 0;
}
