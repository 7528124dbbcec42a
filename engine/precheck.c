/* The pre-check (`secmig precheck`, libvirt's Begin/Prepare without the
 * commitment): the source sends the plan it would send as PRECHECK on a
 * fresh, fully authenticated session; the destination runs the checks a
 * PLAN meets (plan_check.c's definitions, the policy's ACL, the ticket, the
 * capacity ledger, its backend) and answers each verdict in
 * PRECHECK_RESULT. Nothing is acted on: no capacity reserved, no ticket
 * used up, no domain, outcome record or disk created, on either host; the
 * source's VM is only looked at (docs/protocol.md "Pre-check"). */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attest/attest.h"
#include "audit/audit.h"
#include "base/base.h"
#include "engine/internal.h"
#include "proto/proto.h"
#include "secmig.pb-c.h"
#include "transport/transport.h"

/* ---- both sides ---------------------------------------------------------- */

static struct smg_precheck_item *add(struct smg_precheck *pc, const char *name,
				     bool remote, int err, const char *detail)
{
	struct smg_precheck_item *it;

	if (pc->n >= SMG_PRECHECK_ITEMS_MAX)
		return NULL;
	it = &pc->v[pc->n++];
	memset(it, 0, sizeof(*it));
	snprintf(it->name, sizeof(it->name), "%s", name);
	it->remote = remote;
	it->ok = err == SMG_OK;
	it->err = err;
	snprintf(it->detail, sizeof(it->detail), "%s", it->ok ? "" : detail);
	return it;
}

/* ---- destination --------------------------------------------------------- */

/* Each check a PLAN would meet, in the same order, none of them acting. */
static void dest_checks(struct smg_session *s, const struct smg_recv_opts *o,
			const Smg__Plan *p, struct smg_precheck *pc)
{
	const char *peer = smg_session_peer_name(s);
	uint8_t hash[SMG_DIGEST_LEN];
	struct smg_backend *be = NULL;
	struct smg_audit_mig am;
	struct smg_vm_build *b = NULL;
	uint64_t disk_total = 0;
	char why[SMG_ENGINE_DETAIL_MAX] = "";
	int r;

	smg_engine_hash(p->domain_config.data, p->domain_config.len, hash);
	if (!smg_migration_id_valid(p->migration_id) ||
	    !smg_name_ok(p->domain_name, SMG_DOMAIN_NAME_MAX) ||
	    p->config_hash.len != SMG_DIGEST_LEN ||
	    sodium_memcmp(p->config_hash.data, hash, SMG_DIGEST_LEN) != 0) {
		add(pc, "plan", true, SMG_ERR_PROTO,
		    "malformed plan (migration id, domain name or config hash)");
		return; /* nothing below may read its fields */
	}
	add(pc, "plan", true, SMG_OK, "");
	if (strcmp(p->backend, o->backend) != 0) {
		char theirs[32];
		smg_peer_text(p->backend, theirs, sizeof(theirs));
		snprintf(why, sizeof(why), "this host runs backend '%s', not '%s'",
			 o->backend, theirs);
		r = SMG_ERR_NO_BACKEND;
	} else if ((r = smg_backend_open(o->backend, &o->bopts, &be)) != SMG_OK) {
		snprintf(why, sizeof(why), "backend '%s' does not answer on this host",
			 o->backend);
		r = SMG_ERR_NO_BACKEND;
	}
	smg_backend_close(be);
	add(pc, "backend", true, r, why);
	r = o->policy == NULL
		? SMG_OK
		: smg_policy_check_migration(o->policy, SMG_POLICY_AS_RECEIVER, peer,
					     p->domain_name, NULL, 0, why, sizeof(why));
	add(pc, "policy", true, r, why);
	/* admit checks the replay cache; only smg_audit_spend, which a
	 * pre-check never calls, writes it */
	smg_audit_mig_init(&am, false);
	r = smg_audit_admit(o->audit, &am, s, p->domain_name, p->ticket.data,
			    p->ticket.len, why, sizeof(why));
	add(pc, "ticket", true, r, why);
	if (o->defs == NULL) {
		add(pc, "definitions", true, SMG_ERR_POLICY,
		    "this receiver has no VM definitions (recv --defs)");
		return;
	}
	if ((b = calloc(1, sizeof(*b))) == NULL) {
		add(pc, "definitions", true, SMG_ERR_NOMEM, "out of memory");
		return;
	}
	r = smg_plan_check(p, o->defs, peer, o->defs->storage, b, &disk_total);
	for (unsigned i = 0; r == SMG_OK && o->net != NULL && i < b->n_nics; i++)
		if (strcmp(b->bridge[i], o->net->bridge) != 0) {
			snprintf(b->why, sizeof(b->why),
				 "nic: its definition names a bridge this receiver does "
				 "not manage (--net-bridge)");
			r = SMG_ERR_POLICY;
		}
	add(pc, "definitions", true, r, b->why);
	free(b);
	if (r != SMG_OK)
		return; /* the disk figure is only known for a plan that fits */
	why[0] = '\0';
	r = o->capacity == NULL ? SMG_OK
				: smg_capacity_check(o->capacity, peer, p->memory_bytes,
						     disk_total, why, sizeof(why));
	/* capacity refusals are POLICY inside the ledger (a plan refusal);
	 * a precheck names them for what a migration would exit with. */
	add(pc, "capacity", true, r == SMG_ERR_POLICY ? SMG_ERR_CAPACITY : r, why);
}

