/* libFuzzer harness: the destination's state machine (engine/dest.c,
 * engine/xfer.c, the answers of engine/resolve.c and engine/precheck.c)
 * driven by a rogue source.
 * The input is a sequence of frames (fuzz/dest_input.h) that a writer
 * thread seals and sends over a real in-process session pair
 * (fuzz/session_pair.h) while smg_engine_serve runs on the other end with
 * the real sim backend on an in-process sim host, this host's definitions
 * and capacity ledger, and its outcome records: every state (WAIT_PLAN,
 * RECEIVING with its data channel threads, VERIFY, READY_SENT, a resolve
 * query or a pre-check first) sees whatever frame comes next, in any
 * order. The input's first byte picks 1 to 3 channels. Once the frames
 * are sent the source hangs up without FINAL (a source that died).
 * Liveness limits are 3 s: a receiver that waits longer on a peer that
 * said all it will is a finding (libFuzzer -timeout). Set FUZZ_VERBOSE=1
 * to see the receiver's log. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit/audit.h"
#include "base/base.h"
#include "dest_input.h"
#include "engine/internal.h"
#include "proto/proto.h"
#include "secmig.pb-c.h"
#include "session_pair.h"
#include "sim_host.h"
#include "simhost/simhost.h"

#define LIVE_MS	   3000
#define MIRROR_MAX 4096 /* pages: the definitions' 16 MiB */
#define PAGE	   4096u

static char base[64], simdir[96], recdir[96];
static struct smg_hostdef *defs;
static struct smg_capacity *cap;

/* What the writer knows of the stream it sends, for the fix-ups. */
struct writer {
	struct fz_pair *pair;
	const struct fz_rec *rec;
	size_t n;
	unsigned nchan;
	struct smg_merkle *mk; /* the pages sent, as the destination folds them */
	uint64_t npages;
	uint8_t config_hash[SMG_DIGEST_LEN], device_hash[SMG_DIGEST_LEN];
	pthread_t tid;
};

/* Records, quarantines, load times: nothing carries over between inputs. */
static void wipe_records(void)
{
	fz_rm_under(recdir);
}

/* Records a resolve query can ask about: every state, one of another
 * source's (the query must be refused); their ids end in 1..6. */
static void seed_records(void)
{
	static const enum smg_outcome st[] = {
	    SMG_OUTCOME_RECEIVING, SMG_OUTCOME_COMMITTED,   SMG_OUTCOME_RESUMED,
	    SMG_OUTCOME_DISCARDED, SMG_OUTCOME_QUARANTINED, SMG_OUTCOME_RECEIVING};

	for (unsigned i = 0; i < SMG_ARRAY_LEN(st); i++) {
		struct smg_outcome_rec r = {.state = st[i]};
		char id[SMG_MIGRATION_ID_LEN + 1];

		snprintf(id, sizeof(id), "%.31s%u", FZ_ID, i + 1);
		snprintf(r.domain, sizeof(r.domain), "fz");
		snprintf(r.source, sizeof(r.source), "%s", i == 5 ? "dst" : "src");
		memcpy(r.source_key, fz_id[i == 5 ? 1 : 0].pk, sizeof(r.source_key));
		if (smg_outcome_create(recdir, id, &r) != SMG_OK)
			abort();
	}
}

static void init(void)
{
	char text[512], why[256];

	fz_world_init("dest", base, sizeof(base), simdir, sizeof(simdir));
	if (fz_pair_init() != 0)
		abort();
	snprintf(recdir, sizeof(recdir), "%s/rec", base);
	if (mkdir(recdir, 0700) != 0)
		abort();
	snprintf(text, sizeof(text),
		 "storage %s/img\nbridge br0\n"
		 "limit vm memory=16M vcpus=4 disks=2 disk=64M nics=2\n"
		 "limit total memory=64M disk=256M sessions=4\n"
		 "vm *\n  from src\n"
		 "  nic bridge=br0 mac=52:54:00:00:00:00/24 ip=10.0.0.0/8\n",
		 base);
	if (smg_hostdef_parse(text, strlen(text), "fuzz", &defs, why, sizeof(why)) != 0 ||
	    smg_capacity_new(defs, &cap) != 0)
		abort();
}

