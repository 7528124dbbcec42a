/* The source state machine (DESIGN §1, §7):
 *   SETUP -> PRECOPY -> STOPCOPY -> HANDOVER -> VERIFIED -> COMMITTED -> DONE
 * with ABORTED reachable from every state before COMMITTED (the VM keeps or
 * resumes running) and IN_DOUBT only from COMMITTED (the paused copy stays).
 * Each state's work ends in an input, and engine/states.c's table says
 * where it leads; a frame from the destination is admitted by the same
 * table before it is parsed.
 *
 * A cancel (signal, `secmig cancel`, a lost output) before COMMIT is an
 * abort like any other, in the same order: ABORT to the peer, the VM running
 * here again, the outcome reported. smg_live_commit() is the point of no
 * return: from there a cancel is refused and the hand-over completes or ends
 * in doubt. */
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "attest/attest.h"
#include "audit/audit.h"
#include "base/base.h"
#include "engine/internal.h"
#include "proto/proto.h"
#include "secmig.pb-c.h"
#include "transport/transport.h"

/* The detail an operator reads: which host, what happened. */
static void set_detail(struct smg_send *c, bool peer, int reason, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void set_detail(struct smg_send *c, bool peer, int reason, const char *fmt, ...)
{
	va_list ap;

	if (c->st->detail[0] != '\0')
		return; /* the first cause is the one to report */
	c->st->peer_failed = peer;
	c->st->reason = reason;
	va_start(ap, fmt);
	vsnprintf(c->st->detail, sizeof(c->st->detail), fmt, ap);
	va_end(ap);
}

/* The peer ended it: its reason becomes our error, so both sides exit with
 * the same code; its text is untrusted and sanitized. */
static int peer_refused(struct smg_send *c, int reason, const char *text, bool plan)
{
	char why[SMG_ENGINE_DETAIL_MAX];

	smg_peer_text(text, why, sizeof(why));
	c->peer_abort = true;
	set_detail(c, true, reason, "destination '%s' %s: %s", c->st->peer,
		   plan ? "refused the plan" : "aborted", why);
	smg_peer_log(SMG_LOG_ERROR, "%s", c->st->detail);
	return smg_reason_to_err(reason, SMG_ERR_ABORTED);
}

/* Next control frame on channel 0, if the state admits it (the one frame
 * the state waits for, of type desc, or ABORT); ABORT from the peer becomes
 * an error. */
static int recv_ctrl(struct smg_send *c, const ProtobufCMessageDescriptor *desc,
		     ProtobufCMessage **out)
{
	enum smg_src_input in;
	enum src_state next;
	struct smg_frame f;
	ProtobufCMessage *m;
	int r;

	*out = NULL;
	if ((r = smg_chan_recv(c->s, 0, &f)) != SMG_OK)
		return r;
	in = smg_src_input_of(f.type);
	if (smg_src_next_state(c->state, in, &next) != SMG_OK) {
		smg_peer_log(SMG_LOG_ERROR, "frame 0x%02x not valid in state %s", f.type,
			     smg_src_state_name(c->state));
		return SMG_ERR_STATE;
	}
	if (in == SRC_IN_ABORT) {
		if ((r = smg_frame_unpack(&f, &smg__abort__descriptor, &m)) != SMG_OK)
			return r;
		Smg__Abort *a = (Smg__Abort *)m;
		r = peer_refused(c, a->reason, a->detail, false);
		smg_frame_msg_free(m);
		return r;
	}
	return smg_frame_unpack(&f, desc, out);
}

/* A data channel ended, or the destination spoke while a round was
 * running: a destination that gives up says ABORT on channel 0 first, then
 * drains until we hang up. Read on to that ABORT so its reason, not the
 * cut, is the outcome; a dead destination ends this read at once (its
 * kernel closed the stream) or under the session's liveness rule. */
static int peer_reason(struct smg_send *c, int err)
{
	struct smg_frame f;
	ProtobufCMessage *m;
	int r;

	if (c->s == NULL || c->peer_abort)
		return err;
	while ((r = smg_chan_recv(c->s, 0, &f)) == SMG_OK || r == SMG_ERR_INTERRUPTED) {
		if (r != SMG_OK)
			continue;
		if (f.type != SMG_FT_ABORT) {
			smg_peer_log(SMG_LOG_ERROR, "frame 0x%02x during a round",
				     f.type);
			return SMG_ERR_STATE;
		}
		if ((r = smg_frame_unpack(&f, &smg__abort__descriptor, &m)) != SMG_OK)
			return r;
		Smg__Abort *a = (Smg__Abort *)m;
		r = peer_refused(c, a->reason, a->detail, false);
		smg_frame_msg_free(m);
		return r;
	}
	if (err == SMG_ERR_CUT || err == SMG_ERR_EOF)
		set_detail(c, true, SMG__ABORT_REASON__ABORT_UNSPECIFIED,
			   "lost the connection to destination '%s': %s", c->st->peer,
			   smg_strerror(err));
	return err == SMG_ERR_ABORTED ? r : err;
}

int smg_src_send_plan(struct smg_send *c, uint8_t type)
{
	Smg__Plan p = SMG__PLAN__INIT;
	Smg__NicSpec nics[SMG_DOMAIN_NICS_MAX], *nicp[SMG_DOMAIN_NICS_MAX];
	ProtobufCBinaryData v4[SMG_DOMAIN_NICS_MAX][SMG_DOMAIN_IPS_MAX];
	ProtobufCBinaryData v6[SMG_DOMAIN_NICS_MAX][SMG_DOMAIN_IPS_MAX];
	Smg__DiskSpec disks[SMG_DOMAIN_DISKS_MAX], *diskp[SMG_DOMAIN_DISKS_MAX];

	p.migration_id = c->st->migration_id;
	p.domain_name = c->info.name;
	p.domain_config =
	    (ProtobufCBinaryData){c->info.config_len, (uint8_t *)c->info.config};
	p.memory_bytes = c->info.pages * c->info.page_size;
	p.page_size = c->info.page_size;
	p.vcpus = c->info.vcpus;
	p.backend = (char *)c->o->backend;
	p.max_downtime_ms = c->pc.max_downtime_ms;
	p.config_hash = (ProtobufCBinaryData){SMG_DIGEST_LEN, c->config_hash};
	p.has_vtpm = c->info.has_vtpm;
	p.ticket = (ProtobufCBinaryData){c->o->ticket_len, (uint8_t *)c->o->ticket};
	/* NICs and disks ride along for the network clean-up and storage
	 * stages (their own modules act on them). */
	for (unsigned i = 0; i < c->info.n_nics; i++) {
		struct smg_nic *n = &c->info.nics[i];
		smg__nic_spec__init(&nics[i]);
		nics[i].index = i;
		nics[i].mac = (ProtobufCBinaryData){6, n->mac};
		for (unsigned k = 0; k < n->n_ipv4; k++)
			v4[i][k] = (ProtobufCBinaryData){4, n->ipv4[k]};
		for (unsigned k = 0; k < n->n_ipv6; k++)
			v6[i][k] = (ProtobufCBinaryData){16, n->ipv6[k]};
		nics[i].n_ipv4 = n->n_ipv4;
		nics[i].ipv4 = v4[i];
		nics[i].n_ipv6 = n->n_ipv6;
		nics[i].ipv6 = v6[i];
		nicp[i] = &nics[i];
	}
	p.n_nics = c->info.n_nics;
	p.nics = nicp;
	for (unsigned i = 0; i < smg_engine_disks_count(c->disks); i++) {
		smg__disk_spec__init(&disks[i]);
		disks[i].index = i;
		disks[i].name = c->info.disks[i].path;
		smg_engine_disks_spec(c->disks, i, &disks[i].size, &disks[i].chunk_size);
		disks[i].format = (char *)"raw";
		diskp[i] = &disks[i];
	}
	p.n_disks = smg_engine_disks_count(c->disks);
	p.disks = diskp;
	p.storage_mode = p.n_disks == 0 ? SMG__STORAGE_MODE__STORAGE_NONE
			 : c->o->storage_mode == SMG_STG_MODE_DBT
			     ? SMG__STORAGE_MODE__STORAGE_DBT
			     : SMG__STORAGE_MODE__STORAGE_WAIO;
	c->st->bytes_sent += protobuf_c_message_get_packed_size(&p.base);
	return smg_chan_send_msg(c->s, 0, type, &p.base);
}

/* Placement (the privacy dimension): the destination must be enrolled in
 * our policy and carry the VM's labels; checked before the plan leaves. */
static int check_policy(struct smg_send *c)
{
	const char *labels[SMG_DOMAIN_LABELS_MAX];
	const char *peer = smg_session_peer_name(c->s);
	int r;

	if (c->o->policy == NULL)
		return SMG_OK;
	for (unsigned i = 0; i < c->info.n_labels; i++)
		labels[i] = c->info.labels[i];
	r = smg_policy_check_migration(c->o->policy, SMG_POLICY_AS_SENDER, peer,
				       c->info.name, labels, c->info.n_labels, c->why,
				       sizeof(c->why));
	if (r == SMG_OK)
		return SMG_OK;
	smg_err("policy refuses to send %s to '%s': %s", c->info.name, peer, c->why);
	set_detail(c, false, SMG__ABORT_REASON__ABORT_POLICY,
		   "source policy refuses to send %s to '%s': %s", c->info.name, peer,
		   c->why);
	return SMG_ERR_POLICY;
}

/* The first round's set: the frames that are the guest's memory (a Xen
 * guest's physmap is mostly holes), or all of them. */
static int first_round_set(struct smg_send *c)
{
	uint64_t n = c->info.pages;
	int r;

	memset(c->pending, 0, c->words * sizeof(uint64_t));
	if (c->be->ops->populated != NULL) {
		if ((r = c->be->ops->populated(c->be, c->pending, &n)) != SMG_OK)
			return r;
	} else {
		for (uint64_t p = 0; p < c->info.pages; p++)
			c->pending[p / 64] |= 1ull << (p % 64);
	}
	c->st->ram_bytes = n * c->info.page_size;
	return SMG_OK;
}

static int do_setup(struct smg_send *c)
{
	ProtobufCMessage *m;
	int r;

	if ((r = check_policy(c)) != SMG_OK)
		return r;
	if ((r = smg_audit_admit(c->o->audit, &c->am, c->s, c->info.name, c->o->ticket,
				 c->o->ticket_len, c->why, sizeof(c->why))) != SMG_OK) {
		smg_err("refusing to send %s: %s", c->info.name, c->why);
		set_detail(c, false, SMG__ABORT_REASON__ABORT_POLICY,
			   "refusing to send %s: %s", c->info.name, c->why);
		return r;
	}
	if ((r = smg_src_send_plan(c, SMG_FT_PLAN)) != SMG_OK)
		return r;
	smg_fault_point(SMG_FI_SRC_IN_SETUP, c->live);
	if ((r = recv_ctrl(c, &smg__plan_ack__descriptor, &m)) != SMG_OK)
		return r;
	Smg__PlanAck *ack = (Smg__PlanAck *)m;
	if (!ack->accepted)
		r = peer_refused(c, ack->code, ack->reason, true);
	c->dst_load_ms = ack->load_ms;
	smg_frame_msg_free(m);
	/* A plan the destination accepted spends the ticket here too. */
	if (r == SMG_OK && (r = smg_audit_spend(c->o->audit, &c->am, c->why,
						sizeof(c->why))) != SMG_OK) {
		smg_err("refusing to send %s: %s", c->info.name, c->why);
		set_detail(c, false, SMG__ABORT_REASON__ABORT_POLICY,
			   "refusing to send %s: %s", c->info.name, c->why);
		c->am.stage = "ticket";
	}
	c->planned = r == SMG_OK;
	/* From here on guest writes are tracked (DBT) or outsourced (WAIO). */
	if (r == SMG_OK)
		r = smg_engine_disks_begin(c->disks, c->o->storage_mode);
	if (r == SMG_OK)
		r = smg_engine_disks_workload(c->disks, c->o->disk_workload);
	return r;
}

/* The stop rule's disk term: the estimate already carries the disks' delta
 * (pc.pending_bytes); the bulk copy must be done, and WAIO may hold
 * hot-written chunks back only within the budget memory leaves. */
static bool disks_need_round(struct smg_send *c)
{
	const struct smg_stg_pending *p = &c->disk_pending;
	double disk_ms, left_ms;

	if (c->disks == NULL)
		return false;
	disk_ms = c->pc.bw > 0 ? (double)p->bytes / c->pc.bw * 1000.0 : 0;
	left_ms = c->pc.max_downtime_ms - (c->pc.est_ms - disk_ms);
	if (left_ms > 0 && c->pc.bw > 0)
		(void)smg_engine_disks_budget(c->disks,
					      (uint64_t)(left_ms / 1000.0 * c->pc.bw));
	if (p->bulk_left == 0 && disk_ms <= left_ms)
		return false;
	return c->disk_rounds++ < SMG_DISK_EXTRA_ROUNDS;
}

static enum smg_src_input decide(struct smg_send *c, enum smg_precopy_decision d,
				 uint64_t dirty)
{
	int r;

	switch (d) {
	case SMG_PRECOPY_CONTINUE:
		return SRC_IN_ROUND;
	case SMG_PRECOPY_THROTTLE:
		if ((r = c->be->ops->throttle(c->be, c->pc.throttle)) != SMG_OK) {
			c->err = r;
			return SRC_IN_FAIL;
		}
		c->st->throttle = c->pc.throttle;
		smg_src_emit(c, SMG_EV_INFO, SMG_PHASE_PRECOPY, 0, dirty,
			     "auto-converge: throttle raised");
		return SRC_IN_ROUND;
	case SMG_PRECOPY_STOP:
		/* Memory is ready; the disks may still be copying, or their
		 * delta may not fit in what the budget leaves after memory. */
		if (disks_need_round(c))
			return SRC_IN_ROUND;
		if (c->pc.over_budget) {
			smg_warn("%s: stop-and-copy over the %u ms budget (estimate %.0f "
				 "ms), as --on-no-converge extend asks",
				 c->pc.why, c->pc.max_downtime_ms, c->pc.est_ms);
			smg_src_emit(
			    c, SMG_EV_INFO, SMG_PHASE_PRECOPY, 0, dirty,
			    "downtime budget exceeded (--on-no-converge extend)");
		}
		c->st->converged = c->o->rule == SMG_RULE_XEN
				       ? dirty < 50
				       : c->pc.est_ms <= c->pc.max_downtime_ms;
		return SRC_IN_STOP;
	case SMG_PRECOPY_ABORT:
		set_detail(
		    c, false, SMG__ABORT_REASON__ABORT_NOT_CONVERGED,
		    "%s: estimated downtime %.0f ms over the %u ms budget after %u "
		    "rounds (--on-no-converge abort)",
		    c->pc.why, c->pc.est_ms, c->pc.max_downtime_ms, c->round);
		smg_src_emit(c, SMG_EV_INFO, SMG_PHASE_PRECOPY, 0, dirty, c->st->detail);
		c->err = SMG_ERR_NOT_CONVERGED;
		return SRC_IN_FAIL;
	}
	return SRC_IN_FAIL;
}

static enum smg_src_input do_precopy(struct smg_send *c)
{
	uint64_t bytes, npages, dirty, t0;

	if (c->o->rule == SMG_RULE_STOP_AND_COPY) {
		c->st->converged = true; /* nothing to converge: one pass, paused */
		return SRC_IN_STOP;
	}
	if (!c->logdirty) {
		if ((c->err = c->be->ops->logdirty_enable(c->be)) != SMG_OK)
			return SRC_IN_FAIL;
		c->logdirty = true;
		smg_src_emit(c, SMG_EV_PHASE, SMG_PHASE_PRECOPY, 0, 0, NULL);
	}
	t0 = smg_now_ns();
	if ((c->err = smg_src_run_round(c, false, &bytes, &npages)) != SMG_OK)
		return SRC_IN_FAIL;
	if (c->round == 1)
		smg_fault_point(SMG_FI_SRC_AFTER_ROUND0, c->live);
	/* Fold the round's leaves into the tree now, outside the downtime. */
	smg_merkle_root(c->mk, c->st->memory_root);
	uint64_t t_scan = smg_now_ns();
	if ((c->err = c->be->ops->logdirty_peek_clear(c->be, c->pending, &dirty)) !=
	    SMG_OK)
		return SRC_IN_FAIL;
	c->pc.scan_ms = (double)(smg_now_ns() - t_scan) / 1e6; /* not the link's */
	/* secmig tune may have moved the budget; the estimate covers the disk
	 * delta and the destination's load time too. */
	c->pc.max_downtime_ms = smg_live_budget(c->live, c->pc.max_downtime_ms);
	smg_src_disk_refresh(c);
	c->pc.pending_bytes = c->disk_pending.bytes; /* a FINAL pass's delta */
	c->pc.fixed_ms = c->dst_load_ms;
	enum smg_precopy_decision d = smg_precopy_next_round(
	    &c->pc, bytes, smg_now_ns() - t0, dirty, c->info.page_size);
	c->st->bandwidth = c->pc.bw;
	c->st->dirty_rate = c->pc.dirty_rate;
	c->st->est_downtime_ms = c->pc.est_ms;
	smg_src_emit(c, SMG_EV_ROUND, SMG_PHASE_PRECOPY, npages, dirty, NULL);
	return decide(c, d, dirty);
}

static int send_state_and_manifest(struct smg_send *c)
{
	Smg__DeviceState ds = SMG__DEVICE_STATE__INIT;
	Smg__Manifest mf = SMG__MANIFEST__INIT;
	uint8_t *blob = NULL, dev_hash[SMG_DIGEST_LEN], *packed;
	uint8_t vtpm_hash[SMG_DIGEST_LEN];
	uint8_t roots[SMG_DOMAIN_DISKS_MAX][SMG_DIGEST_LEN];
	ProtobufCBinaryData disk_roots[SMG_DOMAIN_DISKS_MAX];
	size_t len, plen;
	int r;

	if ((r = c->be->ops->save_state(c->be, &blob, &len)) != SMG_OK)
		return r;
	smg_engine_hash(blob, len, dev_hash);
	ds.vcpu_count = c->info.vcpus;
	ds.device_context = (ProtobufCBinaryData){len, blob};
	r = smg_chan_send_msg(c->s, 0, SMG_FT_DEVICE_STATE, &ds.base);
	c->st->bytes_sent += len;
	free(blob);
	if (r != SMG_OK)
		return r;
	smg_merkle_root(c->mk, c->st->memory_root);
	mf.migration_id = c->st->migration_id;
	mf.memory_root = (ProtobufCBinaryData){SMG_DIGEST_LEN, c->st->memory_root};
	mf.config_hash = (ProtobufCBinaryData){SMG_DIGEST_LEN, c->config_hash};
	mf.device_hash = (ProtobufCBinaryData){SMG_DIGEST_LEN, dev_hash};
	mf.n_disk_roots = smg_engine_disks_count(c->disks);
	mf.disk_roots = disk_roots;
	for (unsigned i = 0; i < mf.n_disk_roots; i++) {
		if ((r = smg_engine_disks_src_root(c->disks, i, roots[i])) != SMG_OK)
			return r;
		disk_roots[i] = (ProtobufCBinaryData){SMG_DIGEST_LEN, roots[i]};
	}
	if (c->info.has_vtpm) {
		if ((r = smg_engine_vtpm_send(c->s, c->info.vtpm_ctrl, vtpm_hash,
					      &c->st->bytes_sent)) != SMG_OK)
			return r;
		mf.vtpm_hash = (ProtobufCBinaryData){SMG_DIGEST_LEN, vtpm_hash};
	}
	mf.transcript = (ProtobufCBinaryData){SMG_TRANSCRIPT_LEN,
					      (uint8_t *)smg_session_transcript(c->s)};
	if ((r = smg_audit_manifest_sign(&c->am, c->s, &mf)) != SMG_OK)
		return r;
	plen = protobuf_c_message_get_packed_size(&mf.base);
	if ((packed = malloc(plen)) == NULL)
		return SMG_ERR_NOMEM;
	protobuf_c_message_pack(&mf.base, packed);
	smg_engine_hash(packed, plen, c->manifest_hash);
	free(packed);
	return smg_chan_send_msg(c->s, 0, SMG_FT_MANIFEST, &mf.base);
}

static int check_memory(struct smg_send *c)
{
	uint8_t fresh[SMG_DIGEST_LEN], sent[SMG_DIGEST_LEN];
	int r;

	if (!c->o->check_memory)
		return SMG_OK;
	if ((r = smg_merkle_of_memory(c->be, c->info.pages, c->info.page_size, fresh)) !=
	    SMG_OK)
		return r;
	smg_merkle_root(c->mk, sent);
	if (memcmp(fresh, sent, SMG_DIGEST_LEN) != 0) {
		smg_err("memory at pause differs from what was sent: a write escaped the "
			"dirty log");
		return SMG_ERR_INTEGRITY;
	}
	return SMG_OK;
}

/* Who takes the COMMIT, as one token for the backend's record. */
static int commit_token(struct smg_send *c, char *tok, size_t n)
{
	struct smg_commit_peer p;

	memset(&p, 0, sizeof(p));
	snprintf(p.name, sizeof(p.name), "%s", smg_session_peer_name(c->s));
	memcpy(p.key, smg_session_peer_key(c->s), sizeof(p.key));
	snprintf(p.addr, sizeof(p.addr), "%s", c->o->peer != NULL ? c->o->peer : "-");
	return smg_commit_peer_format(&p, tok, n);
}

/* A cooperative pause (xen: the guest suspends itself) can take seconds
 * while the destination waits on every channel: keep them alive. A backend
 * that cannot rely on a lease (xen) records the pause durably first, so a
 * guest left suspended by a killed sender is found by `secmig resolve`. */
static int pause_vm(struct smg_send *c)
{
	struct smg_keepalive k;
	char tok[SMG_COMMIT_PEER_MAX + 1];
	int r;

	if (c->be->ops->mark_pause != NULL &&
	    ((r = commit_token(c, tok, sizeof(tok))) != SMG_OK ||
	     (r = c->be->ops->mark_pause(c->be, c->st->migration_id, tok)) != SMG_OK))
		return r;
	bool ka = smg_keepalive_start(&k, c->s, (1u << c->nchan) - 1) == SMG_OK;
	r = c->be->ops->pause(c->be);
	if (ka)
		smg_keepalive_stop(&k);
	return r;
}

static enum smg_src_input do_stopcopy(struct smg_send *c)
{
	uint64_t bytes, npages, dirty;

	/* From here the budget is what it is: no more tuning. */
	c->pc.max_downtime_ms = smg_live_freeze(c->live, c->pc.max_downtime_ms);
	smg_src_emit(c, SMG_EV_PHASE, SMG_PHASE_STOPCOPY, 0, 0, NULL);
	c->t_pause = smg_now_ns();
	if ((c->err = pause_vm(c)) != SMG_OK)
		return SRC_IN_FAIL;
	c->paused = true;
	if ((c->err = smg_engine_disks_pause(c->disks)) != SMG_OK)
		return SRC_IN_FAIL;
	smg_debug("downtime: paused after %.1f ms",
		  (double)(smg_now_ns() - c->t_pause) / 1e6);
	/* network: a paused VM does not answer. Held by this process only
	 * (netid_hold.c), so a crashed sender does not leave it deaf. */
	if (c->o->net != NULL && smg_netid_hold(c->o->net, c->info.name, c->info.nics,
						c->info.n_nics, &c->net_hold) != SMG_OK)
		smg_warn("could not silence the paused VM's NICs");
	smg_fault_point(SMG_FI_SRC_AFTER_PAUSE, c->live);
	if (smg_live_cancelled(c->live))
		return c->err = SMG_ERR_CANCELLED, SRC_IN_FAIL;
	if (c->logdirty && (c->err = c->be->ops->logdirty_peek_clear(c->be, c->pending,
								     &dirty)) != SMG_OK)
		return SRC_IN_FAIL;
	/* stop-and-copy: the one round carries what is memory now */
	if (!c->logdirty && c->round == 0 && (c->err = first_round_set(c)) != SMG_OK)
		return SRC_IN_FAIL;
	if ((c->err = smg_src_run_round(c, true, &bytes, &npages)) != SMG_OK ||
	    (c->err = check_memory(c)) != SMG_OK ||
	    (c->err = send_state_and_manifest(c)) != SMG_OK)
		return SRC_IN_FAIL;
	smg_src_emit(c, SMG_EV_ROUND, SMG_PHASE_STOPCOPY, npages, 0, NULL);
	smg_debug("downtime: final round and manifest sent at +%.1f ms",
		  (double)(smg_now_ns() - c->t_pause) / 1e6);
	return SRC_IN_SENT;
}

static int check_ready(struct smg_send *c)
{
	ProtobufCMessage *m;
	Smg__Ready *rd;
	int r;

	if ((r = recv_ctrl(c, &smg__ready__descriptor, &m)) != SMG_OK)
		return r;
	rd = (Smg__Ready *)m;
	if (strcmp(rd->migration_id, c->st->migration_id) != 0 ||
	    rd->manifest_hash.len != SMG_DIGEST_LEN ||
	    sodium_memcmp(rd->manifest_hash.data, c->manifest_hash, SMG_DIGEST_LEN) !=
		0) {
		smg_peer_log(SMG_LOG_ERROR, "READY does not match our manifest");
		set_detail(c, true, SMG__ABORT_REASON__ABORT_INTEGRITY,
			   "destination '%s' confirmed a manifest that is not ours",
			   c->st->peer);
		r = SMG_ERR_INTEGRITY;
	}
	if (r == SMG_OK && /* the countersigned receipt, before COMMIT */
	    (r = smg_audit_receipt_check(&c->am, c->s, c->o->policy, rd)) != SMG_OK)
		set_detail(c, true, SMG__ABORT_REASON__ABORT_INTEGRITY,
			   "destination '%s' sent no valid countersigned receipt",
			   c->st->peer);
	smg_frame_msg_free(m);
	return r;
}

/* Fault src_before_commit (test_signals.sh): a stall between READY and
 * the re-check that ends once the destination spoke, not after a guess. */
static void stall_before_commit(struct smg_send *c)
{
	unsigned ms;

	if (!smg_fault_on(SMG_FI_SRC_BEFORE_COMMIT) || (ms = smg_fault_stall_ms(0)) == 0)
		return;
	smg_warn("fault injection: src_before_commit: stalling until the destination "
		 "speaks (%u ms at most)",
		 ms);
	for (unsigned t = 0; t < ms && !smg_chan_has_input(c->s, 0); t += 10)
		usleep(10 * 1000);
}

/* Re-check before the point of no return (WireGuard re-checks its
 * handshake state before committing): still paused and verified, and the
 * destination silent since READY. After READY it says nothing but an
 * ABORT (its operator cancelled, its side failed): committing then would
 * leave this copy in doubt against a copy already dropped, so read its
 * reason and resume here instead. A cancel here is smg_live_commit's. */
static int recheck_commit(struct smg_send *c)
{
	if (!c->paused || !c->st->verified)
		return SMG_ERR_STATE;
	if (smg_chan_has_input(c->s, 0)) {
		atomic_store(&c->rl.peer_spoke, true);
		return SMG_ERR_ABORTED;
	}
	return SMG_OK;
}

static enum smg_src_input do_handover(struct smg_send *c)
{
	smg_src_emit(c, SMG_EV_PHASE, SMG_PHASE_VERIFY, 0, 0, NULL);
	smg_fault_point(SMG_FI_SRC_IN_VERIFY, c->live);
	if ((c->err = check_ready(c)) != SMG_OK)
		return SRC_IN_FAIL;
	c->st->verified = true;
	smg_debug("downtime: READY at +%.1f ms",
		  (double)(smg_now_ns() - c->t_pause) / 1e6);
	return SRC_IN_READY;
}

/* The destination verified: re-check, then record COMMIT, the point of no
 * return. */
static enum smg_src_input do_verified(struct smg_send *c)
{
	char tok[SMG_COMMIT_PEER_MAX + 1];

	stall_before_commit(c);
	if ((c->err = recheck_commit(c)) != SMG_OK)
		return SRC_IN_FAIL;
	if ((c->err = commit_token(c, tok, sizeof(tok))) != SMG_OK)
		return SRC_IN_FAIL;
	if (!smg_live_commit(c->live))
		return c->err = SMG_ERR_CANCELLED, SRC_IN_FAIL;
	/* The disks first: from here their copies stay held with the disk
	 * service even if this process dies (in doubt, like the VM). */
	if ((c->err = smg_engine_disks_commit(c->disks)) != SMG_OK)
		return SRC_IN_FAIL;
	if ((c->err = c->be->ops->mark_commit(c->be, c->st->migration_id, tok)) != SMG_OK)
		return SRC_IN_FAIL;
	/* network: from here the copy may be in doubt: its NICs go down for
	 * good (past this process) until DONE or resolve settles it. */
	if (c->o->net != NULL)
		smg_netid_set_links(c->o->net, c->info.name, c->info.nics, c->info.n_nics,
				    false);
	smg_src_emit(c, SMG_EV_PHASE, SMG_PHASE_COMMIT, 0, 0, NULL);
	smg_debug("downtime: COMMIT recorded at +%.1f ms",
		  (double)(smg_now_ns() - c->t_pause) / 1e6);
	return SRC_IN_COMMIT;
}

/* COMMIT is recorded: it goes out, and DONE says the VM runs there. */
static enum smg_src_input do_committed(struct smg_send *c)
{
	Smg__Commit cm = SMG__COMMIT__INIT;
	ProtobufCMessage *m;
	int r;

	smg_fault_point(SMG_FI_SRC_AFTER_COMMIT, c->live);
	cm.migration_id = c->st->migration_id;
	if ((c->err = smg_chan_send_msg(c->s, 0, SMG_FT_COMMIT, &cm.base)) != SMG_OK ||
	    (c->err = smg_chan_flush(c->s, 0)) != SMG_OK ||
	    (c->err = recv_ctrl(c, &smg__done__descriptor, &m)) != SMG_OK)
		return SRC_IN_FAIL;
	smg_frame_msg_free(m);
	c->st->downtime_ms = (smg_now_ns() - c->t_pause) / 1000000;
	(void)smg_engine_disks_end(c->disks, true);
	if ((r = c->be->ops->destroy(c->be)) != SMG_OK)
		smg_warn(
		    "the destination runs the VM but the paused source copy could not "
		    "be destroyed: %s; destroy it by hand",
		    smg_strerror(r));
	c->paused = false;
	c->logdirty = false;
	/* network: the VM lives on the destination now; its NICs go. */
	if (c->o->net != NULL)
		smg_netid_remove_all(c->o->net, c->info.name, c->info.nics,
				     c->info.n_nics);
	return SRC_IN_DONE;
}

/* Before COMMIT: tell the peer, stop tracking, give the VM its vCPUs back. */
static void abort_source(struct smg_send *c)
{
	Smg__Abort a = SMG__ABORT__INIT;
	int r;

	a.reason = smg_reason_from_err(c->err);
	a.detail = c->st->detail[0] != '\0' ? c->st->detail
		   : c->why[0] != '\0'	    ? c->why
					    : (char *)smg_strerror(c->err);
	a.error = c->err;
	if (c->s != NULL && !c->peer_abort && c->err != SMG_ERR_EOF &&
	    c->err != SMG_ERR_CUT && c->err != SMG_ERR_TIMEOUT && c->err != SMG_ERR_SYS &&
	    smg_chan_send_msg(c->s, 0, SMG_FT_ABORT, &a.base) == SMG_OK)
		smg_chan_flush(c->s, 0);
	/* Disks first: WAIO writes go back into the originals before the
	 * VM (and its NBD clients) run again. */
	if ((r = smg_engine_disks_end(c->disks, false)) != SMG_OK)
		smg_err("disks: %s; their newest writes stay on the surrogate",
			smg_strerror(r));
	if (c->be == NULL)
		return;
	if (c->logdirty)
		c->be->ops->logdirty_disable(c->be);
	if (c->pc.throttle > 0)
		c->be->ops->throttle(c->be, 0);
	if (c->paused && c->be->ops->unpause(c->be) == SMG_OK) {
		c->paused = false;
		smg_netid_release(c->net_hold); /* network: it answers again */
		c->net_hold = NULL;
	}
}

/* The attempt's audit record, durable before the outcome is reported. */
static void audit_end(struct smg_send *c)
{
	struct smg_audit_result res = {.id = c->st->migration_id,
				       .domain = c->st->domain,
				       .err = c->err,
				       .reason = c->why[0] != '\0' ? c->why
						 : c->st->detail[0] != '\0'
						     ? c->st->detail
						     : NULL,
				       .downtime_ms = c->st->downtime_ms,
				       .total_ms = (smg_now_ns() - c->t_start) / 1000000,
				       .bytes = c->st->bytes_sent,
				       .rounds = c->st->rounds,
				       .verified = c->st->verified};

	res.outcome =
	    c->state == SRC_DONE       ? "done"
	    : c->state == SRC_IN_DOUBT ? "in_doubt"
	    : !c->planned && (c->err == SMG_ERR_POLICY || c->err == SMG_ERR_UNKNOWN_PEER)
		? "refused"
		: "aborted";
	smg_audit_finish(c->o->audit, &c->am, c->s, &res);
}

/* The state's work, and the input it ended in. */
static enum smg_src_input run_state(struct smg_send *c)
{
	/* Before the point of no return a cancel ends the migration here. */
	if (c->state < SRC_COMMITTED && smg_live_cancelled(c->live)) {
		c->err = SMG_ERR_CANCELLED;
		return SRC_IN_FAIL;
	}
	/* The destination spoke during a round: read why before going on. */
	if (c->state < SRC_COMMITTED && atomic_load(&c->rl.peer_spoke)) {
		c->err = SMG_ERR_ABORTED;
		return SRC_IN_FAIL;
	}
	switch (c->state) {
	case SRC_SETUP:
		smg_src_emit(c, SMG_EV_PHASE, SMG_PHASE_SETUP, 0, 0, NULL);
		c->err = do_setup(c);
		return c->err == SMG_OK ? SRC_IN_PLAN_ACK : SRC_IN_FAIL;
	case SRC_PRECOPY:
		return do_precopy(c);
	case SRC_STOPCOPY:
		return do_stopcopy(c);
	case SRC_HANDOVER:
		return do_handover(c);
	case SRC_VERIFIED:
		return do_verified(c);
	case SRC_COMMITTED:
		return do_committed(c);
	case SRC_DONE:
	case SRC_ABORTED:
	case SRC_IN_DOUBT:
		break;
	}
	return SRC_IN_FAIL;
}

static enum src_state step(struct smg_send *c)
{
	enum smg_src_input in = run_state(c);
	enum src_state next = c->state;

	if (smg_src_next_state(c->state, in, &next) == SMG_OK)
		return next;
	/* A state's work ended in an input its row does not have: our bug,
	 * not the peer's; fail the way that state fails. */
	smg_err("source state machine: input %d in state %s", (int)in,
		smg_src_state_name(c->state));
	if (c->err == SMG_OK)
		c->err = SMG_ERR_STATE;
	(void)smg_src_next_state(c->state, SRC_IN_FAIL, &next);
	return next;
}

static void finish_aborted(struct smg_send *c)
{
	/* Whatever failed while a cancel was under way is the cancel. */
	if (smg_live_cancelled(c->live) && c->state != SRC_IN_DOUBT) {
		c->err = SMG_ERR_CANCELLED;
		c->st->detail[0] = '\0';
		set_detail(c, false, SMG__ABORT_REASON__ABORT_OPERATOR,
			   "cancelled on the source (%s)", smg_live_why(c->live));
	} else if (c->err == SMG_ERR_CUT || c->err == SMG_ERR_EOF ||
		   (c->err == SMG_ERR_ABORTED && atomic_load(&c->rl.peer_spoke)))
		c->err = peer_reason(c, c->err);
	abort_source(c);
	if (c->st->detail[0] == '\0')
		set_detail(c, false, smg_reason_from_err(c->err), "%s",
			   smg_strerror(c->err));
	smg_err("migration aborted: %s; the source VM is %s", c->st->detail,
		c->paused ? "PAUSED (could not resume it)" : "running");
	smg_src_emit(c, SMG_EV_PHASE, SMG_PHASE_ABORTED, 0, 0, c->st->detail);
}

static void finish_downtime(struct smg_send *c)
{
	c->st->downtime_budget_ms = c->pc.max_downtime_ms;
	c->st->downtime_exceeded =
	    c->pc.over_budget ||
	    (c->state == SRC_DONE && c->st->downtime_ms > c->pc.max_downtime_ms);
}

int smg_engine_send_run(struct smg_send *c, struct smg_session *s)
{
	c->s = s;
	c->nchan = smg_session_channels(s);
	snprintf(c->st->peer, sizeof(c->st->peer), "%s", smg_session_peer_name(s));
	smg_log_ctx_set(c->st->migration_id, c->st->peer, c->st->domain);
	if (c->nchan == 0 || c->nchan > SMG_CHANNELS_MAX)
		return c->st->err = SMG_ERR_INVAL;
	smg_live_attach(c->live, s, &c->rl);
	c->state = SRC_SETUP;
	while (c->state != SRC_DONE && c->state != SRC_ABORTED &&
	       c->state != SRC_IN_DOUBT)
		c->state = step(c);
	if (c->state == SRC_ABORTED) {
		finish_aborted(c);
		audit_end(c);
	} else if (c->state == SRC_IN_DOUBT) {
		smg_err(
		    "link lost after COMMIT (%s): outcome in doubt; the source keeps its "
		    "paused copy; run 'secmig resolve --domain %s'",
		    smg_strerror(c->err), c->st->domain);
		c->err = SMG_ERR_IN_DOUBT;
		set_detail(
		    c, false, 0,
		    "link to '%s' lost after COMMIT: the VM is paused here and may "
		    "run there; run 'secmig resolve --domain %s'",
		    c->st->peer, c->st->domain);
		audit_end(c);
		smg_src_emit(c, SMG_EV_PHASE, SMG_PHASE_IN_DOUBT, 0, 0, NULL);
	} else {
		audit_end(c);
		smg_src_emit(c, SMG_EV_PHASE, SMG_PHASE_DONE, 0, 0, NULL);
	}
	finish_downtime(c);
	smg_live_detach(c->live);
	c->s = NULL;
	c->st->err = c->err;
	c->st->total_ms = (smg_now_ns() - c->t_start) / 1000000;
	return c->err;
}

/* Everything this host can check before a connection: the backend, the
 * domain, its disks. Opening the domain takes the backend's lease but does
 * not touch the VM. */
static int prepare_domain(struct smg_send *c)
{
	const struct smg_send_opts *o = c->o;
	int r;

	if ((r = smg_backend_open(o->backend, &o->bopts, &c->be)) != SMG_OK) {
		set_detail(c, false, SMG__ABORT_REASON__ABORT_NO_BACKEND,
			   "backend '%s' is not available on this host: %s", o->backend,
			   smg_strerror(r));
		return SMG_ERR_NO_BACKEND;
	}
	if ((r = c->be->ops->domain_open(c->be, o->domain, &c->info)) != SMG_OK) {
		set_detail(c, false, SMG__ABORT_REASON__ABORT_BACKEND,
			   "cannot open domain '%s' on this host: %s", o->domain,
			   r == SMG_ERR_BACKEND ? "not found or busy (see the log above)"
						: smg_strerror(r));
		return r == SMG_ERR_BUSY ? SMG_ERR_BACKEND : r;
	}
	snprintf(c->st->domain, sizeof(c->st->domain), "%s", c->info.name);
	c->st->ram_bytes = c->info.pages * c->info.page_size;
	c->words = (c->info.pages + 63) / 64;
	if ((c->pending = calloc(c->words, sizeof(uint64_t))) == NULL)
		return SMG_ERR_NOMEM;
	if ((r = first_round_set(c)) != SMG_OK)
		return r;
	if ((r = smg_merkle_new(c->info.pages, c->info.page_size, &c->mk)) != SMG_OK)
		return r;
	smg_engine_hash(c->info.config, c->info.config_len, c->config_hash);
	if (c->info.n_disks > 0 &&
	    (r = smg_engine_disks_src_open(
		 &c->info, o->disk_socket != NULL ? o->disk_socket : o->bopts.state_dir,
		 &c->disks)) != SMG_OK) {
		set_detail(c, false, SMG__ABORT_REASON__ABORT_STORAGE,
			   "cannot open the disks of '%s' on this host: %s", o->domain,
			   smg_strerror(r));
		return r;
	}
	for (unsigned i = 0; i < smg_engine_disks_count(c->disks); i++) {
		uint64_t size;
		uint32_t chunk;
		smg_engine_disks_spec(c->disks, i, &size, &chunk);
		c->st->disk_bytes += size;
		if (chunk > c->disk_chunk)
			c->disk_chunk = chunk;
	}
	return SMG_OK;
}

int smg_engine_send_prepare(const struct smg_send_opts *o, struct smg_mig_stats *st,
			    struct smg_send **out)
{
	uint8_t idb[SMG_MIGRATION_ID_LEN / 2];
	struct smg_send *c;
	int r;

	*out = NULL;
	memset(st, 0, sizeof(*st));
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return st->err = SMG_ERR_NOMEM;
	c->o = o;
	c->st = st;
	c->t_start = smg_now_ns();
	pthread_mutex_init(&c->rl.lock, NULL);
	smg_audit_mig_init(&c->am, true);
	smg_precopy_init(&c->pc, o->rule, o->max_downtime_ms, o->max_rounds,
			 o->auto_converge);
	c->pc.on_no_converge = o->on_no_converge;
	c->st->downtime_budget_ms = c->pc.max_downtime_ms;
	randombytes_buf(idb, sizeof(idb));
	smg_hex_encode(idb, sizeof(idb), st->migration_id);
	snprintf(st->domain, sizeof(st->domain), "%s", o->domain);
	if (o->live == NULL && (r = smg_live_new("send", &c->own_live)) != SMG_OK) {
		free(c);
		return st->err = r;
	}
	c->live = o->live != NULL ? o->live : c->own_live;
	smg_live_lock(c->live);
	c->live->st.budget_ms = c->pc.max_downtime_ms;
	c->live->st.bandwidth = o->bandwidth;
	snprintf(c->live->st.migration_id, sizeof(c->live->st.migration_id), "%s",
		 st->migration_id);
	snprintf(c->live->st.domain, sizeof(c->live->st.domain), "%s", st->domain);
	smg_live_unlock(c->live);
	atomic_store(&c->rl.rate, o->bandwidth);
	*out = c;
	if ((r = prepare_domain(c)) != SMG_OK) {
		smg_err("%s", c->st->detail[0] != '\0' ? c->st->detail : smg_strerror(r));
		return st->err = r;
	}
	return SMG_OK;
}

void smg_engine_send_fail(struct smg_send *c, int err)
{
	c->err = c->st->err = err;
	c->st->total_ms = (smg_now_ns() - c->t_start) / 1000000;
}

void smg_engine_send_free(struct smg_send *c)
{
	if (c == NULL)
		return;
	smg_live_detach(c->live);
	smg_netid_release(c->net_hold); /* in doubt: the vifs stay down past us */
	smg_merkle_free(c->mk);
	smg_engine_disks_free(c->disks);
	free(c->pending);
	smg_backend_close(c->be);
	pthread_mutex_destroy(&c->rl.lock);
	smg_live_free(c->own_live);
	free(c);
}

int smg_engine_send(struct smg_session *s, const struct smg_send_opts *o,
		    struct smg_mig_stats *st)
{
	struct smg_send *c;
	int r;

	if ((r = smg_engine_send_prepare(o, st, &c)) == SMG_OK)
		r = smg_engine_send_run(c, s);
	smg_engine_send_free(c);
	return r;
}
