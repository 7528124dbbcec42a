/* libFuzzer: the destination's receipt as it arrives in READY and sits in
 * peers' logs (smg_audit_receipt_decode). A receipt that decodes must
 * re-encode to the same bytes: one spelling per receipt, so a signature
 * covers exactly one meaning. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "audit/audit.h"
#include "base/base.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smg_audit_receipt r;
	uint8_t back[SMG_RECEIPT_MAX];
	size_t len;

	if (smg_audit_receipt_decode(data, size, &r) != SMG_OK)
		return 0;
	if (smg_audit_receipt_encode(&r, back, sizeof(back), &len) != SMG_OK ||
	    len != size || memcmp(back, data, size) != 0)
		abort();
	return 0;
}
