/* libFuzzer harness: the source's state machine (engine/source.c,
 * source_round.c) against a rogue destination. A running sim domain on an
 * in-process sim host is migrated by smg_engine_send_prepare/run over a
 * real in-process session pair (fuzz/session_pair.h); the destination's
 * frames are the input (fuzz/dest_input.h, the channel byte taken modulo
 * the channels, 1 + first byte % 2 of them). A rogue thread sends each
 * record when the source would read it: a PLAN_ACK once the PLAN came, a
 * READY once the MANIFEST came, a DONE once the COMMIT came; anything else
 * at once (in the middle of a round, say). FZ_FIX makes a READY or DONE
 * right (this migration's id, the manifest's hash, the receipt
 * countersigned as a destination signs it), so COMMIT and DONE are
 * reached. The rogue drains every channel, and hangs up after its last
 * record. Oracle: the source reports success only after a DONE, and
 * commits only after a validly countersigned READY. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit/audit.h"
#include "base/base.h"
#include "dest_input.h"
#include "engine/engine.h"
#include "engine/internal.h"
#include "proto/proto.h"
#include "secmig.pb-c.h"
#include "session_pair.h"
#include "sim_host.h"

#define LIVE_MS 3000
#define VM_TEXT "name = fz\nmemory = 1M\nvcpus = 1\nworkload = idle\nseed = 5\n"

static char base[64], simdir[96];

struct rogue {
	struct fz_pair *pair;
	const struct fz_rec *rec;
	size_t n;
	unsigned nchan;
	const char *id; /* the source's migration id */
	struct smg_audit_mig am;
	uint8_t manifest_hash[SMG_DIGEST_LEN];
	bool plan_seen, got_manifest, got_commit, eof;
	bool ready_ok; /* a validly countersigned READY went out */
	bool done_sent;
	pthread_t tid, drain[SMG_CHANNELS_MAX];
};

static void init(void)
{
	fz_world_init("source", base, sizeof(base), simdir, sizeof(simdir));
	if (fz_pair_init() != 0)
		abort();
}

/* Data channels: read and drop until the source hangs up. */
struct drain {
	struct smg_session *s;
	unsigned chan;
};

static void *drain_main(void *arg)
{
	struct drain *d = arg;
	struct smg_frame f;
	int r;

	while ((r = smg_chan_recv(d->s, d->chan, &f)) == SMG_OK ||
	       r == SMG_ERR_INTERRUPTED)
		;
	free(d);
	return NULL;
}

/* One frame of the source on channel 0: note the MANIFEST and COMMIT. */
static int read_ctrl(struct rogue *g)
{
	ProtobufCMessage *m;
	struct smg_frame f;
	int r;

	if (g->eof || (r = smg_chan_recv(g->pair->srv, 0, &f)) != SMG_OK) {
		g->eof = true;
		return SMG_ERR_EOF;
	}
	if (f.type == SMG_FT_MANIFEST &&
	    smg_frame_unpack(&f, &smg__manifest__descriptor, &m) == SMG_OK) {
		smg_engine_hash(f.payload, f.len, g->manifest_hash);
		smg_audit_mig_init(&g->am, false);
		smg_audit_manifest_check(&g->am, g->pair->srv, (Smg__Manifest *)m);
		smg_frame_msg_free(m);
		g->got_manifest = true;
	} else if (f.type == SMG_FT_COMMIT) {
		g->got_commit = true;
	}
	return SMG_OK;
}

/* Read until the frame this record answers has come (or the source ends). */
static void await(struct rogue *g, uint8_t type)
{
	bool *flag = type == SMG_FT_READY  ? &g->got_manifest
		     : type == SMG_FT_DONE ? &g->got_commit
					   : NULL;
	if (type == SMG_FT_PLAN_ACK) {
		/* the PLAN is the source's first frame */
		if (!g->plan_seen)
			read_ctrl(g);
		g->plan_seen = true;
		return;
	}
	while (flag != NULL && !*flag && read_ctrl(g) == SMG_OK)
		;
}

static int fix_ready(struct rogue *g, Smg__Ready *rd)
{
	Smg__Ready keep = *rd;
	int r;

	rd->migration_id = (char *)g->id;
	rd->manifest_hash = (ProtobufCBinaryData){SMG_DIGEST_LEN, g->manifest_hash};
	if ((r = smg_audit_receipt_sign(NULL, &g->am, g->pair->srv, rd)) == SMG_OK &&
	    (r = smg_chan_send_msg(g->pair->srv, 0, SMG_FT_READY, &rd->base)) == SMG_OK)
		g->ready_ok = g->got_manifest;
	*rd = keep;
	return r;
}

