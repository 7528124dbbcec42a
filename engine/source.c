/* The source state machine (DESIGN §1, §7):
 *   SETUP -> PRECOPY -> STOPCOPY -> HANDOVER -> COMMITTED -> DONE
 * with ABORTED reachable from every state before COMMITTED (the VM keeps or
 * resumes running) and IN_DOUBT only from COMMITTED (the paused copy stays). */
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "attest/attest.h"
#include "audit/audit.h"
#include "base/base.h"
#include "engine/internal.h"
#include "proto/proto.h"
#include "secmig.pb-c.h"
#include "transport/transport.h"

#define SMG_INLINE_ROUND_PAGES 2048 /* rounds up to 8 MiB run without threads */

enum src_state {
	SRC_SETUP = 0,
	SRC_PRECOPY,
	SRC_STOPCOPY,
	SRC_HANDOVER,
	SRC_COMMITTED,
	SRC_DONE,
	SRC_ABORTED,
	SRC_IN_DOUBT,
};

struct src {
	enum src_state state;
	struct smg_session *s;
	const struct smg_send_opts *o;
	struct smg_mig_stats *st;
	struct smg_backend *be;
	struct smg_domain_info info;
	unsigned nchan;
	uint64_t *pending, words;
	struct smg_merkle *mk;
	struct smg_engine_disks *disks;
	unsigned disk_rounds; /* rounds added for the disks alone */
	struct smg_precopy pc;
	struct smg_ratelim rl;
	bool logdirty, paused;
	struct smg_netid_hold *net_hold; /* network: NICs silenced while paused */
	uint32_t round;
	uint64_t t_start, t_pause;
	uint8_t config_hash[SMG_DIGEST_LEN], manifest_hash[SMG_DIGEST_LEN];
	char why[256]; /* ABORT detail when set (policy) */
	int err;
	bool planned;		 /* the destination accepted the plan */
	struct smg_audit_mig am; /* evidence and the record (audit/) */
};

static void emit(struct src *c, enum smg_event_kind kind, enum smg_phase ph,
		 uint64_t round_pages, uint64_t dirty, const char *info)
{
	struct smg_event ev = {.kind = kind,
			       .phase = ph,
			       .round = c->round,
			       .round_pages = round_pages,
			       .dirty_pages = dirty,
			       .est_downtime_ms = c->pc.est_ms,
			       .info = info,
			       .st = c->st};

	c->st->total_ms = (smg_now_ns() - c->t_start) / 1000000;
	if (c->o->event != NULL)
		c->o->event(c->o->event_arg, &ev);
}

/* Next control frame on channel 0; ABORT from the peer becomes an error. */
static int recv_ctrl(struct smg_session *s, uint8_t want,
		     const ProtobufCMessageDescriptor *desc, ProtobufCMessage **out)
{
	struct smg_frame f;
	ProtobufCMessage *m;
	int r;

	*out = NULL;
	if ((r = smg_chan_recv(s, 0, &f)) != SMG_OK)
		return r;
	if (f.type == SMG_FT_ABORT) {
		if ((r = smg_frame_unpack(&f, &smg__abort__descriptor, &m)) != SMG_OK)
			return r;
		Smg__Abort *a = (Smg__Abort *)m;
		smg_peer_log(SMG_LOG_ERROR, "peer aborted: %s", a->detail);
		r = a->reason == SMG__ABORT_REASON__ABORT_INTEGRITY ? SMG_ERR_INTEGRITY
		    : a->reason == SMG__ABORT_REASON__ABORT_POLICY  ? SMG_ERR_POLICY
								    : SMG_ERR_ABORTED;
		smg_frame_msg_free(m);
		return r;
	}
	if (f.type != want) {
		smg_peer_log(SMG_LOG_ERROR, "frame 0x%02x where 0x%02x was due", f.type,
			     want);
		return SMG_ERR_STATE;
	}
	return smg_frame_unpack(&f, desc, out);
}

