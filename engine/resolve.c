/* Settling an in-doubt migration (DESIGN §7): the source asks the
 * destination in a fresh session what became of the migration id; the
 * destination answers from its durable records and, if its receiver died
 * between recording COMMIT and resuming, resumes the VM first.
 *
 * Both ends are pinned to each other. The source records with COMMIT the
 * name and key of the host that took it, and only a session with that key
 * may settle the domain: an answer from any other host, however honest, is
 * an error, never "discarded" (that would run the VM twice). The
 * destination records with each migration the key of the source whose PLAN
 * started it, and answers only that source: another enrolled host can
 * neither learn the outcome nor discard a migration in flight. */
#include <sodium.h>
#include <string.h>

#include "audit/audit.h"
#include "base/base.h"
#include "engine/internal.h"
#include "proto/proto.h"
#include "secmig.pb-c.h"
#include "transport/transport.h"

#define KEY_HEX 64

static bool name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
}

static bool addr_char(char c)
{
	return c > 0x20 && c < 0x7f && c != ',';
}

int smg_commit_peer_format(const struct smg_commit_peer *p, char *out, size_t n)
{
	char key[KEY_HEX + 1];
	struct smg_commit_peer back;
	int w;

	smg_hex_encode(p->key, sizeof(p->key), key);
	w = snprintf(out, n, "%s,%s,%s", p->name, key, p->addr);
	if (w < 0 || (size_t)w >= n || w > SMG_COMMIT_PEER_MAX)
		return SMG_ERR_TOO_LONG;
	/* what we write must read back: no separator inside a field */
	return smg_commit_peer_parse(out, (size_t)w, &back);
}

/* NAME,KEYHEX,ADDR: name 1..64 of [A-Za-z0-9._-], 64 lower-case hex digits,
 * an address of printable characters without ',' or space. */
int smg_commit_peer_parse(const char *tok, size_t len, struct smg_commit_peer *out)
{
	size_t i = 0, name_len, addr_at;

	memset(out, 0, sizeof(*out));
	if (len == 0 || len > SMG_COMMIT_PEER_MAX)
		return SMG_ERR_CONFIG;
	while (i < len && name_char(tok[i]))
		i++;
	name_len = i;
	if (name_len == 0 || name_len >= SMG_ENGINE_PEER_MAX || i >= len || tok[i] != ',')
		return SMG_ERR_CONFIG;
	i++;
	if (len - i < KEY_HEX + 2 || tok[i + KEY_HEX] != ',' ||
	    smg_hex_decode(tok + i, KEY_HEX, out->key, sizeof(out->key)) != SMG_OK)
		goto bad;
	addr_at = i + KEY_HEX + 1;
	for (i = addr_at; i < len; i++)
		if (!addr_char(tok[i]))
			goto bad;
	memcpy(out->name, tok, name_len);
	memcpy(out->addr, tok + addr_at, len - addr_at);
	return SMG_OK;
bad:
	memset(out, 0, sizeof(*out));
	return SMG_ERR_CONFIG;
}

/* The querier owns the answer only if the record names its key. */
static bool is_source(const struct smg_outcome_rec *rec, struct smg_session *s)
{
	return sodium_memcmp(rec->source_key, smg_session_peer_key(s),
			     sizeof(rec->source_key)) == 0;
}