/* ---- the writer: the rogue source -------------------------------------- */
static void mirror_pages(struct writer *w, const struct fz_rec *r)
{
	bool zero = r->type == SMG_FT_ZERO_PAGES;
	struct smg_pages_hdr h;

	if (w->mk == NULL || smg_pages_parse(r->p, r->len, PAGE, zero, &h) != SMG_OK)
		return;
	for (uint32_t i = 0; i < h.count; i++) {
		uint64_t pfn = smg_pages_pfn(&h, i);
		if (pfn >= w->npages)
			continue;
		if (zero)
			smg_merkle_set_zero(w->mk, pfn);
		else
			smg_merkle_set_leaf(w->mk, pfn, h.data + (size_t)i * PAGE, PAGE);
	}
}

static void note_plan(struct writer *w, const Smg__Plan *p)
{
	smg_engine_hash(p->domain_config.data, p->domain_config.len, w->config_hash);
	smg_merkle_free(w->mk);
	w->mk = NULL;
	if (p->page_size == PAGE && p->memory_bytes % PAGE == 0 &&
	    p->memory_bytes / PAGE > 0 && p->memory_bytes / PAGE <= MIRROR_MAX &&
	    smg_merkle_new(p->memory_bytes / PAGE, PAGE, &w->mk) == SMG_OK)
		w->npages = p->memory_bytes / PAGE;
}

static int send_packed(struct writer *w, unsigned chan, uint8_t type,
		       const ProtobufCMessage *m)
{
	return smg_chan_send_msg(w->pair->cli, chan, type, m);
}

static int fix_plan(struct writer *w, unsigned chan, uint8_t type, Smg__Plan *p)
{
	char *id = p->migration_id, *be = p->backend;
	ProtobufCBinaryData h = p->config_hash;
	int r;

	p->migration_id = (char *)FZ_ID;
	p->backend = (char *)"sim";
	p->config_hash = (ProtobufCBinaryData){SMG_DIGEST_LEN, w->config_hash};
	r = send_packed(w, chan, type, &p->base);
	p->migration_id = id;
	p->backend = be;
	p->config_hash = h;
	return r;
}

static int fix_manifest(struct writer *w, unsigned chan, Smg__Manifest *mf)
{
	Smg__Manifest keep = *mf;
	uint8_t root[SMG_DIGEST_LEN] = {0};
	struct smg_audit_mig am;
	int r = SMG_ERR_INTERNAL;

	if (w->mk != NULL)
		smg_merkle_root(w->mk, root);
	mf->migration_id = (char *)FZ_ID;
	mf->memory_root = (ProtobufCBinaryData){SMG_DIGEST_LEN, root};
	mf->config_hash = (ProtobufCBinaryData){SMG_DIGEST_LEN, w->config_hash};
	mf->device_hash = (ProtobufCBinaryData){SMG_DIGEST_LEN, w->device_hash};
	mf->transcript = (ProtobufCBinaryData){
	    SMG_TRANSCRIPT_LEN, (uint8_t *)smg_session_transcript(w->pair->cli)};
	smg_audit_mig_init(&am, true);
	if (smg_audit_manifest_sign(&am, w->pair->cli, mf) == SMG_OK)
		r = send_packed(w, chan, SMG_FT_MANIFEST, &mf->base);
	*mf = keep;
	return r;
}

static int fix_commit(struct writer *w, unsigned chan, Smg__Commit *c)
{
	char *id = c->migration_id;
	int r;

	c->migration_id = (char *)FZ_ID;
	r = send_packed(w, chan, SMG_FT_COMMIT, &c->base);
	c->migration_id = id;
	return r;
}

