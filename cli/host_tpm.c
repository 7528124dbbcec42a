/* host_tpm: --policy / --tcti of send, recv and demo -> TPM-bound sessions. */
#include <stdio.h>
#include <string.h>

#include "base/base.h"
#include "cli/host_tpm.h"

int smg_cli_tpm_load(struct smg_cli_tpm *t, const char *policy, const char *tcti,
		     struct smg_session_opts *so)
{
	char err[512];
	int r;

	memset(t, 0, sizeof(*t));
	if (policy == NULL) {
		if (tcti != NULL) {
			fprintf(stderr, "secmig: --tcti needs --policy FILE\n");
			return SMG_ERR_CONFIG;
		}
		smg_info("software-key mode: no --policy given (no TPM binding, no "
			 "attestation, no ACL or placement checks)");
		return SMG_OK;
	}
	if ((r = smg_policy_load(policy, &t->policy, err, sizeof(err))) != SMG_OK) {
		fprintf(stderr, "secmig: %s\n", err[0] != '\0' ? err : smg_strerror(r));
		return SMG_ERR_CONFIG;
	}
	if (so->name == NULL)
		so->name = t->policy->host;
	if (t->policy->software_mode)
		return SMG_OK; /* the loader logged the opt-in */
	if (tcti == NULL)
		tcti = t->policy->tcti;
	if (tcti[0] == '\0') {
		fprintf(
		    stderr,
		    "secmig: %s requires TPM mode but names no TPM: add a 'tcti' line "
		    "or pass --tcti\n",
		    policy);
		smg_cli_tpm_free(t);
		return SMG_ERR_CONFIG;
	}
	if ((r = smg_tpm_open(tcti, &t->tpm)) != SMG_OK) {
		smg_err("TPM mode: cannot open the TPM at '%s': %s", tcti,
			smg_strerror(r));
		smg_cli_tpm_free(t);
		return r == SMG_ERR_CONFIG ? r : SMG_ERR_TPM;
	}
	if ((r = smg_attest_new(t->policy, t->tpm, &t->att)) != SMG_OK) {
		smg_cli_tpm_free(t);
		return r;
	}
	smg_cli_tpm_ext(t->att, &t->ext);
	so->ext = &t->ext;
	t->tpm_mode = true;
	smg_info("TPM mode: sessions bound to the TPM at '%s', PCRs attested", tcti);
	return SMG_OK;
}

void smg_cli_tpm_free(struct smg_cli_tpm *t)
{
	smg_attest_free(t->att);
	smg_tpm_close(t->tpm);
	smg_policy_free(t->policy);
	memset(t, 0, sizeof(*t));
}