static int send_plan(struct src *c)
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
	return smg_chan_send_msg(c->s, 0, SMG_FT_PLAN, &p.base);
}

/* Placement (the privacy dimension): the destination must be enrolled in
 * our policy and carry the VM's labels; checked before the plan leaves. */
static int check_policy(struct src *c)
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
	return SMG_ERR_POLICY;
}

/* The first round's set: the frames that are the guest's memory (a Xen
 * guest's physmap is mostly holes), or all of them. */
static int first_round_set(struct src *c)
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

static int do_setup(struct src *c)
{
	uint8_t idb[SMG_MIGRATION_ID_LEN / 2];
	ProtobufCMessage *m;
	int r;

	randombytes_buf(idb, sizeof(idb));
	smg_engine_hex(idb, sizeof(idb), c->st->migration_id);
	if ((r = smg_backend_open(c->o->backend, &c->o->bopts, &c->be)) != SMG_OK ||
	    (r = c->be->ops->domain_open(c->be, c->o->domain, &c->info)) != SMG_OK)
		return r;
	snprintf(c->st->domain, sizeof(c->st->domain), "%s", c->info.name);
	c->st->ram_bytes = c->info.pages * c->info.page_size;
	if ((r = check_policy(c)) != SMG_OK)
		return r;
	if ((r = smg_audit_admit(c->o->audit, &c->am, c->s, c->info.name, c->o->ticket,
				 c->o->ticket_len, c->why, sizeof(c->why))) != SMG_OK) {
		smg_err("refusing to send %s: %s", c->info.name, c->why);
		return r;
	}
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
		 &c->info, c->o->disk_socket ? c->o->disk_socket : c->o->bopts.state_dir,
		 &c->disks)) != SMG_OK)
		return r;
	if ((r = send_plan(c)) != SMG_OK)
		return r;
	if ((r = recv_ctrl(c->s, SMG_FT_PLAN_ACK, &smg__plan_ack__descriptor, &m)) !=
	    SMG_OK)
		return r;
	Smg__PlanAck *ack = (Smg__PlanAck *)m;
	if (!ack->accepted) {
		smg_peer_log(SMG_LOG_ERROR, "destination refused the plan: %s",
			     ack->reason);
		r = SMG_ERR_ABORTED;
	}
	c->planned = r == SMG_OK;
	smg_frame_msg_free(m);
	/* From here on guest writes are tracked (DBT) or outsourced (WAIO). */
	if (r == SMG_OK)
		r = smg_engine_disks_begin(c->disks, c->o->storage_mode);
	if (r == SMG_OK)
		r = smg_engine_disks_workload(c->disks, c->o->disk_workload);
	return r;
}

static uint64_t popcount_bitmap(const uint64_t *b, uint64_t words)
{
	uint64_t n = 0;

	for (uint64_t w = 0; w < words; w++)
		n += (uint64_t)__builtin_popcountll(b[w]);
	return n;
}

/* One round: ROUND_START on the control channel, then every channel sends
 * its share of the pending set in parallel and ends with ROUND_END. */