static Smg__ResolveOutcome decide(const struct smg_recv_opts *o, struct smg_session *s,
				  const char *id, bool *refused)
{
	struct smg_outcome_rec rec;
	struct smg_backend *be;
	unsigned nd;
	int r;

	*refused = false;
	if ((r = smg_outcome_read(o->state_dir, id, &rec)) != SMG_OK)
		return SMG__RESOLVE_OUTCOME__RESOLVE_PENDING;
	if (rec.state == SMG_OUTCOME_NONE) {
		/* No PLAN with this id ever came: make "never here" final and
		 * the querier its owner, so a late PLAN or COMMIT cannot win. */
		rec.state = SMG_OUTCOME_DISCARDED;
		snprintf(rec.domain, sizeof(rec.domain), "-");
		snprintf(rec.source, sizeof(rec.source), "%s", smg_session_peer_name(s));
		memcpy(rec.source_key, smg_session_peer_key(s), sizeof(rec.source_key));
		r = smg_outcome_create(o->state_dir, id, &rec);
		if (r == SMG_OK)
			return SMG__RESOLVE_OUTCOME__RESOLVE_DISCARDED;
		return r == SMG_ERR_EXISTS ? decide(o, s, id, refused)
					   : SMG__RESOLVE_OUTCOME__RESOLVE_PENDING;
	}
	if (!is_source(&rec, s)) {
		*refused = true;
		return SMG__RESOLVE_OUTCOME__RESOLVE_UNKNOWN;
	}
	switch (rec.state) {
	case SMG_OUTCOME_RECEIVING:
		/* Began but never committed; a COMMIT racing with us loses. */
		r = smg_outcome_transition(o->state_dir, id, SMG_OUTCOME_RECEIVING,
					   SMG_OUTCOME_DISCARDED);
		if (r == SMG_OK)
			return SMG__RESOLVE_OUTCOME__RESOLVE_DISCARDED;
		return r == SMG_ERR_EXISTS ? decide(o, s, id, refused)
					   : SMG__RESOLVE_OUTCOME__RESOLVE_PENDING;
	case SMG_OUTCOME_COMMITTED:
		/* storage: its disks were kept (COMMITTED); their I/O goes first. */
		if (smg_engine_disks_resume_committed(o->disk_socket ? o->disk_socket
								     : o->state_dir,
						      rec.domain, &nd) != SMG_OK)
			return SMG__RESOLVE_OUTCOME__RESOLVE_PENDING;
		if (smg_backend_open(o->backend, &o->bopts, &be) != SMG_OK)
			return SMG__RESOLVE_OUTCOME__RESOLVE_PENDING;
		r = be->ops->resume_committed(be, rec.domain);
		smg_backend_close(be);
		if (r != SMG_OK ||
		    smg_outcome_transition(o->state_dir, id, SMG_OUTCOME_COMMITTED,
					   SMG_OUTCOME_RESUMED) != SMG_OK)
			return SMG__RESOLVE_OUTCOME__RESOLVE_PENDING;
		smg_info("resolve: resumed committed domain '%s' (%s)", rec.domain, id);
		return SMG__RESOLVE_OUTCOME__RESOLVE_RUNNING;
	case SMG_OUTCOME_RESUMED:
		return SMG__RESOLVE_OUTCOME__RESOLVE_RUNNING;
	case SMG_OUTCOME_DISCARDED:
	case SMG_OUTCOME_QUARANTINED:
		return SMG__RESOLVE_OUTCOME__RESOLVE_DISCARDED;
	case SMG_OUTCOME_NONE:
		break;
	}
	return SMG__RESOLVE_OUTCOME__RESOLVE_PENDING;
}

static int refuse(struct smg_session *s, const char *id)
{
	Smg__Abort a = SMG__ABORT__INIT;
	int r;

	smg_peer_log(SMG_LOG_WARN,
		     "resolve %s: refused to '%s': not the source of that migration", id,
		     smg_session_peer_name(s));
	a.reason = SMG__ABORT_REASON__ABORT_NOT_SOURCE;
	a.detail = (char *)"this host is not the source of that migration";
	a.error = SMG_ERR_AUTH;
	r = smg_chan_send_msg(s, 0, SMG_FT_ABORT, &a.base);
	return r ?: smg_chan_flush(s, 0);
}

