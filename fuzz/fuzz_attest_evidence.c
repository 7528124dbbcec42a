/* libFuzzer: a peer's TPM handshake bytes — the hello extension, quote
 * evidence and the TPMS_ATTEST inside it — and the full verifier. The first
 * byte picks the entry point. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "attest/attest.h"
#include "base/base.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t ak[SMG_P256_POINT_LEN] = {0x04};
	static const uint8_t golden[SMG_PCR_COUNT][SMG_PCR_LEN];
	struct smg_evidence_expect exp = {
	    .peer = "fuzz", .ak_pub = ak, .pcr_mask = 0x81, .golden = golden};
	struct smg_attest_hello h;
	struct smg_quote_attest q;
	struct smg_evidence ev;
	uint8_t qual[32] = {0};

	if (size < 1)
		return 0;
	smg_log_set_level(SMG_LOG_ERROR);
	exp.qual = qual;
	exp.qual_len = sizeof(qual);
	switch (data[0] % 4) {
	case 0:
		smg_attest_hello_decode(data + 1, size - 1, &h);
		break;
	case 1:
		smg_quote_parse_attest(data + 1, size - 1, &q);
		break;
	case 2:
		if (smg_evidence_decode(data + 1, size - 1, &ev) == 0)
			smg_quote_parse_attest(ev.attest, ev.attest_len, &q);
		break;
	default: {
		/* the verifier with the AK the evidence itself names */
		uint8_t own[SMG_P256_POINT_LEN];
		if (smg_evidence_decode(data + 1, size - 1, &ev) == 0) {
			memcpy(own, ev.ak_pub, sizeof(own));
			exp.ak_pub = own;
		}
		smg_evidence_verify(data + 1, size - 1, &exp, NULL, 0);
	}
	}
	return 0;
}
