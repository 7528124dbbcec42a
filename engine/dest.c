/* The destination state machine (DESIGN §1, §6, §7):
 *   WAIT_PLAN -> RECEIVING -> VERIFY -> READY_SENT -> RESUMED
 * where RECEIVING follows channel 0 through the rounds (WAIT_ROUND,
 * IN_ROUND, FINAL_ROUND) to DEVICE_STATE, VTPM_STATE and MANIFEST; every
 * frame on channel 0 is admitted by engine/states.c's table before it is
 * parsed, and each state's work ends in the input the table follows.
 * Before COMMIT every failure discards the incoming copy; COMMIT is
 * recorded durably before the VM resumes, so `secmig resolve` can always
 * learn the truth. A resolve query (RESOLVE_QUERY first) is answered from
 * those records. */
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "attest/attest.h"
#include "audit/audit.h"
#include "base/base.h"
#include "engine/internal.h"
#include "proto/proto.h"
#include "secmig.pb-c.h"
#include "transport/transport.h"

#define HASHER_NAP_NS 2000000L /* 2 ms between passes */

struct dst {
	enum dst_state state;
	struct smg_session *s;
	const struct smg_recv_opts *o;
	struct smg_mig_stats *st;
	struct smg_backend *be;
	struct smg_domain_info info;
	struct smg_xfer_dest xd;
	struct smg_engine_disks *disks;
	struct smg_xfer_recv rx[SMG_CHANNELS_MAX];
	unsigned threads;
	pthread_t hasher;
	bool hashing, hasher_quit; /* quit: under xd.lock */
	bool committed;
	bool nics_built;	  /* network: NICs prepared on this host */
	struct smg_announce *ann; /* network: clean-up running after resume */
	Smg__Manifest *manifest;
	uint8_t manifest_hash[SMG_DIGEST_LEN], config_hash[SMG_DIGEST_LEN];
	uint8_t device_hash[SMG_DIGEST_LEN], vtpm_hash[SMG_DIGEST_LEN];
	bool recorded, have_vtpm;
	uint64_t t_start;
	uint64_t load_ns; /* restore + verify + resume: our load time */
	/* When the final round began: the source paused just before it, so
	 * from here to our resume is the downtime as this host sees it (short
	 * of the real one by a one-way network latency). */
	uint64_t t_final;
	int err;
	Smg__AbortReason reason;
	char why[256];	 /* ABORT detail when set (policy) */
	bool peer_abort; /* the source aborted: no ABORT back */
	char what[256];	 /* verification: what differed (quarantine reason) */
	const struct smg_frame *first;
	struct smg_audit_mig am;   /* evidence and the record (audit/) */
	struct smg_vm_build build; /* what this host builds (plan_check.c) */
	uint64_t disk_total, reserved_mem;
	bool reserved; /* capacity held in o->capacity */
};

/* The live view (`secmig status` on this host) follows the phases. */
static void live_phase(struct dst *d, enum smg_phase ph)
{
	struct smg_live *l = d->o->live;

	if (l == NULL)
		return;
	smg_live_lock(l);
	snprintf(l->st.migration_id, sizeof(l->st.migration_id), "%s",
		 d->st->migration_id);
	snprintf(l->st.domain, sizeof(l->st.domain), "%s", d->st->domain);
	snprintf(l->st.peer, sizeof(l->st.peer), "%s", d->st->peer);
	l->st.phase = ph;
	l->st.ram_pages = d->info.pages;
	l->st.round = d->xd.known_round > 0 ? d->xd.known_round - 1 : 0;
	smg_live_unlock(l);
	if (ph == SMG_PHASE_PRECOPY && d->xd.nchan > 0)
		smg_live_attach_rx(l, &d->xd.bytes, &d->xd.pages, &d->xd.zeros);
}

static void emit(struct dst *d, enum smg_event_kind kind, enum smg_phase ph,
		 const char *info)
{
	struct smg_event ev = {.kind = kind, .phase = ph, .info = info, .st = d->st};

	d->st->total_ms = (smg_now_ns() - d->t_start) / 1000000;
	if (kind == SMG_EV_PHASE)
		live_phase(d, ph);
	if (d->o->event != NULL)
		d->o->event(d->o->event_arg, &ev);
}

