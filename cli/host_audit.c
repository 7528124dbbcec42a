/* host_audit: the audit context of send, recv and demo: DIR/audit for the
 * log, DIR/operators (or --operators FILE) for the enrolled operators, the
 * policy (its hash, the "tickets required" knob, host labels) and, in TPM
 * mode, the attest object whose AK countersigns receipts. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "audit/audit.h"
#include "base/base.h"
#include "cli/host_tpm.h"
#include "cli/migrate.h"

int smg_cli_audit_open(struct smg_audit **out, const char *dir, const char *operators,
		       const struct smg_cli_ident *ci, const struct smg_cli_tpm *tpm,
		       const char *policy_path)
{
	char adir[600], ops[600], host[SMG_PEER_NAME_MAX + 1];
	struct smg_audit_opts o = {.identity = ci->id};
	int r;

	snprintf(adir, sizeof(adir), "%s/audit", dir);
	snprintf(ops, sizeof(ops), "%s/operators", dir);
	if (ci->so.name != NULL) {
		snprintf(host, sizeof(host), "%s", ci->so.name);
	} else if (gethostname(host, sizeof(host)) != 0) {
		snprintf(host, sizeof(host), "localhost");
	}
	host[sizeof(host) - 1] = '\0';
	o.dir = adir;
	o.host = host;
	o.operators_path = operators != NULL ? operators : ops;
	if (tpm != NULL) {
		o.attest = tpm->att;
		o.policy = tpm->policy;
		o.policy_path = tpm->policy != NULL ? policy_path : NULL;
	}
	if (operators != NULL && access(operators, R_OK) != 0) {
		fprintf(stderr, "secmig: --operators %s: cannot read it\n", operators);
		return SMG_ERR_CONFIG;
	}
	if ((r = smg_audit_open(&o, out)) != SMG_OK) {
		if (r != SMG_ERR_CONFIG)
			fprintf(stderr, "secmig: audit log in %s: %s\n", adir,
				smg_strerror(r));
		return r == SMG_ERR_NOT_FOUND ? SMG_ERR_CONFIG : r;
	}
	return SMG_OK;
}
