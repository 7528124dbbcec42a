/* libFuzzer: a migration ticket, as it arrives in a PLAN (binary,
 * smg_ticket_decode) and as a file (the armoured text, smg_ticket_dearmor),
 * and the used-tickets cache file (audit_replay_scan). The first byte
 * picks which. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "audit/internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t key[SMG_AUDIT_KEY_LEN] = {1};
	uint8_t buf[SMG_TICKET_MAX], d[SMG_AUDIT_DIGEST_LEN];
	struct smg_ticket t;
	size_t len;

	if (size < 1)
		return 0;
	if (data[0] == 2) {
		char *keep = malloc(size);
		size_t kl;
		bool seen;
		if (keep != NULL)
			audit_replay_scan((const char *)data + 1, size - 1, key,
					  1700000000, keep, &kl, &seen);
		free(keep);
		return 0;
	}
	if (data[0] & 1) {
		if (smg_ticket_dearmor((const char *)data + 1, size - 1, buf, sizeof(buf),
				       &len) != SMG_OK)
			return 0;
		data = buf;
		size = len;
	} else {
		data++;
		size--;
	}
	if (smg_ticket_decode(data, size, &t) == SMG_OK) {
		smg_ticket_sig_ok(data, size, &t, key);
		smg_ticket_digest(data, size, d);
	}
	return 0;
}