static int fix_done(struct rogue *g, Smg__Done *dn)
{
	char *id = dn->migration_id;
	int r;

	dn->migration_id = (char *)g->id;
	r = smg_chan_send_msg(g->pair->srv, 0, SMG_FT_DONE, &dn->base);
	dn->migration_id = id;
	return r;
}

static int send_rec(struct rogue *g, const struct fz_rec *r)
{
	ProtobufCMessage *m;
	unsigned chan = r->chan % g->nchan;
	int e;

	if (chan == 0)
		await(g, r->type);
	if (chan != 0 || !(r->flags & FZ_FIX) ||
	    (r->type != SMG_FT_READY && r->type != SMG_FT_DONE) ||
	    smg_proto_unpack(r->type, r->p, r->len, &m) != SMG_OK) {
		e = smg_chan_send(g->pair->srv, chan, r->type, r->p, r->len);
		if (e == SMG_OK && chan == 0 && r->type == SMG_FT_DONE)
			g->done_sent = true;
		return e;
	}
	if (r->type == SMG_FT_READY) {
		e = fix_ready(g, (Smg__Ready *)m);
	} else {
		e = fix_done(g, (Smg__Done *)m);
		g->done_sent = e == SMG_OK;
	}
	smg_proto_free(m);
	return e;
}

static void *rogue_main(void *arg)
{
	struct rogue *g = arg;

	for (unsigned c = 1; c < g->nchan; c++) {
		struct drain *d = malloc(sizeof(*d));
		if (d == NULL)
			abort();
		*d = (struct drain){g->pair->srv, c};
		if (pthread_create(&g->drain[c], NULL, drain_main, d) != 0)
			abort();
	}
	for (size_t i = 0; i < g->n; i++) {
		int e = send_rec(g, &g->rec[i]);
		if (e != SMG_OK && e != SMG_ERR_INVAL && e != SMG_ERR_TOO_LONG)
			break;
	}
	for (unsigned c = 0; c < g->nchan; c++)
		smg_chan_flush(g->pair->srv, c);
	fz_hang_up(g->pair->srv, g->nchan);
	while (read_ctrl(g) == SMG_OK)
		;
	for (unsigned c = 1; c < g->nchan; c++)
		pthread_join(g->drain[c], NULL);
	return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct fz_rec rec[FZ_REC_MAX];
	struct fz_pair pair;
	struct rogue g = {.pair = &pair, .rec = rec};
	struct smg_mig_stats st;
	struct smg_send *m = NULL;
	char reply[512];
	int r;
	struct smg_send_opts so = {.backend = "sim",
				   .domain = "fz",
				   .peer = "127.0.0.1:4849",
				   .max_downtime_ms = 60000,
				   .max_rounds = 2};

	if (base[0] == '\0')
		init();
	if (size < 1)
		return 0;
	so.bopts.state_dir = simdir;
	g.nchan = 1 + data[0] % 2;
	g.n = fz_records(data, size, rec);
	if (fz_sim_call(simdir, "CREATE", VM_TEXT, reply, sizeof(reply)) != SMG_OK ||
	    smg_engine_send_prepare(&so, &st, &m) != SMG_OK)
		abort();
	g.id = st.migration_id;
	if (fz_pair_open(&pair, g.nchan, LIVE_MS) != 0 ||
	    pthread_create(&g.tid, NULL, rogue_main, &g) != 0)
		abort();
	r = smg_engine_send_run(m, pair.cli);
	if (getenv("FUZZ_VERBOSE") != NULL)
		fprintf(stderr, "fuzz_source: %s (verified %d)\n", smg_strerror(r),
			st.verified);
	smg_session_free(pair.cli);
	pair.cli = NULL;
	pthread_join(g.tid, NULL);
	fz_pair_close(&pair);
	smg_engine_send_free(m);
	/* success only after a DONE; past COMMIT only after a good READY */
	if ((r == SMG_OK && !g.done_sent) ||
	    ((r == SMG_OK || r == SMG_ERR_IN_DOUBT) && !g.ready_ok))
		abort();
	fz_sim_wipe(simdir);
	return 0;
}