/* The operator's detail: on this side, which host failed and why. */
static void set_detail(struct dst *d, bool peer, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_detail(struct dst *d, bool peer, const char *fmt, ...)
{
	va_list ap;

	if (d->st->detail[0] != '\0')
		return;
	d->st->peer_failed = peer;
	va_start(ap, fmt);
	vsnprintf(d->st->detail, sizeof(d->st->detail), fmt, ap);
	va_end(ap);
}

/* The destination's measured load time, per backend, from the previous
 * migration: the source counts it into its downtime estimate. */
static void load_path(const struct smg_recv_opts *o, char *p, size_t n)
{
	snprintf(p, n, "%s/load-ms.%s", o->state_dir, o->backend);
}

uint32_t smg_dest_load_ms(const struct smg_recv_opts *o)
{
	char p[600], buf[16];
	unsigned long v = 0;
	FILE *f;

	load_path(o, p, sizeof(p));
	if ((f = fopen(p, "re")) == NULL)
		return 0;
	if (fgets(buf, sizeof(buf), f) != NULL)
		v = strtoul(buf, NULL, 10);
	fclose(f);
	return v > 600000 ? 0 : (uint32_t)v;
}

/* Smoothed over migrations: one slow sample (a loaded host) must not
 * make every later source refuse to stop. */
static void load_ms_update(const struct smg_recv_opts *o, uint64_t sample)
{
	uint64_t old = smg_dest_load_ms(o), ms = old == 0 ? sample : (old + sample) / 2;
	char p[600], tmp[620];
	FILE *f;

	load_path(o, p, sizeof(p));
	snprintf(tmp, sizeof(tmp), "%s.tmp", p);
	if ((f = fopen(tmp, "we")) == NULL)
		return;
	fprintf(f, "%llu\n", (unsigned long long)ms);
	if (fclose(f) == 0)
		rename(tmp, p);
	else
		unlink(tmp);
}

/* PLAN_ACK: accepted, or refused with the reason code of err and the
 * detail (also kept for our own report). */
static int reply_plan(struct dst *d, int err, const char *why)
{
	Smg__PlanAck a = SMG__PLAN_ACK__INIT;

	a.accepted = err == SMG_OK;
	if (err != SMG_OK) {
		a.code = smg_reason_from_err(err);
		a.error = err;
		a.reason = (char *)why;
		d->reason = a.code;
		d->peer_abort = true; /* the refusal says it all: no ABORT after it */
		set_detail(d, false, "refused the plan: %s", why);
	} else {
		a.reason = (char *)"";
		a.load_ms = smg_dest_load_ms(d->o);
	}
	return smg_chan_send_msg(d->s, 0, SMG_FT_PLAN_ACK, &a.base);
}

static int start_threads(struct dst *d)
{
	d->rx[0] = (struct smg_xfer_recv){.d = &d->xd, .chan = 0}; /* this thread's */
	for (unsigned c = 1; c < d->xd.nchan; c++) {
		d->rx[c] = (struct smg_xfer_recv){.d = &d->xd, .chan = c};
		if (smg_log_thread_create(&d->rx[c].tid, smg_xfer_recv_main, &d->rx[c]) !=
		    0)
			return SMG_ERR_SYS;
		d->threads = c;
	}
	return SMG_OK;
}

static void stop_threads(struct dst *d)
{
	if (d->xd.nchan == 0)
		return; /* the plan never got that far */
	pthread_mutex_lock(&d->xd.lock);
	d->xd.stop = true;
	pthread_cond_broadcast(&d->xd.cond);
	pthread_mutex_unlock(&d->xd.lock);
}

static int join_threads(struct dst *d)
{
	int r = SMG_OK;

	for (unsigned c = 1; c <= d->threads; c++) {
		pthread_join(d->rx[c].tid, NULL);
		if (r == SMG_OK && !d->rx[c].finished)
			r = SMG_ERR_PROTO;
	}
	d->threads = 0;
	return atomic_load(&d->xd.err) ?: r;
}

/* The plan's disks as new disks of this host's disk service, under the
 * names the build chose (DOMAIN.i; the service keeps them in its storage
 * directory, the definitions' `storage`): a disk from the peer never names
 * our paths. Sizes were checked against the definitions already. */
static int open_disks(struct dst *d, const Smg__Plan *p)
{
	uint64_t sizes[SMG_DOMAIN_DISKS_MAX];
	uint32_t chunks[SMG_DOMAIN_DISKS_MAX];
	const char *sock =
	    d->o->disk_socket != NULL ? d->o->disk_socket : d->o->state_dir;
	const char *names[SMG_DOMAIN_DISKS_MAX];

	if (p->n_disks != d->build.n_disks)
		return SMG_ERR_PROTO;
	if (p->n_disks == 0 || p->storage_mode == SMG__STORAGE_MODE__STORAGE_NONE)
		return SMG_OK; /* none, or shared storage: nothing travels */
	for (size_t i = 0; i < p->n_disks; i++) {
		if (p->disks[i]->index != i || p->disks[i]->size > SMG_STG_DISK_MAX)
			return SMG_ERR_PROTO;
		sizes[i] = p->disks[i]->size;
		chunks[i] = p->disks[i]->chunk_size;
		names[i] = d->build.disk_name[i];
	}
	return smg_engine_disks_dst_open(sock != NULL ? sock : ".", names, p->n_disks,
					 sizes, chunks, &d->disks);
}

/* Folds arriving pages into the Merkle tree while they arrive, so that at
 * stop-and-copy only the last round's paths are left to hash. */
static void *hasher_main(void *arg)
{
	struct dst *d = arg;
	uint8_t root[SMG_DIGEST_LEN];
	struct timespec nap = {0, HASHER_NAP_NS};

	for (;;) {
		/* Through the final round too: in a stop-and-copy that is all
		 * of memory, and folding it here overlaps the transfer instead
		 * of adding to the downtime at VERIFY. */
		pthread_mutex_lock(&d->xd.lock);
		bool stop = d->xd.stop || d->hasher_quit;
		pthread_mutex_unlock(&d->xd.lock);
		if (stop)
			break;
		smg_merkle_root(d->xd.mk, root);
		nanosleep(&nap, NULL);
	}
	return NULL;
}

static void stop_hasher(struct dst *d)
{
	if (!d->hashing)
		return;
	pthread_mutex_lock(&d->xd.lock);
	d->hasher_quit = true;
	pthread_mutex_unlock(&d->xd.lock);
	pthread_join(d->hasher, NULL);
	d->hashing = false;
}

/* Access control and placement against this host's policy: first who may
 * send which domain (before anything is allocated), then, with the labels
 * of the config the backend parsed, whether the VM may be placed here. */
static int check_policy(struct dst *d, const char *domain, bool placement)
{
	const char *labels[SMG_DOMAIN_LABELS_MAX];
	const char *peer = smg_session_peer_name(d->s);
	unsigned n = placement ? d->info.n_labels : 0;

	if (d->o->policy == NULL)
		return SMG_OK;
	for (unsigned i = 0; i < n; i++)
		labels[i] = d->info.labels[i];
	if (smg_policy_check_migration(d->o->policy, SMG_POLICY_AS_RECEIVER, peer, domain,
				       labels, n, d->why, sizeof(d->why)) == SMG_OK)
		return SMG_OK;
	smg_err("policy refuses %s from '%s': %s", domain, peer, d->why);
	set_detail(d, false, "policy here refuses %s from '%s': %s", domain, peer,
		   d->why);
	d->reason = SMG__ABORT_REASON__ABORT_POLICY;
	return SMG_ERR_POLICY;
}

/* A refusal by this host's policy or definitions goes back as ABORT
 * {POLICY, why} (the sender exits 5, as we do); anything else as a
 * refused PLAN_ACK. */
static int refuse_plan(struct dst *d, int err, const char *why)
{
	if (err != SMG_ERR_POLICY) {
		reply_plan(d, err, why);
		return err;
	}
	if (why != d->why)
		snprintf(d->why, sizeof(d->why), "%s", why);
	d->reason = SMG__ABORT_REASON__ABORT_POLICY;
	if (d->am.stage == NULL)
		d->am.stage = "plan"; /* the audit record: definitions, capacity */
	char safe[sizeof(d->why) * 6];
	smg_log_escape(d->why, safe, sizeof(safe)); /* may quote the sender */
	smg_err("plan for '%s' from '%s' refused: %s", d->st->domain,
		smg_session_peer_name(d->s), safe);
	set_detail(d, false, "plan refused here: %s", safe);
	return err;
}

/* The plan is a request (docs/hostdef.md): its own fields, the policy's
 * ACL, then this host's definition and capacity, all before the backend
 * allocates anything; the backend then builds from d->build only. */
static int match_plan(struct dst *d, const Smg__Plan *p)
{
	const char *peer = smg_session_peer_name(d->s);
	int r;

	if (!smg_migration_id_valid(p->migration_id) ||
	    !smg_name_ok(p->domain_name, SMG_DOMAIN_NAME_MAX) ||
	    p->config_hash.len != SMG_DIGEST_LEN ||
	    sodium_memcmp(p->config_hash.data, d->config_hash, SMG_DIGEST_LEN) != 0) {
		reply_plan(d, SMG_ERR_PROTO,
			   "malformed plan (migration id, domain name or config hash)");
		return SMG_ERR_PROTO;
	}
	if (strcmp(p->backend, d->o->backend) != 0) {
		char why[SMG_ENGINE_DETAIL_MAX], theirs[32];
		smg_peer_text(p->backend, theirs, sizeof(theirs));
		snprintf(why, sizeof(why), "this host runs backend '%s', not '%s'",
			 d->o->backend, theirs);
		reply_plan(d, SMG_ERR_NO_BACKEND, why);
		return SMG_ERR_NO_BACKEND;
	}
	if ((r = check_policy(d, p->domain_name, false)) != SMG_OK)
		return r;
	/* The operator's ticket (audit/): signature, role, scope, expiry
	 * (single use is spent below, once the plan is accepted); its digest
	 * goes into the record either way. */
	if ((r = smg_audit_admit(d->o->audit, &d->am, d->s, p->domain_name,
				 p->ticket.data, p->ticket.len, d->why,
				 sizeof(d->why))) != SMG_OK)
		return refuse_plan(d, r, d->why);
	if (d->o->defs == NULL)
		return refuse_plan(d, SMG_ERR_POLICY,
				   "this receiver has no VM definitions (recv --defs)");
	if ((r = smg_plan_check(p, d->o->defs, peer, d->o->defs->storage, &d->build,
				&d->disk_total)) != SMG_OK)
		return refuse_plan(d, r, d->build.why);
	for (unsigned i = 0; d->o->net != NULL && i < d->build.n_nics; i++)
		if (strcmp(d->build.bridge[i], d->o->net->bridge) != 0)
			return refuse_plan(d, SMG_ERR_POLICY,
					   "nic: its definition names a bridge this "
					   "receiver does not manage (--net-bridge)");
	if (d->o->capacity != NULL &&
	    (r = smg_capacity_reserve(d->o->capacity, peer, p->memory_bytes,
				      d->disk_total, d->why, sizeof(d->why))) != SMG_OK)
		return refuse_plan(d, r, d->why);
	/* Only a plan this host accepts spends the operator's ticket. */
	if ((r = smg_audit_spend(d->o->audit, &d->am, d->why, sizeof(d->why))) !=
	    SMG_OK) {
		if (d->o->capacity != NULL)
			smg_capacity_release(d->o->capacity, peer, p->memory_bytes,
					     d->disk_total);
		d->am.stage = "ticket";
		return refuse_plan(d, r, d->why);
	}
	d->reserved = d->o->capacity != NULL;
	d->reserved_mem = p->memory_bytes;
	return SMG_OK;
}

/* The built domain must be what the plan asked for and the build allowed. */
static bool info_matches(const struct dst *d, const Smg__Plan *p)
{
	if (d->info.page_size != p->page_size ||
	    d->info.pages * d->info.page_size != p->memory_bytes ||
	    strcmp(d->info.name, p->domain_name) != 0 ||
	    d->info.has_vtpm != p->has_vtpm || d->info.vcpus != p->vcpus ||
	    d->info.n_nics != d->build.n_nics)
		return false;
	for (unsigned i = 0; i < d->info.n_nics; i++)
		if (memcmp(&d->info.nics[i], &d->build.nics[i], sizeof(struct smg_nic)) !=
		    0)
			return false;
	return true;
}

/* The plan is accepted and the domain built: the record, the NICs, the
 * disks and the receiving threads, each refused with its reason. */
static int prepare_receive(struct dst *d, const Smg__Plan *p)
{
	int r;

	/* The record exists (and its directory entry is durable) before any
	 * page moves, so COMMIT later costs one in-place write and sync. It
	 * names the source's key: only that host may later resolve it. */
	struct smg_outcome_rec rec = {.state = SMG_OUTCOME_RECEIVING};
	snprintf(rec.domain, sizeof(rec.domain), "%s", d->info.name);
	snprintf(rec.source, sizeof(rec.source), "%s", smg_session_peer_name(d->s));
	memcpy(rec.source_key, smg_session_peer_key(d->s), sizeof(rec.source_key));
	if ((r = smg_outcome_create(d->o->state_dir, d->st->migration_id, &rec)) !=
	    SMG_OK) {
		reply_plan(d, smg_err_classify(r),
			   r == SMG_ERR_EXISTS ? "migration id already used here"
					       : "cannot record the migration");
		return r;
	}
	d->recorded = true;
	/* network: the NICs exist, silent (vifs down), before any VM data. */
	if (d->o->net != NULL &&
	    (r = smg_netid_dest_prepare(d->o->net, d->info.name, d->info.nics,
					d->info.n_nics)) != SMG_OK) {
		reply_plan(d, r, "cannot build the VM's NICs on this host");
		return r;
	}
	d->nics_built = d->o->net != NULL;
	d->st->ram_bytes = p->memory_bytes;
	if ((r = open_disks(d, p)) != SMG_OK) {
		r = smg_err_classify(r);
		reply_plan(d, r,
			   r == SMG_ERR_DISK_FULL ? "no space for the disk images"
						  : "cannot create the disk images");
		return r;
	}
	d->xd = (struct smg_xfer_dest){.disks = d->disks,
				       .s = d->s,
				       .be = d->be,
				       .npages = d->info.pages,
				       .page_size = d->info.page_size,
				       .nchan = smg_session_channels(d->s),
				       .final_round = -1};
	pthread_mutex_init(&d->xd.lock, NULL);
	smg_engine_cond_init(&d->xd.cond);
	if ((r = smg_merkle_new(d->info.pages, d->info.page_size, &d->xd.mk)) != SMG_OK ||
	    (r = start_threads(d)) != SMG_OK) {
		r = SMG_ERR_CAPACITY;
		reply_plan(d, r, "out of resources");
		return r;
	}
	if (smg_log_thread_create(&d->hasher, hasher_main, d) == 0)
		d->hashing = true;
	return SMG_OK;
}

static int on_plan(struct dst *d, const struct smg_frame *f)
{
	ProtobufCMessage *m;
	Smg__Plan *p;
	int r;

	if ((r = smg_frame_unpack(f, &smg__plan__descriptor, &m)) != SMG_OK)
		return r;
	p = (Smg__Plan *)m;
	/* The plan is the peer's claim: its id and domain name reach our
	 * events, logs and records only once they are well-formed. */
	if (smg_migration_id_valid(p->migration_id))
		snprintf(d->st->migration_id, sizeof(d->st->migration_id), "%s",
			 p->migration_id);
	if (smg_name_ok(p->domain_name, SMG_DOMAIN_NAME_MAX))
		snprintf(d->st->domain, sizeof(d->st->domain), "%s", p->domain_name);
	smg_log_ctx_set(d->st->migration_id, d->st->peer, d->st->domain);
	smg_engine_hash(p->domain_config.data, p->domain_config.len, d->config_hash);
	if ((r = match_plan(d, p)) != SMG_OK)
		goto out;
	snprintf(d->st->domain, sizeof(d->st->domain), "%s", p->domain_name);
	r = d->be->ops->domain_create(d->be, p->domain_config.data, p->domain_config.len,
				      &d->build, &d->info);
	if (r == SMG_ERR_POLICY) {
		r = refuse_plan(d, r, d->build.why);
		goto out;
	}
	if (r == SMG_OK && (r = check_policy(d, p->domain_name, true)) != SMG_OK)
		goto out;
	if (r == SMG_OK && !info_matches(d, p))
		r = SMG_ERR_PROTO;
	if (r == SMG_ERR_EXISTS)
		r = SMG_ERR_DOMAIN_EXISTS;
	else if (r == SMG_ERR_BUSY || r == SMG_ERR_NOMEM)
		r = SMG_ERR_CAPACITY;
	if (r != SMG_OK) {
		char why[SMG_ENGINE_DETAIL_MAX];
		snprintf(why, sizeof(why), "domain '%s': %s", d->st->domain,
			 r == SMG_ERR_DOMAIN_EXISTS
			     ? "a domain of that name already exists on this host"
			     : smg_strerror(r));
		reply_plan(d, r, why);
		goto out;
	}
	if ((r = prepare_receive(d, p)) == SMG_OK)
		r = reply_plan(d, SMG_OK, "");
out:
	smg_frame_msg_free(m);
	return r;
}

/* A frame the peer sent on channel 0 as input in to the current state:
 * admitted, or the peer's protocol error. */
static int admit(struct dst *d, uint8_t type, enum smg_dst_input in)
{
	enum dst_state next;

	if (smg_dst_next_state(d->state, in, d->info.has_vtpm, &next) == SMG_OK)
		return SMG_OK;
	smg_peer_log(SMG_LOG_ERROR, "frame 0x%02x not valid in state %s", type,
		     smg_dst_state_name(d->state));
	return SMG_ERR_STATE;
}

/* ROUND_START: a final one is its own input (the source paused). */
static int on_round_start(struct dst *d, const struct smg_frame *f,
			  enum smg_dst_input *in)
{
	ProtobufCMessage *m;
	Smg__RoundStart *rs;
	int r;

	if ((r = smg_frame_unpack(f, &smg__round_start__descriptor, &m)) != SMG_OK)
		return r;
	rs = (Smg__RoundStart *)m;
	*in = rs->final ? DST_IN_FINAL_START : DST_IN_ROUND_START;
	if ((r = admit(d, f->type, *in)) != SMG_OK) {
		smg_frame_msg_free(m);
		return r;
	}
	pthread_mutex_lock(&d->xd.lock);
	/* Rounds count up from 0; the state says channel 0 ended the one
	 * before and that none was final. */
	if (rs->round != d->xd.known_round) {
		smg_peer_log(SMG_LOG_ERROR, "ROUND_START %u out of sequence (next %u)",
			     rs->round, d->xd.known_round);
		r = SMG_ERR_STATE;
	} else {
		d->xd.known_round = rs->round + 1;
		if (rs->final) {
			d->xd.final_round = rs->round;
			d->t_final = smg_now_ns(); /* the source has paused */
		}
		pthread_cond_broadcast(&d->xd.cond);
	}
	pthread_mutex_unlock(&d->xd.lock);
	if (r == SMG_OK && rs->round == 1)
		smg_fault_crash(SMG_FI_DST_AFTER_ROUND0);
	if (r == SMG_OK && rs->final)
		emit(d, SMG_EV_PHASE, SMG_PHASE_STOPCOPY, NULL);
	smg_frame_msg_free(m);
	return r;
}

/* The state may only follow the last page: a backend such as xen ends its
 * restore stream with it. The source sends DEVICE_STATE after every
 * channel's final ROUND_END, but the channels are separate streams, so wait
 * here until each data channel thread has handled its own. */
static int wait_data_channels(struct dst *d)
{
	uint64_t t0 = smg_now_ms();
	int r = SMG_OK;

	pthread_mutex_lock(&d->xd.lock);
	while (d->xd.chans_done < d->threads && atomic_load(&d->xd.err) == SMG_OK &&
	       r == SMG_OK)
		r = smg_engine_cond_wait(&d->xd.cond, &d->xd.lock, d->s, t0);
	pthread_mutex_unlock(&d->xd.lock);
	if (r != SMG_OK || (r = atomic_load(&d->xd.err)) != SMG_OK)
		return r;
	if ((r = join_threads(d)) == SMG_OK)
		smg_debug(
		    "data channels finished the final round %llu ms after the state",
		    (unsigned long long)(smg_now_ms() - t0));
	return r;
}

/* The backend's restore can take long (xen: libxl finishing the domain);
 * the source meanwhile waits for READY: keep the control channel alive. */
static int restore_state(struct dst *d, const uint8_t *blob, size_t len)
{
	struct smg_keepalive k;
	uint64_t t0 = smg_now_ms();
	bool ka = smg_keepalive_start(&k, d->s, 1u << 0) == SMG_OK;
	int r = d->be->ops->restore_state(d->be, blob, len);

	if (ka)
		smg_keepalive_stop(&k);
	d->load_ns += (smg_now_ms() - t0) * 1000000ull;
	smg_info("state restored by the backend in %llu ms (%u keepalives)",
		 (unsigned long long)(smg_now_ms() - t0), ka ? k.pings : 0);
	return r;
}

static int on_device_state(struct dst *d, const struct smg_frame *f)
{
	ProtobufCMessage *m;
	Smg__DeviceState *ds;
	int r;

	if ((r = smg_frame_unpack(f, &smg__device_state__descriptor, &m)) != SMG_OK)
		return r;
	ds = (Smg__DeviceState *)m;
	if (ds->vcpu_count != d->info.vcpus ||
	    ds->device_context.len > SMG_DOMAIN_STATE_MAX)
		r = SMG_ERR_PROTO;
	else if ((r = wait_data_channels(d)) == SMG_OK)
		r = restore_state(d, ds->device_context.data, ds->device_context.len);
	smg_engine_hash(ds->device_context.data, ds->device_context.len, d->device_hash);
	smg_frame_msg_free(m);
	return r;
}

static int on_manifest(struct dst *d, const struct smg_frame *f)
{
	ProtobufCMessage *m;
	int r;

	if ((r = smg_frame_unpack(f, &smg__manifest__descriptor, &m)) != SMG_OK)
		return r;
	d->manifest = (Smg__Manifest *)m;
	smg_engine_hash(f->payload, f->len, d->manifest_hash);
	return SMG_OK;
}

/* The source ended it: its reason becomes our error (same exit code on
 * both sides); its text is untrusted. */
static int on_peer_abort(struct dst *d, const struct smg_frame *f)
{
	ProtobufCMessage *m;
	char why[SMG_ENGINE_DETAIL_MAX];
	int r = SMG_ERR_ABORTED;

	d->peer_abort = true;
	if (smg_frame_unpack(f, &smg__abort__descriptor, &m) == SMG_OK) {
		Smg__Abort *a = (Smg__Abort *)m;
		smg_peer_text(a->detail, why, sizeof(why));
		r = smg_reason_to_err(a->reason, SMG_ERR_ABORTED);
		d->reason = a->reason;
		set_detail(d, true, "source '%s' aborted: %s", d->st->peer, why);
		smg_frame_msg_free(m);
	} else {
		set_detail(d, true, "source '%s' aborted", d->st->peer);
	}
	smg_peer_log(SMG_LOG_WARN, "%s", d->st->detail);
	return r;
}

/* A data channel ended: a source that aborts says ABORT on channel 0 and
 * then closes every channel, which another channel's thread may notice
 * first. Read on to the ABORT so its reason, not "cut", is the outcome. */
static int abort_reason(struct dst *d, int err)
{
	struct smg_frame f;
	int r;

	while ((r = smg_chan_recv(d->s, 0, &f)) == SMG_OK || r == SMG_ERR_INTERRUPTED)
		if (r == SMG_OK && f.type == SMG_FT_ABORT)
			return on_peer_abort(d, &f);
	return err;
}

/* A frame impossible in sequence is the peer's protocol error: the ABORT
 * says so (exit 10 on both sides). */
static void protocol_reason(struct dst *d)
{
	if (d->reason == SMG__ABORT_REASON__ABORT_UNSPECIFIED &&
	    (d->err == SMG_ERR_PROTO || d->err == SMG_ERR_STATE))
		d->reason = SMG__ABORT_REASON__ABORT_PROTOCOL;
}

/* Every data channel ended with the final round's ROUND_END: anything it
 * holds beyond that came after the final round. */
static int nothing_after_final(struct dst *d)
{
	for (unsigned c = 1; c < d->xd.nchan; c++)
		if (smg_chan_has_input(d->s, c)) {
			smg_peer_log(SMG_LOG_ERROR,
				     "channel %u: a frame after the final round", c);
			return SMG_ERR_STATE;
		}
	return SMG_OK;
}

/* The next frame on channel 0. A channel thread that failed, or a cancel,
 * interrupts the wait: abort now (the thread keeps draining its channel). */
static int next_frame(struct dst *d, struct smg_frame *f)
{
	int r;

	for (;;) {
		if (smg_live_cancelled(d->o->live))
			return SMG_ERR_CANCELLED;
		if ((r = atomic_load(&d->xd.err)) != SMG_OK) {
			if (r == SMG_ERR_CUT || r == SMG_ERR_EOF)
				r = abort_reason(d, r);
			return r;
		}
		if ((r = smg_chan_recv(d->s, 0, f)) != SMG_ERR_INTERRUPTED)
			return r;
	}
}

static int on_vtpm_state(struct dst *d, const struct smg_frame *f)
{
	int r = smg_engine_vtpm_recv(f, d->info.vtpm_ctrl, d->vtpm_hash);

	d->have_vtpm = r == SMG_OK;
	if (r == SMG_ERR_INTEGRITY)
		d->reason = SMG__ABORT_REASON__ABORT_INTEGRITY;
	return r;
}

/* RECEIVING (WAIT_ROUND to WAIT_MANIFEST): one frame on channel 0, its
 * rounds' pages and the state that follows them. */
static enum smg_dst_input do_receiving(struct dst *d)
{
	enum smg_dst_input in;
	struct smg_frame f;

	if ((d->err = next_frame(d, &f)) != SMG_OK)
		return protocol_reason(d), DST_IN_FAIL;
	in = smg_dst_input_of(f.type);
	if (in == DST_IN_ROUND_START)
		d->err = on_round_start(d, &f, &in);
	else if ((d->err = admit(d, f.type, in)) == SMG_OK) {
		switch (in) {
		case DST_IN_DATA:
		case DST_IN_ROUND_END:
			d->err = smg_xfer_recv_frame(&d->rx[0], f.type, f.payload, f.len);
			break;
		case DST_IN_DEVICE_STATE:
			d->err = on_device_state(d, &f);
			break;
		case DST_IN_VTPM_STATE:
			d->err = on_vtpm_state(d, &f);
			break;
		case DST_IN_MANIFEST:
			d->err = on_manifest(d, &f);
			break;
		case DST_IN_ABORT:
			d->err = on_peer_abort(d, &f);
			break;
		default: /* admitted in no RECEIVING state */
			d->err = SMG_ERR_STATE;
			break;
		}
	}
	protocol_reason(d);
	return d->err == SMG_OK ? in : DST_IN_FAIL;
}

static bool digest_eq(const ProtobufCBinaryData *b, const uint8_t *want)
{
	return b->len == SMG_DIGEST_LEN &&
	       sodium_memcmp(b->data, want, SMG_DIGEST_LEN) == 0;
}

/* Fault dst_bad_root: a page damaged after it arrived (bad RAM, a buggy
 * backend). */
static void damage_page(struct dst *d)
{
	uint8_t *junk = malloc(d->info.page_size);
	uint64_t pfn = 0;

	if (junk == NULL)
		return;
	memset(junk, 0xa5, d->info.page_size);
	d->be->ops->write_pages(d->be, &pfn, 1, junk, false);
	smg_merkle_set_leaf(d->xd.mk, 0, junk, d->info.page_size);
	free(junk);
}

/* recv --check-memory: the backend's memory hashed from scratch must give
 * the root the arriving pages gave. A test instrument: its time is taken
 * out of this host's load time (*t_verify moves on). */
static const char *recheck_memory(struct dst *d, uint64_t *t_verify)
{
	uint8_t fresh[SMG_DIGEST_LEN];
	struct smg_keepalive k;
	bool ka = smg_keepalive_start(&k, d->s, 1u << 0) == SMG_OK;
	uint64_t t0 = smg_now_ms();

	d->err = smg_merkle_of_memory(d->be, d->info.pages, d->info.page_size, fresh);
	if (ka)
		smg_keepalive_stop(&k);
	*t_verify += (smg_now_ms() - t0) * 1000000ull;
	smg_info("memory re-hashed from the backend in %llu ms",
		 (unsigned long long)(smg_now_ms() - t0));
	if (d->err == SMG_OK && memcmp(fresh, d->st->memory_root, SMG_DIGEST_LEN) != 0)
		return "memory (fresh recomputation)";
	return NULL;
}

/* What of the manifest differs from the copy that arrived, or NULL. */
static const char *manifest_mismatch(struct dst *d)
{
	const Smg__Manifest *mf = d->manifest;

	if (strcmp(mf->migration_id, d->st->migration_id) != 0)
		return "migration id";
	if (!digest_eq(&mf->memory_root, d->st->memory_root))
		return "memory root";
	if (!digest_eq(&mf->config_hash, d->config_hash))
		return "config hash";
	if (!digest_eq(&mf->device_hash, d->device_hash))
		return "device state hash";
	if (d->info.has_vtpm ? !d->have_vtpm || !digest_eq(&mf->vtpm_hash, d->vtpm_hash)
			     : mf->vtpm_hash.len != 0)
		return "vTPM state hash";
	if (smg_engine_disks_verify(d->disks, mf->n_disk_roots, mf->disk_roots,
				    d->o->check_memory) != SMG_OK)
		return "disk root";
	if (mf->transcript.len != SMG_TRANSCRIPT_LEN ||
	    sodium_memcmp(mf->transcript.data, smg_session_transcript(d->s),
			  SMG_TRANSCRIPT_LEN) != 0)
		return "session binding";
	if (smg_audit_manifest_check(&d->am, d->s, mf) != SMG_OK)
		return "manifest signature";
	return NULL;
}

/* READY, with the receipt countersigned (audit/), names the manifest. */
static int send_ready(struct dst *d)
{
	Smg__Ready rd = SMG__READY__INIT;
	int r;

	rd.migration_id = d->st->migration_id;
	rd.manifest_hash = (ProtobufCBinaryData){SMG_DIGEST_LEN, d->manifest_hash};
	if ((r = smg_audit_receipt_sign(d->o->audit, &d->am, d->s, &rd)) != SMG_OK ||
	    (r = smg_chan_send_msg(d->s, 0, SMG_FT_READY, &rd.base)) != SMG_OK)
		return r;
	return smg_chan_flush(d->s, 0);
}

static enum smg_dst_input do_verify(struct dst *d)
{
	const char *bad, *fresh = NULL;
	uint64_t t_verify = smg_now_ns();

	emit(d, SMG_EV_PHASE, SMG_PHASE_VERIFY, NULL);
	stop_hasher(d);
	if ((d->err = atomic_load(&d->xd.err)) != SMG_OK ||
	    (d->err = join_threads(d)) != SMG_OK ||
	    (d->err = nothing_after_final(d)) != SMG_OK)
		return protocol_reason(d), DST_IN_FAIL;
	if (smg_fault_on(SMG_FI_DST_BAD_ROOT))
		damage_page(d);
	smg_merkle_root(d->xd.mk, d->st->memory_root);
	if (d->o->check_memory)
		fresh = recheck_memory(d, &t_verify);
	if ((bad = manifest_mismatch(d)) == NULL)
		bad = fresh;
	if (bad != NULL || d->err != SMG_OK) {
		snprintf(d->what, sizeof(d->what),
			 "%s differs from the source's manifest",
			 bad != NULL ? bad : smg_strerror(d->err));
		smg_err(
		    "integrity check failed: %s; the incoming copy goes to quarantine",
		    d->what);
		set_detail(d, false, "integrity check failed here: %s", d->what);
		d->err = SMG_ERR_INTEGRITY;
		d->reason = SMG__ABORT_REASON__ABORT_INTEGRITY;
		return DST_IN_FAIL;
	}
	d->load_ns += smg_now_ns() - t_verify;
	d->st->verified = true;
	d->st->pages_sent = atomic_load(&d->xd.pages);
	d->st->zero_pages = atomic_load(&d->xd.zeros);
	d->st->bytes_sent = atomic_load(&d->xd.bytes);
	d->st->rounds = (unsigned)d->xd.final_round + 1;
	smg_fault_crash(SMG_FI_DST_BEFORE_READY);
	if ((d->err = send_ready(d)) != SMG_OK)
		return DST_IN_FAIL;
	return DST_IN_VERIFIED;
}

/* COMMIT for this migration, admitted in READY_SENT (else ABORT, or the
 * peer's protocol error). */
static int recv_commit(struct dst *d)
{
	enum smg_dst_input in;
	struct smg_frame f;
	ProtobufCMessage *m;
	int r;

	if ((r = next_frame(d, &f)) != SMG_OK)
		return r;
	in = smg_dst_input_of(f.type);
	if ((r = admit(d, f.type, in)) != SMG_OK)
		return r;
	if (in == DST_IN_ABORT)
		return on_peer_abort(d, &f);
	if ((r = smg_frame_unpack(&f, &smg__commit__descriptor, &m)) != SMG_OK)
		return r;
	r = strcmp(((Smg__Commit *)m)->migration_id, d->st->migration_id);
	smg_frame_msg_free(m);
	return r != 0 ? SMG_ERR_PROTO : SMG_OK;
}

/* Our point of no return: a cancel on this host that came first wins (the
 * source then ends in doubt and resolve resumes it there). The disks are
 * kept first (a crash after the record must find them); then the record:
 * if a resolve query already declared this migration discarded, COMMIT
 * loses (the record moved) and nothing resumes. */
static int record_commit(struct dst *d)
{
	int r;

	if (!smg_live_commit(d->o->live))
		return SMG_ERR_CANCELLED;
	if ((r = smg_engine_disks_commit(d->disks)) != SMG_OK ||
	    (r = smg_outcome_transition(d->o->state_dir, d->st->migration_id,
					SMG_OUTCOME_RECEIVING, SMG_OUTCOME_COMMITTED)) !=
		SMG_OK ||
	    (r = d->be->ops->mark_committed(d->be)) != SMG_OK)
		return r;
	d->committed = true;
	emit(d, SMG_EV_PHASE, SMG_PHASE_COMMIT, NULL);
	return SMG_OK;
}

/* The VM runs here: DONE to the source, the record says so. A failure now
 * costs the source a resolve, never the VM. */
static void announce_resumed(struct dst *d)
{
	Smg__Done dn = SMG__DONE__INIT;
	int r;

	/* network clean-up: the VM runs, so its NICs come up and announce it
	 * (from a thread, so DONE is not held up by the schedule). A failure
	 * here costs reachability, never the VM: warn, go on. */
	if (d->nics_built &&
	    (r = smg_netid_dest_resume(d->o->net, d->info.name, d->info.nics,
				       d->info.n_nics, NULL, d->o->announce_event,
				       d->o->announce_arg, &d->ann)) != SMG_OK)
		smg_warn("VM resumed but its NICs could not be brought up: %s",
			 smg_strerror(r));
	smg_fault_crash(SMG_FI_DST_NO_DONE);
	dn.migration_id = d->st->migration_id;
	dn.resumed_at_ms = smg_now_ms();
	if ((r = smg_chan_send_msg(d->s, 0, SMG_FT_DONE, &dn.base)) == SMG_OK)
		r = smg_chan_flush(d->s, 0);
	if (r != SMG_OK)
		smg_warn(
		    "VM resumed; DONE not delivered (%s): the source will resolve it",
		    smg_strerror(r));
	/* Outside the downtime: "committed" already makes resolve answer
	 * RUNNING (resuming a running domain is a no-op). */
	if ((r = smg_outcome_transition(d->o->state_dir, d->st->migration_id,
					SMG_OUTCOME_COMMITTED, SMG_OUTCOME_RESUMED)) !=
	    SMG_OK)
		smg_warn("VM resumed but its record could not be updated: %s",
			 smg_strerror(r));
}

static enum smg_dst_input do_ready_sent(struct dst *d)
{
	uint64_t t0;

	if ((d->err = recv_commit(d)) != SMG_OK || (d->err = record_commit(d)) != SMG_OK)
		return DST_IN_FAIL;
	smg_fault_crash(SMG_FI_DST_AFTER_COMMIT);
	t0 = smg_now_ns();
	if ((d->err = smg_engine_disks_resume(d->disks)) != SMG_OK ||
	    (d->err = d->be->ops->resume(d->be)) != SMG_OK)
		return DST_IN_FAIL;
	d->load_ns += smg_now_ns() - t0;
	if (d->t_final != 0)
		d->st->downtime_ms = (smg_now_ns() - d->t_final) / 1000000;
	load_ms_update(d->o, d->load_ns / 1000000);
	announce_resumed(d);
	return DST_IN_COMMIT;
}

/* A copy that failed verification: memory, config and a reason file go to
 * DIR/quarantine/ID before the domain is destroyed (the disks follow once
 * the channel threads are gone). */
static bool quarantine(struct dst *d, char *path, size_t n)
{
	struct smg_quarantine q = {.state_dir = d->o->state_dir,
				   .id = d->st->migration_id,
				   .domain = d->st->domain,
				   .source = d->st->peer,
				   .source_key = smg_session_peer_key(d->s),
				   .what = d->what,
				   .config = d->info.config,
				   .config_len = d->info.config_len,
				   .be = d->be,
				   .pages = d->info.pages,
				   .page_size = d->info.page_size};
	int r = smg_quarantine_save(&q, path, n);

	if (r != SMG_OK) {
		smg_err("quarantine of %s failed: %s; the copy is discarded instead",
			d->st->migration_id, smg_strerror(r));
		return false;
	}
	smg_warn("the incoming copy of '%s' is in quarantine: %s (see its reason file)",
		 d->st->domain, path);
	return true;
}

static void abort_dest(struct dst *d, char *qpath, size_t qn)
{
	Smg__Abort a = SMG__ABORT__INIT;
	struct smg_frame f;
	bool told = false;
	int r;

	/* The source ends the session once it has read the ABORT; every
	 * channel is drained until then (so it never fails a write on a
	 * channel nobody reads, or on a connection reset by a close with
	 * unread bytes, before it reads why), but for no longer than the idle
	 * limit: a peer that goes on sending does not hold this session (and
	 * its slot). A cancel interrupted every receive: they work again from
	 * here, before the channel threads are told to drain. */
	smg_session_set_deadline(d->s, smg_session_idle_limit(d->s));
	smg_session_resume(d->s);
	stop_threads(d);
	protocol_reason(d);
	if (d->err == SMG_ERR_DISK_FULL) {
		smg_err("no space left for the incoming disk images (the disk service "
			"at %s)",
			d->o->disk_socket != NULL ? d->o->disk_socket : d->o->state_dir);
		set_detail(d, false, "no space left for the incoming disk images");
	}
	if (smg_live_cancelled(d->o->live) && !d->peer_abort) {
		d->err = SMG_ERR_CANCELLED;
		d->reason = SMG__ABORT_REASON__ABORT_OPERATOR;
		set_detail(d, false, "cancelled on the destination (%s)",
			   smg_live_why(d->o->live));
	}
	if (d->err != SMG_ERR_EOF && d->err != SMG_ERR_CUT && d->err != SMG_ERR_ABORTED &&
	    d->err != SMG_ERR_TIMEOUT && !d->peer_abort) {
		told = true;
		a.reason = d->reason != 0 ? d->reason
					  : (Smg__AbortReason)smg_reason_from_err(d->err);
		a.detail = d->why[0] != '\0'	      ? d->why
			   : d->st->detail[0] != '\0' ? d->st->detail
						      : (char *)smg_strerror(d->err);
		a.error = d->err;
		smg_chan_send_msg(d->s, 0, SMG_FT_ABORT, &a.base);
		smg_chan_flush(d->s, 0);
	}
	if (told)
		while ((r = smg_chan_recv(d->s, 0, &f)) == SMG_OK ||
		       r == SMG_ERR_INTERRUPTED)
			;
	bool kept = !d->committed && d->err == SMG_ERR_INTEGRITY && d->recorded &&
		    quarantine(d, qpath, qn);
	if (!kept)
		qpath[0] = '\0';
	if (d->be != NULL && d->info.pages > 0 && !d->committed)
		d->be->ops->destroy(d->be);
	if (d->nics_built && !d->committed)
		smg_netid_remove_all(d->o->net, d->info.name, d->info.nics,
				     d->info.n_nics);
	if (d->recorded && !d->committed)
		smg_outcome_transition(
		    d->o->state_dir, d->st->migration_id, SMG_OUTCOME_RECEIVING,
		    kept ? SMG_OUTCOME_QUARANTINED : SMG_OUTCOME_DISCARDED);
}

static enum smg_dst_input do_wait_plan(struct dst *d)
{
	const struct smg_frame *f = d->first;
	enum smg_dst_input in = smg_dst_input_of(f->type);

	if ((d->err = admit(d, f->type, in)) != SMG_OK)
		return DST_IN_FAIL;
	if (in == DST_IN_ABORT) {
		/* The source gave up before planning (its policy, a cancel). */
		d->err = on_peer_abort(d, f);
		return DST_IN_FAIL;
	}
	emit(d, SMG_EV_PHASE, SMG_PHASE_SETUP, NULL);
	if ((d->err = on_plan(d, f)) != SMG_OK)
		return DST_IN_FAIL;
	emit(d, SMG_EV_PHASE, SMG_PHASE_PRECOPY, NULL);
	return DST_IN_PLAN;
}

/* The state's work, and the input it ended in. */
static enum smg_dst_input run_state(struct dst *d)
{
	if (smg_live_cancelled(d->o->live)) {
		d->err = SMG_ERR_CANCELLED;
		return DST_IN_FAIL;
	}
	switch (d->state) {
	case DST_WAIT_PLAN:
		return do_wait_plan(d);
	case DST_WAIT_ROUND:
	case DST_IN_ROUND:
	case DST_FINAL_ROUND:
	case DST_WAIT_STATE:
	case DST_WAIT_VTPM:
	case DST_WAIT_MANIFEST:
		return do_receiving(d);
	case DST_VERIFY:
		return do_verify(d);
	case DST_READY_SENT:
		return do_ready_sent(d);
	case DST_RESUMED:
	case DST_ABORTED:
		break;
	}
	return DST_IN_FAIL;
}

static enum dst_state step(struct dst *d)
{
	enum smg_dst_input in = run_state(d);
	enum dst_state next = d->state;

	if (smg_dst_next_state(d->state, in, d->info.has_vtpm, &next) == SMG_OK)
		return next;
	/* Frames were admitted before they were handled: a state's work
	 * ended in an input its row does not have, our bug. */
	smg_err("destination state machine: input %d in state %s", (int)in,
		smg_dst_state_name(d->state));
	if (d->err == SMG_OK)
		d->err = SMG_ERR_STATE;
	(void)smg_dst_next_state(d->state, DST_IN_FAIL, false, &next);
	return next;
}

/* The attempt's audit record, durable before the outcome is reported. */
static void audit_end(struct dst *d)
{
	struct smg_audit_result res = {.id = d->st->migration_id,
				       .domain = d->st->domain,
				       .err = d->err,
				       .reason = d->why[0] != '\0' ? d->why
						 : d->st->detail[0] != '\0'
						     ? d->st->detail
						     : NULL,
				       .total_ms = (smg_now_ns() - d->t_start) / 1000000,
				       .bytes = atomic_load(&d->xd.bytes),
				       .rounds = d->st->rounds,
				       .verified = d->st->verified};

	res.outcome =
	    d->state == DST_RESUMED ? "resumed"
	    : d->committed	    ? "committed"
	    : !d->recorded && (d->err == SMG_ERR_POLICY || d->err == SMG_ERR_UNKNOWN_PEER)
		? "refused"
		: "discarded";
	smg_audit_finish(d->o->audit, &d->am, d->s, &res);
}

static int serve_migration(struct smg_session *s, const struct smg_recv_opts *o,
			   const struct smg_frame *first, struct smg_mig_stats *st)
{
	struct dst d = {.state = DST_WAIT_PLAN, .s = s, .o = o, .st = st, .first = first};
	char qpath[1024] = "";

	d.t_start = smg_now_ns();
	snprintf(st->peer, sizeof(st->peer), "%s", smg_session_peer_name(s));
	smg_log_ctx_set(NULL, st->peer, NULL);
	smg_audit_mig_init(&d.am, false);
	smg_live_attach(o->live, s, NULL);
	if ((d.err = smg_backend_open(o->backend, &o->bopts, &d.be)) != SMG_OK) {
		/* Say so: a source must not read this as a network failure. */
		char why[SMG_ENGINE_DETAIL_MAX];
		d.err = SMG_ERR_NO_BACKEND;
		snprintf(why, sizeof(why), "backend '%s' is not available on this host",
			 o->backend);
		if (first->type == SMG_FT_PLAN)
			reply_plan(&d, d.err, why);
		smg_err("incoming migration refused: %s", why);
		smg_live_detach(o->live);
		return st->err = d.err;
	}
	while (d.state != DST_RESUMED && d.state != DST_ABORTED)
		d.state = step(&d);
	if (d.state == DST_ABORTED) {
		abort_dest(&d, qpath, sizeof(qpath));
		if (st->detail[0] == '\0')
			set_detail(&d, false, "%s", smg_strerror(d.err));
		smg_err("incoming migration %s aborted: %s; %s", st->migration_id,
			st->detail,
			d.committed ? "COMMIT is recorded: resolve will resume it"
			: qpath[0]  ? "the incoming copy is in quarantine"
				    : "the incoming copy is discarded");
		audit_end(&d);
		emit(&d, SMG_EV_PHASE, SMG_PHASE_ABORTED, st->detail);
	} else {
		audit_end(&d);
		emit(&d, SMG_EV_PHASE, SMG_PHASE_DONE, NULL);
	}
	stop_hasher(&d);
	join_threads(&d);
	/* The VM runs: a frame the announcement could not send is a warning. */
	if (d.ann != NULL && smg_announce_join(d.ann) != SMG_OK)
		smg_warn("network clean-up: some announcements were not sent");
	smg_live_detach(o->live);
	if (d.state == DST_ABORTED && !d.committed) {
		/* After the channel threads are gone: nobody writes them now. */
		if (qpath[0] != '\0' &&
		    smg_engine_disks_quarantine(d.disks, qpath) != SMG_OK)
			smg_warn("quarantine: some disks could not be held in the disk "
				 "service (%s/disks)",
				 qpath);
		else if (qpath[0] == '\0')
			smg_engine_disks_discard(d.disks);
		d.disks = NULL;
	}
	if (d.xd.nchan > 0) {
		pthread_mutex_destroy(&d.xd.lock);
		pthread_cond_destroy(&d.xd.cond);
	}
	smg_merkle_free(d.xd.mk);
	smg_engine_disks_free(d.disks);
	if (d.manifest != NULL)
		smg_frame_msg_free(&d.manifest->base);
	smg_backend_close(d.be);
	if (d.reserved)
		smg_capacity_release(o->capacity, smg_session_peer_name(s),
				     d.reserved_mem, d.disk_total);
	st->err = d.err;
	st->reason = d.reason;
	return d.err;
}

int smg_engine_serve(struct smg_session *s, const struct smg_recv_opts *o,
		     struct smg_mig_stats *st)
{
	struct smg_frame f;
	int r;

	memset(st, 0, sizeof(*st));
	if ((r = smg_chan_recv(s, 0, &f)) != SMG_OK)
		return r;
	if (f.type == SMG_FT_RESOLVE_QUERY)
		return smg_engine_answer_resolve(s, o, &f);
	if (f.type == SMG_FT_PRECHECK)
		return smg_engine_answer_precheck(s, o, &f);
	return serve_migration(s, o, &f, st);
}