static int run_round(struct src *c, bool final, uint64_t *sent_bytes, uint64_t *npages)
{
	Smg__RoundStart rs = SMG__ROUND_START__INIT;
	struct smg_xfer_send x[SMG_CHANNELS_MAX];
	unsigned started = 0;
	int r;

	*npages = popcount_bitmap(c->pending, c->words);
	rs.round = c->round;
	rs.pages = *npages;
	rs.final = final;
	if ((r = smg_chan_send_msg(c->s, 0, SMG_FT_ROUND_START, &rs.base)) != SMG_OK)
		return r;
	/* A small round (the last ones) is cheaper to drive from this thread,
	 * channel after channel, than to hand to threads that must first be
	 * scheduled: in the stop-and-copy round that latency is downtime. */
	bool inline_round =
	    *npages <= SMG_INLINE_ROUND_PAGES &&
	    smg_engine_disks_count(c->disks) == 0; /* disks: channels in parallel */
	for (unsigned i = 0; i < c->nchan; i++) {
		x[i] = (struct smg_xfer_send){.s = c->s,
					      .be = c->be,
					      .mk = c->mk,
					      .rl = &c->rl,
					      .bitmap = c->pending,
					      .npages = c->info.pages,
					      .page_size = c->info.page_size,
					      .round = c->round,
					      .chan = i,
					      .nchan = c->nchan,
					      .disks = c->disks,
					      .final = final};
		if (inline_round)
			smg_xfer_send_main(&x[i]);
		else if (pthread_create(&x[i].tid, NULL, smg_xfer_send_main, &x[i]) !=
			 0) {
			r = SMG_ERR_SYS;
			break;
		}
		started++;
	}
	*sent_bytes = 0;
	for (unsigned i = 0; i < started; i++) {
		if (!inline_round)
			smg_xfer_join_folding(x[i].tid, c->mk);
		r = r ?: x[i].err;
		*sent_bytes += x[i].bytes;
		c->st->pages_sent += x[i].pages;
		c->st->zero_pages += x[i].zeros;
	}
	c->st->bytes_sent += *sent_bytes;
	memset(c->pending, 0, c->words * sizeof(uint64_t));
	c->round++;
	c->st->rounds = c->round;
	return r;
}

/* The stop rule's disk term: the disks' remaining delta, at the measured
 * bandwidth, must fit in the downtime budget memory's estimate leaves
 * (WAIO holds hot-written chunks back only within that share). */
static bool disks_need_round(struct src *c)
{
	struct smg_stg_pending p;
	double left_ms = c->pc.max_downtime_ms - c->pc.est_ms, disk_ms;

	if (c->disks == NULL || smg_engine_disks_pending(c->disks, &p) != SMG_OK)
		return false;
	disk_ms = c->pc.bw > 0 ? (double)p.bytes / c->pc.bw * 1000.0 : 0;
	c->pc.est_ms += disk_ms;
	if (left_ms > 0 && c->pc.bw > 0)
		(void)smg_engine_disks_budget(c->disks,
					      (uint64_t)(left_ms / 1000.0 * c->pc.bw));
	if (p.bulk_left == 0 && disk_ms <= left_ms)
		return false;
	return c->disk_rounds++ < SMG_DISK_EXTRA_ROUNDS;
}

static enum src_state do_precopy(struct src *c)
{
	uint64_t bytes, npages, dirty, t0;
	int r;

	if (c->o->rule == SMG_RULE_STOP_AND_COPY) {
		c->st->converged = true; /* nothing to converge: one pass, paused */
		return SRC_STOPCOPY;
	}
	if (!c->logdirty) {
		if ((c->err = c->be->ops->logdirty_enable(c->be)) != SMG_OK)
			return SRC_ABORTED;
		c->logdirty = true;
		emit(c, SMG_EV_PHASE, SMG_PHASE_PRECOPY, 0, 0, NULL);
	}
	t0 = smg_now_ns();
	if ((c->err = run_round(c, false, &bytes, &npages)) != SMG_OK)
		return SRC_ABORTED;
	if (c->round == 1)
		smg_fault_crash(SMG_FI_SRC_AFTER_ROUND0);
	/* Fold the round's leaves into the tree now, outside the downtime. */
	smg_merkle_root(c->mk, c->st->memory_root);
	if ((c->err = c->be->ops->logdirty_peek_clear(c->be, c->pending, &dirty)) !=
	    SMG_OK)
		return SRC_ABORTED;
	enum smg_precopy_decision d = smg_precopy_next_round(
	    &c->pc, bytes, smg_now_ns() - t0, dirty, c->info.page_size);
	c->st->bandwidth = c->pc.bw;
	c->st->dirty_rate = c->pc.dirty_rate;
	emit(c, SMG_EV_ROUND, SMG_PHASE_PRECOPY, npages, dirty, NULL);
	switch (d) {
	case SMG_PRECOPY_CONTINUE:
		return SRC_PRECOPY;
	case SMG_PRECOPY_THROTTLE:
		if ((r = c->be->ops->throttle(c->be, c->pc.throttle)) != SMG_OK) {
			c->err = r;
			return SRC_ABORTED;
		}
		c->st->throttle = c->pc.throttle;
		emit(c, SMG_EV_INFO, SMG_PHASE_PRECOPY, 0, dirty,
		     "auto-converge: throttle raised");
		return SRC_PRECOPY;
	case SMG_PRECOPY_STOP:
		/* Memory is ready; the disks may still be copying, or their
		 * delta may not fit in what the budget leaves after memory. */
		if (disks_need_round(c))
			return SRC_PRECOPY;
		c->st->converged = c->o->rule == SMG_RULE_XEN
				       ? dirty < 50
				       : c->pc.est_ms <= c->pc.max_downtime_ms;
		return SRC_STOPCOPY;
	case SMG_PRECOPY_ABORT:
		emit(c, SMG_EV_INFO, SMG_PHASE_PRECOPY, 0, dirty,
		     "not converging and auto-converge is off");
		c->err = SMG_ERR_NOT_CONVERGED;
		return SRC_ABORTED;
	}
	return SRC_ABORTED;
}

