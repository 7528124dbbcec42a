/* admit: the plan-time ticket check on either host, before any VM byte:
 * the operator's signature, role, scope and expiry (authz.c); then, once
 * the host's own checks accepted the plan, single use (replay.c): a plan
 * the definitions or the capacity refuse does not spend the ticket. The
 * ticket's digest goes into this attempt's record whether it was admitted
 * or not. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "attest/attest.h"
#include "audit/internal.h"
#include "transport/transport.h"

static size_t label_ptrs(char (*labels)[SMG_POLICY_LABEL_MAX], size_t n, const char **out)
{
	for (size_t i = 0; i < n; i++)
		out[i] = labels[i];
	return n;
}

static int refuse(struct smg_audit_mig *m, int r)
{
	m->stage = "ticket";
	return r;
}

static int replay_refused(struct smg_audit_mig *m, int r, char *why, size_t why_len)
{
	if (r == SMG_ERR_REPLAY)
		snprintf(
		    why, why_len,
		    "ticket: already used on this host (single use; replayed ticket)");
	else
		snprintf(why, why_len, "ticket: cannot check or record its use: %s",
			 smg_strerror(r));
	return refuse(m, SMG_ERR_POLICY);
}

int smg_audit_admit(struct smg_audit *a, struct smg_audit_mig *m,
		    const struct smg_session *s, const char *domain,
		    const uint8_t *ticket, size_t ticket_len, char *why, size_t why_len)
{
	const char *ours[SMG_POLICY_LABELS_MAX], *theirs[SMG_POLICY_LABELS_MAX];
	const struct smg_policy_peer *pe = NULL;
	struct smg_ticket_scope sc = {.domain = domain, .now = (uint64_t)time(NULL)};
	struct smg_ticket t;
	char path[600];
	size_t no = 0, nt = 0;
	int r;

	m->plan_at_ms = audit_wall_ms();
	if (ticket_len == 0) {
		if (a == NULL || !a->require_ticket)
			return SMG_OK;
		snprintf(why, why_len,
			 "ticket: this host's policy requires a migration ticket "
			 "(tickets required) and none was given");
		return refuse(m, SMG_ERR_POLICY);
	}
	smg_ticket_digest(ticket, ticket_len, m->ticket_digest);
	m->has_ticket = true;
	if (a == NULL || a->ops == NULL) {
		snprintf(why, why_len,
			 "ticket: no operators are enrolled on this host, so no ticket "
			 "can be honoured");
		return refuse(m, SMG_ERR_POLICY);
	}
	if (a->policy != NULL) {
		no = label_ptrs((char(*)[SMG_POLICY_LABEL_MAX])a->policy->labels,
				a->policy->nlabels, ours);
		if ((pe = smg_policy_find_peer(a->policy, smg_session_peer_name(s))) !=
		    NULL)
			nt = label_ptrs((char(*)[SMG_POLICY_LABEL_MAX])pe->labels,
					pe->nlabels, theirs);
	}
	sc.src = m->source ? smg_session_our_name(s) : smg_session_peer_name(s);
	sc.dst = m->source ? smg_session_peer_name(s) : smg_session_our_name(s);
	sc.src_labels = m->source ? ours : theirs;
	sc.n_src_labels = m->source ? no : nt;
	sc.dst_labels = m->source ? theirs : ours;
	sc.n_dst_labels = m->source ? nt : no;
	r = smg_ticket_authorize(a->ops, ticket, ticket_len, &sc, &t, why, why_len);
	snprintf(m->operator_name, sizeof(m->operator_name), "%s", t.operator_name);
	if (r != SMG_OK)
		return refuse(m, r);
	/* A replay is refused now, before the plan; the ticket is spent
	 * (recorded, checked again under the lock) by smg_audit_spend. */
	snprintf(path, sizeof(path), "%s/%s", a->dir, AUDIT_REPLAY_NAME);
	if ((r = smg_replay_check(path, m->ticket_digest, sc.now)) != SMG_OK)
		return replay_refused(m, r, why, why_len);
	m->ticket_not_after = t.not_after;
	m->ticket_unspent = true;
	smg_info("ticket of operator '%s' authorizes %s (%s -> %s)", t.operator_name,
		 domain, sc.src, sc.dst);
	return SMG_OK;
}

int smg_audit_spend(struct smg_audit *a, struct smg_audit_mig *m, char *why,
		    size_t why_len)
{
	char path[600];
	int r;

	if (!m->ticket_unspent)
		return SMG_OK;
	m->ticket_unspent = false;
	snprintf(path, sizeof(path), "%s/%s", a->dir, AUDIT_REPLAY_NAME);
	if ((r = smg_replay_use(path, m->ticket_digest, m->ticket_not_after,
				(uint64_t)time(NULL))) == SMG_OK) {
		smg_info("ticket of operator '%s' spent (single use)", m->operator_name);
		return SMG_OK;
	}
	return replay_refused(m, r, why, why_len);
}
