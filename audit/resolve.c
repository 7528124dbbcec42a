/* resolve: the destination's RESOLVE answer is evidence too. It signs it
 * with its host key over the answer's session transcript, the migration id
 * and the outcome; the source destroys or resumes its paused copy only when
 * that signature is by the destination's enrolled key. The transcript
 * binds the answer to this fresh session: an answer recorded earlier
 * cannot be replayed into another resolve. */
#include <string.h>

#include <sodium.h>

#include "audit/internal.h"
#include "base/base.h"
#include "transport/transport.h"

#define RESOLVE_CTX	"secmig resolve answer v1"
#define RESOLVE_ID_MAX	64
#define RESOLVE_MSG_MAX (sizeof(RESOLVE_CTX) + SMG_AUDIT_DIGEST_LEN + RESOLVE_ID_MAX + 5)

/* ctx NUL || transcript || id NUL || outcome (big-endian u32) */
static int resolve_msg(const struct smg_session *s, const char *id, uint32_t outcome,
		       uint8_t *msg, size_t *len)
{
	size_t n = 0, idl = id != NULL ? strlen(id) : RESOLVE_ID_MAX;

	if (idl >= RESOLVE_ID_MAX)
		return SMG_ERR_PROTO;
	memcpy(msg, RESOLVE_CTX, sizeof(RESOLVE_CTX));
	n += sizeof(RESOLVE_CTX);
	memcpy(msg + n, smg_session_transcript(s), SMG_AUDIT_DIGEST_LEN);
	n += SMG_AUDIT_DIGEST_LEN;
	memcpy(msg + n, id, idl + 1);
	n += idl + 1;
	smg_store_be32(msg + n, outcome);
	*len = n + 4;
	return SMG_OK;
}

int smg_audit_resolve_sign(const struct smg_session *s, Smg__ResolveAnswer *ans,
			   uint8_t sig[SMG_AUDIT_SIG_LEN])
{
	uint8_t msg[RESOLVE_MSG_MAX];
	size_t len;
	int r;

	if ((r = resolve_msg(s, ans->migration_id, (uint32_t)ans->outcome, msg, &len)) !=
		SMG_OK ||
	    (r = smg_session_sign(s, msg, len, sig)) != SMG_OK)
		return r;
	if (audit_fault_on("audit_resolve_sig_flip"))
		sig[5] ^= 0x04;
	if (audit_fault_on("audit_resolve_outcome_swap")) /* signed one, says another */
		ans->outcome = ans->outcome == SMG__RESOLVE_OUTCOME__RESOLVE_RUNNING
				   ? SMG__RESOLVE_OUTCOME__RESOLVE_DISCARDED
				   : SMG__RESOLVE_OUTCOME__RESOLVE_RUNNING;
	if (!audit_fault_on("audit_resolve_unsigned"))
		ans->signature = (ProtobufCBinaryData){SMG_AUDIT_SIG_LEN, sig};
	return SMG_OK;
}

int smg_audit_resolve_check(const struct smg_session *s, const Smg__ResolveAnswer *ans)
{
	uint8_t msg[RESOLVE_MSG_MAX];
	const char *why = NULL;
	size_t len;

	if (ans->signature.len == 0)
		why = "the answer is unsigned";
	else if (ans->signature.len != SMG_AUDIT_SIG_LEN ||
		 resolve_msg(s, ans->migration_id, (uint32_t)ans->outcome, msg, &len) !=
		     SMG_OK ||
		 crypto_sign_verify_detached(ans->signature.data, msg, len,
					     smg_session_peer_key(s)) != 0)
		why = "its signature is not the destination's enrolled key over this "
		      "answer and session";
	if (why == NULL)
		return SMG_OK;
	smg_peer_log(SMG_LOG_ERROR, "resolve answer from '%s' rejected: %s",
		     smg_session_peer_name(s), why);
	return SMG_ERR_INTEGRITY;
}