static int send_state_and_manifest(struct src *c)
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

static int check_memory(struct src *c)
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

/* A cooperative pause (xen: the guest suspends itself) can take seconds
 * while the destination waits on every channel: keep them alive. */
static int pause_vm(struct src *c)
{
	struct smg_keepalive k;
	bool ka = smg_keepalive_start(&k, c->s, (1u << c->nchan) - 1) == SMG_OK;
	int r = c->be->ops->pause(c->be);

	if (ka)
		smg_keepalive_stop(&k);
	return r;
}

static enum src_state do_stopcopy(struct src *c)
{
	uint64_t bytes, npages, dirty;

	emit(c, SMG_EV_PHASE, SMG_PHASE_STOPCOPY, 0, 0, NULL);
	c->t_pause = smg_now_ns();
	if ((c->err = pause_vm(c)) != SMG_OK)
		return SRC_ABORTED;
	c->paused = true;
	if ((c->err = smg_engine_disks_pause(c->disks)) != SMG_OK)
		return SRC_ABORTED;
	smg_debug("downtime: paused after %.1f ms",
		  (double)(smg_now_ns() - c->t_pause) / 1e6);
	/* network: a paused VM does not answer. Held by this process only
	 * (netid_hold.c), so a crashed sender does not leave it deaf. */
	if (c->o->net != NULL && smg_netid_hold(c->o->net, c->info.name, c->info.nics,
						c->info.n_nics, &c->net_hold) != SMG_OK)
		smg_warn("could not silence the paused VM's NICs");
	smg_fault_crash(SMG_FI_SRC_AFTER_PAUSE);
	if (c->logdirty && (c->err = c->be->ops->logdirty_peek_clear(c->be, c->pending,
								     &dirty)) != SMG_OK)
		return SRC_ABORTED;
	/* stop-and-copy: the one round carries what is memory now */
	if (!c->logdirty && c->round == 0 && (c->err = first_round_set(c)) != SMG_OK)
		return SRC_ABORTED;
	if ((c->err = run_round(c, true, &bytes, &npages)) != SMG_OK ||
	    (c->err = check_memory(c)) != SMG_OK ||
	    (c->err = send_state_and_manifest(c)) != SMG_OK)
		return SRC_ABORTED;
	emit(c, SMG_EV_ROUND, SMG_PHASE_STOPCOPY, npages, 0, NULL);
	smg_debug("downtime: final round and manifest sent at +%.1f ms",
		  (double)(smg_now_ns() - c->t_pause) / 1e6);
	return SRC_HANDOVER;
}

