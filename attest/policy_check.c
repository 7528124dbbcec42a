/* policy_check: plan-time access control and placement. The receiver only
 * takes the domains an enrolled peer may send it; a VM that carries allowed
 * placement labels (e.g. region=eu-west) never lands on a host outside
 * them — the privacy dimension: no silent move into another jurisdiction. */
#include <fnmatch.h>
#include <stdio.h>
#include <string.h>

#include "attest/attest.h"
#include "base/base.h"

static bool has_label(char (*labels)[SMG_POLICY_LABEL_MAX], size_t n, const char *kv)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(labels[i], kv))
			return true;
	return false;
}

/* For every key the VM names, the host must carry one of its values. */
static int placement(const char *host, char (*labels)[SMG_POLICY_LABEL_MAX],
		     size_t nlabels, const char *const *vm, size_t nvm, char *why,
		     size_t why_len)
{
	for (size_t i = 0; i < nvm; i++) {
		const char *eq = strchr(vm[i], '=');
		size_t klen;
		bool ok = false;

		if (eq == NULL || eq == vm[i]) {
			snprintf(why, why_len, "VM placement label '%s' is not key=value",
				 vm[i]);
			return SMG_ERR_POLICY;
		}
		klen = (size_t)(eq - vm[i]);
		for (size_t j = 0; j < nvm && !ok; j++)
			if (!strncmp(vm[j], vm[i], klen + 1) &&
			    has_label(labels, nlabels, vm[j]))
				ok = true;
		if (!ok) {
			snprintf(why, why_len,
				 "placement: destination '%s' does not carry an allowed "
				 "'%.*s' label (the VM allows %s...)",
				 host, (int)klen, vm[i], vm[i]);
			return SMG_ERR_POLICY;
		}
	}
	return SMG_OK;
}

int smg_policy_check_migration(const struct smg_policy *p, enum smg_policy_role role,
			       const char *peer, const char *domain,
			       const char *const *vm_labels, size_t n_vm_labels,
			       char *why, size_t why_len)
{
	const struct smg_policy_peer *pe = smg_policy_find_peer(p, peer);
	char dummy[8];
	int r;

	if (why == NULL || why_len == 0) {
		why = dummy;
		why_len = sizeof(dummy);
	}
	why[0] = '\0';
	if (pe == NULL) {
		snprintf(why, why_len, "peer '%s' is not enrolled in this host's policy",
			 peer != NULL ? peer : "?");
		r = SMG_ERR_UNKNOWN_PEER;
		goto out;
	}
	if (role == SMG_POLICY_AS_RECEIVER) {
		bool allowed = false;

		for (size_t i = 0; i < pe->ndomains && !allowed; i++)
			allowed = fnmatch(pe->domains[i], domain, 0) == 0;
		if (!pe->may_send) {
			snprintf(why, why_len, "ACL: peer '%s' may not send to this host",
				 peer);
			r = SMG_ERR_POLICY;
			goto out;
		}
		if (!allowed) {
			snprintf(why, why_len, "ACL: peer '%s' may not send domain '%s'",
				 peer, domain);
			r = SMG_ERR_POLICY;
			goto out;
		}
		r = placement(p->host, (char(*)[SMG_POLICY_LABEL_MAX])p->labels,
			      p->nlabels, vm_labels, n_vm_labels, why, why_len);
	} else {
		r = placement(pe->name, (char(*)[SMG_POLICY_LABEL_MAX])pe->labels,
			      pe->nlabels, vm_labels, n_vm_labels, why, why_len);
	}
out:
	if (r != SMG_OK)
		smg_err("policy: migration of '%s' %s '%s' denied: %s",
			domain ? domain : "?",
			role == SMG_POLICY_AS_RECEIVER ? "from" : "to", peer ? peer : "?",
			why);
	return r;
}
