/* tpm_ext: attest/'s TPM-bound mode as the transport's handshake extension.
 * The glue lives here, where the hook is wired, so that attest/ knows
 * nothing of the transport and the transport nothing of the TPM. Each
 * handshake gets its own attest state from begin (its ephemeral P-256 key)
 * and loses it at end, whatever way the handshake ends. */
#include <string.h>

#include "attest/attest.h"
#include "base/base.h"
#include "cli/host_tpm.h"
#include "transport/transport.h"

static int ext_begin(void *self, void **ctx)
{
	return smg_attest_hs_new(self, (struct smg_attest_hs **)ctx);
}

static void ext_end(void *self, void *ctx)
{
	smg_attest_hs_free(ctx);
}

static int ext_hello(void *self, void *ctx, bool initiator, uint8_t *out, size_t cap,
		     size_t *len)
{
	return smg_attest_hello(ctx, out, cap, len);
}

static int ext_secret(void *self, void *ctx, bool initiator, const struct smg_peer *peer,
		      const uint8_t *our_ext, size_t our_len, const uint8_t *peer_ext,
		      size_t peer_len, uint8_t *out, size_t cap, size_t *len)
{
	int r;

	*len = 0;
	if (cap < SMG_ATTEST_SECRET_LEN)
		return SMG_ERR_NOSPACE;
	r = smg_attest_secret(ctx, initiator, peer != NULL ? peer->name : NULL, our_ext,
			      our_len, peer_ext, peer_len, out);
	if (r == 0)
		*len = SMG_ATTEST_SECRET_LEN;
	return r;
}

static int ext_evidence(void *self, void *ctx, bool initiator,
			const uint8_t th[SMG_TRANSCRIPT_LEN], uint8_t *out, size_t cap,
			size_t *len)
{
	return smg_attest_evidence(self, initiator, th, SMG_TRANSCRIPT_LEN, out, cap,
				   len);
}

static int ext_verify(void *self, void *ctx, bool initiator, const struct smg_peer *peer,
		      const uint8_t th[SMG_TRANSCRIPT_LEN], const uint8_t *ev, size_t len)
{
	return smg_attest_verify(self, initiator, peer != NULL ? peer->name : NULL, th,
				 SMG_TRANSCRIPT_LEN, ev, len);
}

void smg_cli_tpm_ext(struct smg_attest *a, struct smg_handshake_ext *ext)
{
	memset(ext, 0, sizeof(*ext));
	ext->self = a;
	ext->name = "tpm";
	ext->capability = SMG_CAP_TPM;
	ext->begin = ext_begin;
	ext->end = ext_end;
	ext->hello_ext = ext_hello;
	ext->extra_secret = ext_secret;
	ext->evidence = ext_evidence;
	ext->verify = ext_verify;
}