static enum src_state do_handover(struct src *c)
{
	Smg__Commit cm = SMG__COMMIT__INIT;
	ProtobufCMessage *m;
	Smg__Ready *rd;

	emit(c, SMG_EV_PHASE, SMG_PHASE_VERIFY, 0, 0, NULL);
	if ((c->err = recv_ctrl(c->s, SMG_FT_READY, &smg__ready__descriptor, &m)) !=
	    SMG_OK)
		return SRC_ABORTED;
	rd = (Smg__Ready *)m;
	if (strcmp(rd->migration_id, c->st->migration_id) != 0 ||
	    rd->manifest_hash.len != SMG_DIGEST_LEN ||
	    sodium_memcmp(rd->manifest_hash.data, c->manifest_hash, SMG_DIGEST_LEN) !=
		0) {
		smg_peer_log(SMG_LOG_ERROR, "READY does not match our manifest");
		c->err = SMG_ERR_INTEGRITY;
	}
	if (c->err == SMG_OK) /* the countersigned receipt, before COMMIT */
		c->err = smg_audit_receipt_check(&c->am, c->s, c->o->policy, rd);
	smg_frame_msg_free(m);
	if (c->err != SMG_OK)
		return SRC_ABORTED;
	c->st->verified = true;
	smg_debug("downtime: READY at +%.1f ms",
		  (double)(smg_now_ns() - c->t_pause) / 1e6);
	/* Re-check before the point of no return (WireGuard re-checks its
	 * handshake state before committing): still paused, nothing failed. */
	if (!c->paused || c->state != SRC_HANDOVER)
		return c->err = SMG_ERR_STATE, SRC_ABORTED;
	/* The disks first: from here their copies stay held with the disk
	 * service even if this process dies (in doubt, like the VM). */
	if ((c->err = smg_engine_disks_commit(c->disks)) != SMG_OK)
		return SRC_ABORTED;
	if ((c->err = c->be->ops->mark_commit(c->be, c->st->migration_id,
					      c->o->peer != NULL ? c->o->peer : "-")) !=
	    SMG_OK)
		return SRC_ABORTED;
	/* network: from here the copy may be in doubt: its NICs go down for
	 * good (past this process) until DONE or resolve settles it. */
	if (c->o->net != NULL)
		smg_netid_set_links(c->o->net, c->info.name, c->info.nics, c->info.n_nics,
				    false);
	emit(c, SMG_EV_PHASE, SMG_PHASE_COMMIT, 0, 0, NULL);
	smg_debug("downtime: COMMIT recorded at +%.1f ms",
		  (double)(smg_now_ns() - c->t_pause) / 1e6);
	smg_fault_crash(SMG_FI_SRC_AFTER_COMMIT);
	cm.migration_id = c->st->migration_id;
	if ((c->err = smg_chan_send_msg(c->s, 0, SMG_FT_COMMIT, &cm.base)) != SMG_OK ||
	    (c->err = smg_chan_flush(c->s, 0)) != SMG_OK)
		return SRC_IN_DOUBT;
	return SRC_COMMITTED;
}

static enum src_state do_committed(struct src *c)
{
	ProtobufCMessage *m;
	int r;

	if ((c->err = recv_ctrl(c->s, SMG_FT_DONE, &smg__done__descriptor, &m)) != SMG_OK)
		return SRC_IN_DOUBT;
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
	return SRC_DONE;
}