int smg_engine_answer_precheck(struct smg_session *s, const struct smg_recv_opts *o,
			       const struct smg_frame *f)
{
	Smg__PrecheckResult res = SMG__PRECHECK_RESULT__INIT;
	Smg__PrecheckItem items[SMG_PRECHECK_ITEMS_MAX], *ip[SMG_PRECHECK_ITEMS_MAX];
	struct smg_precheck *pc;
	ProtobufCMessage *m;
	unsigned failed = 0;
	int r;

	if ((r = smg_frame_unpack(f, &smg__plan__descriptor, &m)) != SMG_OK)
		return r;
	if ((pc = calloc(1, sizeof(*pc))) == NULL) {
		smg_frame_msg_free(m);
		return SMG_ERR_NOMEM;
	}
	dest_checks(s, o, (const Smg__Plan *)m, pc);
	for (unsigned i = 0; i < pc->n; i++) {
		smg__precheck_item__init(&items[i]);
		items[i].name = pc->v[i].name;
		items[i].ok = pc->v[i].ok;
		items[i].code = pc->v[i].ok ? 0 : smg_reason_from_err(pc->v[i].err);
		items[i].detail = pc->v[i].detail;
		ip[i] = &items[i];
		failed += !pc->v[i].ok;
	}
	res.n_checks = pc->n;
	res.checks = ip;
	res.load_ms = smg_dest_load_ms(o);
	{
		char dom[SMG_DOMAIN_NAME_MAX * 4];
		smg_peer_text(((Smg__Plan *)m)->domain_name, dom, sizeof(dom));
		smg_info("precheck of '%s' from '%s': %u of %u checks would fail", dom,
			 smg_session_peer_name(s), failed, pc->n);
	}
	r = smg_chan_send_msg(s, 0, SMG_FT_PRECHECK_RESULT, &res.base);
	r = r ?: smg_chan_flush(s, 0);
	free(pc);
	smg_frame_msg_free(m);
	return r;
}

/* ---- source -------------------------------------------------------------- */

static void src_checks(struct smg_send *c, struct smg_precheck *pc)
{
	const char *labels[SMG_DOMAIN_LABELS_MAX];
	char why[SMG_ENGINE_DETAIL_MAX] = "";
	struct smg_audit_mig am;
	int r;

	for (unsigned i = 0; i < c->info.n_labels; i++)
		labels[i] = c->info.labels[i];
	r = c->o->policy == NULL
		? SMG_OK
		: smg_policy_check_migration(c->o->policy, SMG_POLICY_AS_SENDER,
					     smg_session_peer_name(c->s), c->info.name,
					     labels, c->info.n_labels, why, sizeof(why));
	add(pc, "policy", false, r, why);
	smg_audit_mig_init(&am, true);
	r = smg_audit_admit(c->o->audit, &am, c->s, c->info.name, c->o->ticket,
			    c->o->ticket_len, why, sizeof(why));
	add(pc, "ticket", false, r, why);
}

/* The destination's verdicts, or its refusal (ABORT: busy, no longer
 * enrolled). Item texts are the peer's: sanitized. */
static int read_result(struct smg_send *c, struct smg_precheck *pc)
{
	struct smg_frame f;
	ProtobufCMessage *m;
	char why[SMG_ENGINE_DETAIL_MAX];
	int r;

	if ((r = smg_chan_recv(c->s, 0, &f)) != SMG_OK)
		return r;
	if (f.type == SMG_FT_ABORT) {
		if ((r = smg_frame_unpack(&f, &smg__abort__descriptor, &m)) != SMG_OK)
			return r;
		Smg__Abort *a = (Smg__Abort *)m;
		smg_peer_text(a->detail, why, sizeof(why));
		r = smg_reason_to_err(a->reason, SMG_ERR_ABORTED);
		add(pc, "session", true, r, why);
		smg_frame_msg_free(m);
		return SMG_OK;
	}
	if (f.type != SMG_FT_PRECHECK_RESULT) {
		smg_peer_log(SMG_LOG_ERROR, "frame 0x%02x where PRECHECK_RESULT was due",
			     f.type);
		return SMG_ERR_STATE;
	}
	if ((r = smg_frame_unpack(&f, &smg__precheck_result__descriptor, &m)) != SMG_OK)
		return r;
	Smg__PrecheckResult *res = (Smg__PrecheckResult *)m;
	pc->load_ms = res->load_ms;
	for (size_t i = 0; i < res->n_checks && i < SMG_PRECHECK_ITEMS_MAX; i++) {
		const Smg__PrecheckItem *it = res->checks[i];
		char name[SMG_PRECHECK_NAME_MAX];
		smg_peer_text(it->name, name, sizeof(name));
		smg_peer_text(it->detail, why, sizeof(why));
		/* a failure the peer sent without a reason still fails */
		add(pc, name, true,
		    it->ok ? SMG_OK : smg_reason_to_err(it->code, SMG_ERR_ABORTED), why);
	}
	if (res->n_checks > SMG_PRECHECK_ITEMS_MAX || res->n_checks == 0)
		r = SMG_ERR_PROTO; /* a peer that lists nothing checked nothing */
	smg_frame_msg_free(m);
	return r;
}

int smg_engine_send_precheck(struct smg_send *c, struct smg_session *s,
			     struct smg_precheck *pc)
{
	int r;

	c->s = s;
	src_checks(c, pc);
	if ((r = smg_src_send_plan(c, SMG_FT_PRECHECK)) != SMG_OK ||
	    (r = smg_chan_flush(s, 0)) != SMG_OK || (r = read_result(c, pc)) != SMG_OK) {
		c->s = NULL;
		return r;
	}
	c->s = NULL;
	for (unsigned i = 0; i < pc->n; i++)
		if (!pc->v[i].ok)
			return pc->v[i].err;
	return SMG_OK;
}