/* One record: note what the destination will compute from it, fix it up
 * if asked, send it. */
static int send_rec(struct writer *w, const struct fz_rec *r, unsigned chan)
{
	ProtobufCMessage *m = NULL;
	int e = SMG_ERR_INVAL;
	bool fix = r->flags & FZ_FIX;
	bool plan = r->type == SMG_FT_PLAN || r->type == SMG_FT_PRECHECK;

	if (r->type == SMG_FT_PAGES || r->type == SMG_FT_ZERO_PAGES)
		mirror_pages(w, r);
	else if ((plan || r->type == SMG_FT_DEVICE_STATE ||
		  (fix && (r->type == SMG_FT_MANIFEST || r->type == SMG_FT_COMMIT))) &&
		 smg_proto_unpack(r->type, r->p, r->len, &m) == SMG_OK) {
		if (plan)
			note_plan(w, (Smg__Plan *)m);
		if (r->type == SMG_FT_DEVICE_STATE) {
			const Smg__DeviceState *ds = (Smg__DeviceState *)m;
			smg_engine_hash(ds->device_context.data, ds->device_context.len,
					w->device_hash);
		}
		if (fix && plan)
			e = fix_plan(w, chan, r->type, (Smg__Plan *)m);
		else if (fix && r->type == SMG_FT_MANIFEST)
			e = fix_manifest(w, chan, (Smg__Manifest *)m);
		else if (fix && r->type == SMG_FT_COMMIT)
			e = fix_commit(w, chan, (Smg__Commit *)m);
		else
			m = (smg_proto_free(m), NULL);
	}
	if (m != NULL) {
		smg_proto_free(m);
		return e;
	}
	return smg_chan_send(w->pair->cli, chan, r->type, r->p, r->len);
}

static void *writer_main(void *arg)
{
	struct writer *w = arg;

	for (size_t i = 0; i < w->n; i++) {
		int e = send_rec(w, &w->rec[i], w->rec[i].chan % w->nchan);
		/* a type or size the transport will not seal: not sent */
		if (e != SMG_OK && e != SMG_ERR_INVAL && e != SMG_ERR_TOO_LONG)
			break; /* the receiver hung up */
	}
	for (unsigned c = 0; c < w->nchan; c++)
		smg_chan_flush(w->pair->cli, c);
	fz_hang_up(w->pair->cli, w->nchan);
	return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct fz_rec rec[FZ_REC_MAX];
	struct fz_pair pair;
	struct writer w = {.pair = &pair, .rec = rec};
	struct smg_mig_stats st;
	struct smg_recv_opts ro = {
	    .backend = "sim", .bopts = {.state_dir = simdir}, .state_dir = recdir};

	if (base[0] == '\0')
		init();
	ro.defs = defs;
	ro.capacity = cap;
	if (size < 1)
		return 0;
	w.nchan = 1 + data[0] % 3;
	w.n = fz_records(data, size, rec);
	if (w.n > 0 && rec[0].type == SMG_FT_RESOLVE_QUERY)
		seed_records();
	if (fz_pair_open(&pair, w.nchan, LIVE_MS) != 0 ||
	    pthread_create(&w.tid, NULL, writer_main, &w) != 0)
		abort();
	int r = smg_engine_serve(pair.srv, &ro, &st);
	if (getenv("FUZZ_VERBOSE") != NULL)
		fprintf(stderr, "fuzz_dest: serve: %s (verified %d)\n", smg_strerror(r),
			st.verified);
	smg_session_free(pair.srv); /* a writer still sending fails now */
	pair.srv = NULL;
	pthread_join(w.tid, NULL);
	fz_pair_close(&pair);
	smg_merkle_free(w.mk);
	fz_sim_wipe(simdir);
	wipe_records();
	return 0;
}