/* Before COMMIT: tell the peer, stop tracking, give the VM its vCPUs back. */
static void abort_source(struct src *c)
{
	Smg__Abort a = SMG__ABORT__INIT;
	int r;

	a.reason = c->err == SMG_ERR_NOT_CONVERGED
		       ? SMG__ABORT_REASON__ABORT_NOT_CONVERGED
		   : c->err == SMG_ERR_INTEGRITY ? SMG__ABORT_REASON__ABORT_INTEGRITY
		   : c->err == SMG_ERR_BACKEND	 ? SMG__ABORT_REASON__ABORT_BACKEND
		   : c->err == SMG_ERR_POLICY	 ? SMG__ABORT_REASON__ABORT_POLICY
						 : SMG__ABORT_REASON__ABORT_UNSPECIFIED;
	a.detail = c->why[0] != '\0' ? c->why : (char *)smg_strerror(c->err);
	a.error = c->err;
	if (c->err != SMG_ERR_EOF && c->err != SMG_ERR_CUT && c->err != SMG_ERR_ABORTED &&
	    c->err != SMG_ERR_TIMEOUT && c->err != SMG_ERR_SYS)
		smg_chan_send_msg(c->s, 0, SMG_FT_ABORT, &a.base);
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
static void audit_end(struct src *c)
{
	struct smg_audit_result res = {.id = c->st->migration_id,
				       .domain = c->st->domain,
				       .err = c->err,
				       .reason = c->why[0] != '\0' ? c->why : NULL,
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

static enum src_state step(struct src *c)
{
	switch (c->state) {
	case SRC_SETUP:
		emit(c, SMG_EV_PHASE, SMG_PHASE_SETUP, 0, 0, NULL);
		c->err = do_setup(c);
		return c->err == SMG_OK ? SRC_PRECOPY : SRC_ABORTED;
	case SRC_PRECOPY:
		return do_precopy(c);
	case SRC_STOPCOPY:
		return do_stopcopy(c);
	case SRC_HANDOVER:
		return do_handover(c);
	case SRC_COMMITTED:
		return do_committed(c);
	case SRC_DONE:
	case SRC_ABORTED:
	case SRC_IN_DOUBT:
		break;
	}
	return c->state;
}

int smg_engine_send(struct smg_session *s, const struct smg_send_opts *o,
		    struct smg_mig_stats *st)
{
	struct src c = {.state = SRC_SETUP, .s = s, .o = o, .st = st};

	memset(st, 0, sizeof(*st));
	c.t_start = smg_now_ns();
	c.nchan = smg_session_channels(s);
	if (c.nchan == 0 || c.nchan > SMG_CHANNELS_MAX)
		return SMG_ERR_INVAL;
	pthread_mutex_init(&c.rl.lock, NULL);
	smg_audit_mig_init(&c.am, true);
	c.rl.rate = o->bandwidth;
	smg_precopy_init(&c.pc, o->rule, o->max_downtime_ms, o->max_rounds,
			 o->auto_converge);
	while (c.state != SRC_DONE && c.state != SRC_ABORTED && c.state != SRC_IN_DOUBT)
		c.state = step(&c);
	if (c.state == SRC_ABORTED) {
		abort_source(&c);
		smg_err("migration aborted: %s; the source VM is %s", smg_strerror(c.err),
			c.paused ? "PAUSED (could not resume it)" : "running");
		audit_end(&c);
		emit(&c, SMG_EV_PHASE, SMG_PHASE_ABORTED, 0, 0, smg_strerror(c.err));
	} else if (c.state == SRC_IN_DOUBT) {
		smg_err(
		    "link lost after COMMIT (%s): outcome in doubt; the source keeps its "
		    "paused copy; run 'secmig resolve --domain %s'",
		    smg_strerror(c.err), st->domain);
		c.err = SMG_ERR_IN_DOUBT;
		audit_end(&c);
		emit(&c, SMG_EV_PHASE, SMG_PHASE_IN_DOUBT, 0, 0, NULL);
	} else {
		audit_end(&c);
		emit(&c, SMG_EV_PHASE, SMG_PHASE_DONE, 0, 0, NULL);
	}
	st->total_ms = (smg_now_ns() - c.t_start) / 1000000;
	smg_netid_release(c.net_hold); /* in doubt: the vifs stay down past us */
	smg_merkle_free(c.mk);
	smg_engine_disks_free(c.disks);
	free(c.pending);
	smg_backend_close(c.be);
	pthread_mutex_destroy(&c.rl.lock);
	return c.err;
}