int smg_engine_answer_resolve(struct smg_session *s, const struct smg_recv_opts *o,
			      const struct smg_frame *query)
{
	Smg__ResolveAnswer ans = SMG__RESOLVE_ANSWER__INIT;
	uint8_t sig[SMG_AUDIT_SIG_LEN];
	ProtobufCMessage *m;
	bool refused;
	int r;

	if ((r = smg_frame_unpack(query, &smg__resolve_query__descriptor, &m)) != SMG_OK)
		return r;
	Smg__ResolveQuery *q = (Smg__ResolveQuery *)m;
	if (!smg_migration_id_valid(q->migration_id)) {
		smg_frame_msg_free(m);
		return SMG_ERR_PROTO;
	}
	ans.migration_id = q->migration_id;
	ans.outcome = decide(o, s, q->migration_id, &refused);
	if (refused) {
		r = refuse(s, q->migration_id);
		smg_frame_msg_free(m);
		return r ?: SMG_ERR_AUTH;
	}
	smg_info("resolve %s from '%s': answered %d", q->migration_id,
		 smg_session_peer_name(s), ans.outcome);
	if ((r = smg_audit_resolve_sign(s, &ans, sig)) == SMG_OK)
		r = smg_chan_send_msg(s, 0, SMG_FT_RESOLVE_ANSWER, &ans.base);
	r = r ?: smg_chan_flush(s, 0);
	smg_frame_msg_free(m);
	return r;
}

/* The answer, or the destination's refusal (ABORT). */
static int read_answer(struct smg_session *s, const char *id, Smg__ResolveOutcome *oc)
{
	struct smg_frame f;
	ProtobufCMessage *m;
	int r;

	if ((r = smg_chan_recv(s, 0, &f)) != SMG_OK)
		return r;
	if (f.type == SMG_FT_ABORT) {
		char why[SMG_ENGINE_DETAIL_MAX];
		if ((r = smg_frame_unpack(&f, &smg__abort__descriptor, &m)) != SMG_OK)
			return r;
		smg_peer_text(((Smg__Abort *)m)->detail, why, sizeof(why));
		r = smg_reason_to_err(((Smg__Abort *)m)->reason, SMG_ERR_ABORTED);
		smg_err("resolve: destination '%s' refused: %s", smg_session_peer_name(s),
			why);
		smg_frame_msg_free(m);
		return r;
	}
	if (f.type != SMG_FT_RESOLVE_ANSWER)
		return SMG_ERR_STATE;
	if ((r = smg_frame_unpack(&f, &smg__resolve_answer__descriptor, &m)) != SMG_OK)
		return r;
	*oc = ((Smg__ResolveAnswer *)m)->outcome;
	r = strcmp(((Smg__ResolveAnswer *)m)->migration_id, id) != 0 ? SMG_ERR_PROTO
								     : SMG_OK;
	/* Evidence before action: only a signed answer settles anything. */
	if (r == SMG_OK)
		r = smg_audit_resolve_check(s, (Smg__ResolveAnswer *)m);
	smg_frame_msg_free(m);
	return r;
}

int smg_engine_resolve(struct smg_session *s, struct smg_backend *be, const char *domain,
		       const char *id, const struct smg_commit_peer *p,
		       enum smg_resolve_outcome *out)
{
	Smg__ResolveQuery q = SMG__RESOLVE_QUERY__INIT;
	Smg__ResolveOutcome oc = SMG__RESOLVE_OUTCOME__RESOLVE_PENDING;
	int r;

	*out = 0;
	/* Only the host that took the COMMIT knows the truth. */
	if (strcmp(smg_session_peer_name(s), p->name) != 0 ||
	    sodium_memcmp(smg_session_peer_key(s), p->key, sizeof(p->key)) != 0) {
		smg_err("resolve: the host that answered ('%s') is not the one that took "
			"the COMMIT ('%s' with the key recorded then); nothing settled",
			smg_session_peer_name(s), p->name);
		return SMG_ERR_AUTH;
	}
	q.migration_id = (char *)id;
	if ((r = smg_chan_send_msg(s, 0, SMG_FT_RESOLVE_QUERY, &q.base)) != SMG_OK ||
	    (r = read_answer(s, id, &oc)) != SMG_OK)
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
