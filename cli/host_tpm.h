/* TPM mode for the migration subcommands: the host policy (--policy FILE),
 * the host TPM (the policy's tcti or --tcti) and the attest handshake
 * extension wired into the session options. */
#ifndef SMG_CLI_HOST_TPM_H
#define SMG_CLI_HOST_TPM_H

#include <stdbool.h>

#include "attest/attest.h"
#include "transport/transport.h"

struct smg_cli_tpm {
	struct smg_policy *policy; /* NULL: no --policy */
	struct smg_tpm *tpm;
	struct smg_attest *att;
	struct smg_handshake_ext ext;
	bool tpm_mode;
};

/* policy NULL: software-key mode (logged), no ACL or placement checks.
 * Otherwise load it; unless it says "mode software" (the logged opt-in),
 * open the TPM (tcti overrides the policy's tcti line), build the attest
 * extension and set so->ext; so->name defaults to the policy's host.
 * Returns SMG_ERR_CONFIG (bad policy, no tcti) or SMG_ERR_TPM. */
int smg_cli_tpm_load(struct smg_cli_tpm *t, const char *policy, const char *tcti,
		     struct smg_session_opts *so);
void smg_cli_tpm_free(struct smg_cli_tpm *t);
/* The transport's handshake extension (capability SMG_CAP_TPM) over a's
 * TPM-bound mode, for smg_session_opts.ext (cli/tpm_ext.c). a must outlive
 * every handshake that uses ext. */
void smg_cli_tpm_ext(struct smg_attest *a, struct smg_handshake_ext *ext);

#endif
