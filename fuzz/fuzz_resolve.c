/* libFuzzer harness: the RESOLVE path on the source (what `secmig
 * resolve` runs, cli/cmd_resolve.c): a domain in doubt on a real sim host
 * (its COMMIT recorded with the destination's commit-peer token), the
 * token read back (domain_pending, smg_commit_peer_parse), then
 * smg_engine_resolve over a real in-process session pair against a rogue
 * destination whose answer frames are the input (fuzz/dest_input.h: the
 * channel byte is ignored, there is one). FZ_FIX on a RESOLVE_ANSWER sets
 * the migration id and signs it as the destination does
 * (smg_audit_resolve_sign with its host key over this session), so the
 * outcome and the settling of the domain are reached; without it the
 * answer goes out as it is (unsigned, forged, another id). Bit 0 of the
 * first byte pins a commit peer other than the session's (nothing may be
 * settled then). Oracle: the domain is settled only after a valid
 * signature, and only as the signed answer says. */
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
#define VM_TEXT "name = fz\nmemory = 1M\nvcpus = 1\nworkload = idle\nseed = 3\n"

static char base[64], simdir[96];

struct dst_writer {
	struct fz_pair *pair;
	const struct fz_rec *rec;
	size_t n;
	/* what the first frame the source reads (PINGs are not returned) said
	 * if it was a validly signed answer, else -1 */
	int signed_outcome;
	pthread_t tid;
};

static void init(void)
{
	fz_world_init("resolve", base, sizeof(base), simdir, sizeof(simdir));
	if (fz_pair_init() != 0)
		abort();
}

static int send_answer(struct dst_writer *w, const struct fz_rec *r, bool first)
{
	ProtobufCMessage *m;
	uint8_t sig[SMG_AUDIT_SIG_LEN];
	int e;

	if (r->type != SMG_FT_RESOLVE_ANSWER || !(r->flags & FZ_FIX) ||
	    smg_proto_unpack(r->type, r->p, r->len, &m) != SMG_OK)
		return smg_chan_send(w->pair->srv, 0, r->type, r->p, r->len);
	Smg__ResolveAnswer *a = (Smg__ResolveAnswer *)m, keep = *a;
	a->migration_id = (char *)FZ_ID;
	if ((e = smg_audit_resolve_sign(w->pair->srv, a, sig)) == SMG_OK &&
	    (e = smg_chan_send_msg(w->pair->srv, 0, r->type, &a->base)) == SMG_OK &&
	    first)
		w->signed_outcome = (int)a->outcome;
	*a = keep;
	smg_proto_free(m);
	return e;
}

static void *writer_main(void *arg)
{
	struct dst_writer *w = arg;

	bool sent = false; /* a frame the source's receive returns went out */

	for (size_t i = 0; i < w->n; i++) {
		int e = send_answer(w, &w->rec[i], !sent);
		if (e == SMG_OK && w->rec[i].type != SMG_FT_PING)
			sent = true;
		if (e != SMG_OK && e != SMG_ERR_INVAL && e != SMG_ERR_TOO_LONG)
			break;
	}
	smg_chan_flush(w->pair->srv, 0);
	fz_hang_up(w->pair->srv, 1);
	return NULL;
}

/* The domain as a source leaves it when it dies after recording COMMIT:
 * paused, its record naming the migration and the destination's token. */
static int in_doubt(struct smg_backend *be)
{
	struct smg_commit_peer cp = {.name = "dst", .addr = "127.0.0.1:4849"};
	struct smg_domain_info info;
	char reply[512], tok[SMG_COMMIT_PEER_MAX + 1];

	int step = 0;

	memcpy(cp.key, fz_id[1].pk, sizeof(cp.key));
	if (fz_sim_call(simdir, "CREATE", VM_TEXT, reply, sizeof(reply)) != SMG_OK ||
	    (step = 1, be->ops->domain_open(be, "fz", &info)) != SMG_OK ||
	    (step = 2, be->ops->pause(be)) != SMG_OK ||
	    (step = 3, smg_commit_peer_format(&cp, tok, sizeof(tok))) != SMG_OK ||
	    (step = 4, be->ops->mark_commit(be, FZ_ID, tok)) != SMG_OK) {
		fprintf(stderr, "fuzz_resolve: set-up step %d failed: %s\n", step, reply);
		return -1;
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct fz_rec rec[FZ_REC_MAX];
	const struct smg_backend_opts bo = {.state_dir = simdir};
	struct smg_backend *src = NULL, *be = NULL;
	struct fz_pair pair;
	struct dst_writer w = {.pair = &pair, .rec = rec, .signed_outcome = -1};
	struct smg_commit_peer p;
	enum smg_resolve_outcome out;
	char id[SMG_MIGRATION_ID_LEN + 8], tok[SMG_COMMIT_PEER_MAX + 8];
	int r;

	if (simdir[0] == '\0')
		init();
	if (size < 1)
		return 0;
	w.n = fz_records(data, size, rec);
	/* the source process that died, then `secmig resolve` */
	if (smg_backend_open("sim", &bo, &src) != SMG_OK || in_doubt(src) != 0)
		abort();
	smg_backend_close(src);
	if (smg_backend_open("sim", &bo, &be) != SMG_OK ||
	    be->ops->domain_pending(be, "fz", id, sizeof(id), tok, sizeof(tok)) !=
		SMG_OK ||
	    strcmp(id, FZ_ID) != 0 ||
	    smg_commit_peer_parse(tok, strlen(tok), &p) != SMG_OK)
		abort();
	if (data[0] & 1)
		snprintf(p.name, sizeof(p.name), "other");
	if (fz_pair_open(&pair, 1, LIVE_MS) != 0 ||
	    pthread_create(&w.tid, NULL, writer_main, &w) != 0)
		abort();
	r = smg_engine_resolve(pair.cli, be, "fz", FZ_ID, &p, &out);
	if (getenv("FUZZ_VERBOSE") != NULL)
		fprintf(stderr, "fuzz_resolve: %s, outcome %d\n", smg_strerror(r), out);
	smg_session_free(pair.cli);
	pair.cli = NULL;
	pthread_join(w.tid, NULL);
	fz_pair_close(&pair);
	/* Settled only by the first frame read, if it was a validly signed
	 * answer, and as it said. */
	if (r == SMG_OK &&
	    (w.signed_outcome < 0 ||
	     (out == SMG_RESOLVED_RUNNING) !=
		 (w.signed_outcome == SMG__RESOLVE_OUTCOME__RESOLVE_RUNNING)))
		abort();
	smg_backend_close(be);
	fz_sim_wipe(simdir);
	return 0;
}
