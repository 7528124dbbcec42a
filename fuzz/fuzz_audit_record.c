/* libFuzzer: one audit log line (smg_audit_record_parse: the cap, json-c
 * with a depth limit, the base fields, the signature), then the evidence
 * fields a verifier reads from a migration record. */
#include <stddef.h>
#include <stdint.h>

#include "audit/internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smg_audit_record r;
	struct smg_audit_claim c;
	uint8_t d[SMG_AUDIT_DIGEST_LEN], blob[SMG_RECEIPT_MAX];
	struct smg_audit_receipt rc;
	size_t len;

	smg_log_set_level(SMG_LOG_ERROR);
	if (smg_audit_record_parse((const char *)data, size, &r) != SMG_OK)
		return 0;
	if (audit_claim_from_json(r.json, &c))
		smg_audit_claim_digest(&c, d);
	if (audit_json_get_b64v(r.json, "receipt", blob, sizeof(blob), &len))
		smg_audit_receipt_decode(blob, len, &rc);
	audit_outcome_relied(audit_json_get_str(r.json, "outcome"));
	smg_audit_record_free(&r);
	return 0;
}
