/* Settling an in-doubt migration (DESIGN §7): the source asks the
 * destination in a fresh session what became of the migration id; the
 * destination answers from its durable records and, if its receiver died
 * between recording COMMIT and resuming, resumes the VM first. */
#include <string.h>

#include "audit/audit.h"
#include "base/base.h"
#include "engine/internal.h"
#include "proto/proto.h"
#include "secmig.pb-c.h"
#include "transport/transport.h"

static Smg__ResolveOutcome decide(const struct smg_recv_opts *o, const char *id)
{
	char domain[SMG_DOMAIN_NAME_MAX + 8];
	enum smg_outcome oc;
	struct smg_backend *be;
	unsigned nd;
	int r;

	if ((r = smg_outcome_read(o->state_dir, id, &oc, domain, sizeof(domain))) !=
	    SMG_OK)
		return SMG__RESOLVE_OUTCOME__RESOLVE_PENDING;
	switch (oc) {
	case SMG_OUTCOME_NONE:
		/* Never committed here: make that final, so a COMMIT still in
		 * flight from a half-dead session can no longer win. */
		r = smg_outcome_create(o->state_dir, id, SMG_OUTCOME_DISCARDED, "-");
		if (r == SMG_OK)
			return SMG__RESOLVE_OUTCOME__RESOLVE_DISCARDED;
		return r == SMG_ERR_EXISTS ? decide(o, id)
					   : SMG__RESOLVE_OUTCOME__RESOLVE_PENDING;
	case SMG_OUTCOME_RECEIVING:
		/* Began but never committed; a COMMIT racing with us loses. */
		r = smg_outcome_transition(o->state_dir, id, SMG_OUTCOME_RECEIVING,
					   SMG_OUTCOME_DISCARDED, domain);
		if (r == SMG_OK)
			return SMG__RESOLVE_OUTCOME__RESOLVE_DISCARDED;
		return r == SMG_ERR_EXISTS ? decide(o, id)
					   : SMG__RESOLVE_OUTCOME__RESOLVE_PENDING;
	case SMG_OUTCOME_COMMITTED:
		/* storage: its disks were kept (COMMITTED); their I/O goes first. */
		if (smg_engine_disks_resume_committed(o->disk_socket ? o->disk_socket
								     : o->state_dir,
						      domain, &nd) != SMG_OK)
			return SMG__RESOLVE_OUTCOME__RESOLVE_PENDING;
		if (smg_backend_open(o->backend, &o->bopts, &be) != SMG_OK)
			return SMG__RESOLVE_OUTCOME__RESOLVE_PENDING;
		r = be->ops->resume_committed(be, domain);
		smg_backend_close(be);
		if (r != SMG_OK ||
		    smg_outcome_transition(o->state_dir, id, SMG_OUTCOME_COMMITTED,
					   SMG_OUTCOME_RESUMED, domain) != SMG_OK)
			return SMG__RESOLVE_OUTCOME__RESOLVE_PENDING;
		smg_info("resolve: resumed committed domain '%s' (%s)", domain, id);
		return SMG__RESOLVE_OUTCOME__RESOLVE_RUNNING;
	case SMG_OUTCOME_RESUMED:
		return SMG__RESOLVE_OUTCOME__RESOLVE_RUNNING;
	case SMG_OUTCOME_DISCARDED:
		return SMG__RESOLVE_OUTCOME__RESOLVE_DISCARDED;
	}
	return SMG__RESOLVE_OUTCOME__RESOLVE_PENDING;
}

int smg_engine_answer_resolve(struct smg_session *s, const struct smg_recv_opts *o,
			      const struct smg_frame *query)
{
	Smg__ResolveAnswer ans = SMG__RESOLVE_ANSWER__INIT;
	uint8_t sig[SMG_AUDIT_SIG_LEN];
	ProtobufCMessage *m;
	int r;

	if ((r = smg_frame_unpack(query, &smg__resolve_query__descriptor, &m)) != SMG_OK)
		return r;
	Smg__ResolveQuery *q = (Smg__ResolveQuery *)m;
	if (!smg_migration_id_valid(q->migration_id)) {
		smg_frame_msg_free(m);
		return SMG_ERR_PROTO;
	}
	ans.migration_id = q->migration_id;
	ans.outcome = decide(o, q->migration_id);
	smg_info("resolve %s: answered %d", q->migration_id, ans.outcome);
	if ((r = smg_audit_resolve_sign(s, &ans, sig)) == SMG_OK)
		r = smg_chan_send_msg(s, 0, SMG_FT_RESOLVE_ANSWER, &ans.base);
	r = r ?: smg_chan_flush(s, 0);
	smg_frame_msg_free(m);
	return r;
}

int smg_engine_resolve(struct smg_session *s, struct smg_backend *be, const char *domain,
		       const char *id, enum smg_resolve_outcome *out)
{
	Smg__ResolveQuery q = SMG__RESOLVE_QUERY__INIT;
	struct smg_frame f;
	ProtobufCMessage *m;
	Smg__ResolveOutcome oc;
	int r;

	*out = 0;
	q.migration_id = (char *)id;
	if ((r = smg_chan_send_msg(s, 0, SMG_FT_RESOLVE_QUERY, &q.base)) != SMG_OK ||
	    (r = smg_chan_recv(s, 0, &f)) != SMG_OK)
		return r;
	if (f.type != SMG_FT_RESOLVE_ANSWER)
		return SMG_ERR_STATE;
	if ((r = smg_frame_unpack(&f, &smg__resolve_answer__descriptor, &m)) != SMG_OK)
		return r;
	oc = ((Smg__ResolveAnswer *)m)->outcome;
	r = strcmp(((Smg__ResolveAnswer *)m)->migration_id, id) != 0 ? SMG_ERR_PROTO
								     : SMG_OK;
	/* Evidence before action: only a signed answer settles anything. */
	if (r == SMG_OK)
		r = smg_audit_resolve_check(s, (Smg__ResolveAnswer *)m);
	smg_frame_msg_free(m);
	if (r != SMG_OK)
		return r;
	switch (oc) {
	case SMG__RESOLVE_OUTCOME__RESOLVE_RUNNING:
		if ((r = be->ops->domain_settle(be, domain, true)) == SMG_OK)
			*out = SMG_RESOLVED_RUNNING;
		return r;
	case SMG__RESOLVE_OUTCOME__RESOLVE_DISCARDED:
	case SMG__RESOLVE_OUTCOME__RESOLVE_UNKNOWN:
		if ((r = be->ops->domain_settle(be, domain, false)) == SMG_OK)
			*out = SMG_RESOLVED_DISCARDED;
		return r;
	default:
		return SMG_ERR_IN_DOUBT; /* destination holds it but could not resume */
	}
}
