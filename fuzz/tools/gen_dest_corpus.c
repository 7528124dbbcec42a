/* Writes the seeds of fuzz_dest, fuzz_resolve and fuzz_source
 * (fuzz/dest_input.h): the frames a real source sends in a whole sim
 * migration (the sim backend's own config and saved device state, the
 * pages of a round, the round sequence of test_rogue.c's valid row), the
 * out-of-sequence rows of test_rogue.c, resolve queries for each kind of
 * outcome record, pre-checks, a destination's resolve answers and its
 * answers to a source. Built with the fuzzers (bash scripts/build.sh fuzz); run:
 *   build-fuzz/gen_dest_corpus fuzz/corpus */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../dest_input.h"
#include "base/base.h"
#include "proto/proto.h"
#include "secmig.pb-c.h"
#include "simhost/simhost.h"

#define PAGE	 4096u
#define VM_MEM	 (4u << 20)
#define VM_TEXT	 "name = fz\nmemory = 4M\nvcpus = 2\nworkload = idle\nseed = 7\n"
#define SEED_MAX (64 * 1024)

static const char *root;
static uint8_t *state;
static size_t state_len;

struct seed {
	uint8_t b[SEED_MAX];
	size_t n;
};

static void put(const char *dir, const char *name, const struct seed *s)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", root, dir);
	mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/%s/%s", root, dir, name);
	if ((f = fopen(path, "wb")) == NULL || fwrite(s->b, 1, s->n, f) != s->n)
		exit(1);
	fclose(f);
}

static void begin(struct seed *s, uint8_t head)
{
	s->b[0] = head;
	s->n = 1;
}

static void rec(struct seed *s, unsigned chan, uint8_t type, uint8_t flags,
		const uint8_t *p, size_t len)
{
	if (s->n + FZ_REC_HDR + len > SEED_MAX || len > 0xffff)
		exit(1);
	s->b[s->n++] = (uint8_t)chan;
	s->b[s->n++] = type;
	s->b[s->n++] = flags;
	s->b[s->n++] = (uint8_t)(len >> 8);
	s->b[s->n++] = (uint8_t)len;
	memcpy(s->b + s->n, p, len);
	s->n += len;
}

static void msg(struct seed *s, unsigned chan, uint8_t type, uint8_t flags,
		const ProtobufCMessage *m)
{
	uint8_t buf[SEED_MAX];

	rec(s, chan, type, flags, buf, protobuf_c_message_pack(m, buf));
}

/* ---- the source's frames ----------------------------------------------- */
static void plan_as(struct seed *s, uint8_t type, unsigned disks, bool vtpm)
{
	Smg__Plan p = SMG__PLAN__INIT;
	Smg__DiskSpec d = SMG__DISK_SPEC__INIT, *dv[1] = {&d};
	uint8_t hash[32] = {0};

	p.migration_id = (char *)FZ_ID;
	p.domain_name = (char *)"fz";
	p.domain_config = (ProtobufCBinaryData){strlen(VM_TEXT), (uint8_t *)VM_TEXT};
	p.memory_bytes = VM_MEM;
	p.page_size = PAGE;
	p.vcpus = 2;
	p.backend = (char *)"sim";
	p.config_hash = (ProtobufCBinaryData){sizeof(hash), hash}; /* FZ_FIX: right */
	p.has_vtpm = vtpm;
	if (disks > 0) {
		d.size = 1u << 20;
		d.chunk_size = 64u << 10;
		d.name = (char *)"xvda";
		d.format = (char *)"raw";
		p.n_disks = 1;
		p.disks = dv;
		p.storage_mode = SMG__STORAGE_MODE__STORAGE_DBT;
	}
	msg(s, 0, type, FZ_FIX, &p.base);
}

static void plan(struct seed *s, unsigned disks, bool vtpm)
{
	plan_as(s, SMG_FT_PLAN, disks, vtpm);
}

static void rs(struct seed *s, uint32_t round, bool final)
{
	Smg__RoundStart m = SMG__ROUND_START__INIT;

	m.round = round;
	m.final = final;
	m.pages = 1;
	msg(s, 0, SMG_FT_ROUND_START, 0, &m.base);
}

static void re(struct seed *s, unsigned chan, uint32_t round)
{
	Smg__RoundEnd m = SMG__ROUND_END__INIT;

	m.round = round;
	msg(s, chan, SMG_FT_ROUND_END, 0, &m.base);
}

static void zp(struct seed *s, unsigned chan, uint32_t round, uint64_t pfn)
{
	uint8_t p[SMG_PAGES_HDR_LEN + 8];

	smg_pages_put_hdr(p, round, 1);
	smg_store_be64(p + SMG_PAGES_HDR_LEN, pfn);
	rec(s, chan, SMG_FT_ZERO_PAGES, 0, p, sizeof(p));
}

static void pages(struct seed *s, unsigned chan, uint32_t round, uint64_t pfn)
{
	static uint8_t p[SMG_PAGES_HDR_LEN + PAGE + 8];

	for (unsigned i = 0; i < PAGE; i++)
		smg_pages_data(p, PAGE, 0)[i] = (uint8_t)(i * 7 + pfn);
	rec(s, chan, SMG_FT_PAGES, 0, p, smg_pages_put_pfns(p, round, PAGE, &pfn, 1));
}

static void ds(struct seed *s)
{
	Smg__DeviceState m = SMG__DEVICE_STATE__INIT;

	m.vcpu_count = 2;
	m.device_context = (ProtobufCBinaryData){state_len, state};
	msg(s, 0, SMG_FT_DEVICE_STATE, 0, &m.base);
}

static void mf(struct seed *s)
{
	Smg__Manifest m = SMG__MANIFEST__INIT;

	m.migration_id = (char *)FZ_ID;
	msg(s, 0, SMG_FT_MANIFEST, FZ_FIX, &m.base);
}

static void commit(struct seed *s)
{
	Smg__Commit m = SMG__COMMIT__INIT;

	m.migration_id = (char *)FZ_ID;
	msg(s, 0, SMG_FT_COMMIT, FZ_FIX, &m.base);
}

static void abort_(struct seed *s, unsigned chan)
{
	Smg__Abort m = SMG__ABORT__INIT;

	m.reason = SMG__ABORT_REASON__ABORT_OPERATOR;
	m.detail = (char *)"cancelled by the operator";
	m.error = -30;
	msg(s, chan, SMG_FT_ABORT, 0, &m.base);
}

static void query(struct seed *s, const char *id)
{
	Smg__ResolveQuery m = SMG__RESOLVE_QUERY__INIT;

	m.migration_id = (char *)id;
	msg(s, 0, SMG_FT_RESOLVE_QUERY, 0, &m.base);
}

/* Rounds 0 (pre-copy) and 1 (final) on nchan channels, pages of round 0
 * on each channel (the channel of pfn: (pfn >> 9) % nchan). */
static void rounds(struct seed *s, unsigned nchan, bool data)
{
	rs(s, 0, false);
	for (unsigned c = 0; c < nchan; c++) {
		if (data)
			pages(s, c, 0, 512u * c + 1);
		zp(s, c, 0, 512u * c);
	}
	for (unsigned c = 0; c < nchan; c++)
		re(s, c, 0);
	rs(s, 1, true);
	for (unsigned c = 0; c < nchan; c++)
		re(s, c, 1);
}

static void migration(const char *name, unsigned nchan, bool data)
{
	struct seed s;

	begin(&s, (uint8_t)(nchan - 1));
	plan(&s, 0, false);
	rounds(&s, nchan, data);
	ds(&s);
	mf(&s);
	commit(&s);
	put("dest", name, &s);
}

static void dest_seeds(void)
{
	struct seed s;
	char name[64];

	migration("valid-zero-2ch", 2, false);
	migration("valid-pages-2ch", 2, true);
	migration("valid-pages-1ch", 1, true);
	/* test_rogue.c's rows: each ends the session at once */
	begin(&s, 1), plan(&s, 0, false), rs(&s, 0, false), re(&s, 0, 1);
	put("dest", "rogue-round-end-future", &s);
	begin(&s, 1), plan(&s, 0, false), re(&s, 0, 0);
	put("dest", "rogue-round-end-first", &s);
	begin(&s, 1), plan(&s, 0, false), rs(&s, 0, false), re(&s, 1, 0),
	    zp(&s, 1, 0, 512);
	put("dest", "rogue-pages-after-round-end", &s);
	begin(&s, 1), plan(&s, 0, false), rs(&s, 0, false), rs(&s, 0, false);
	put("dest", "rogue-round-start-twice", &s);
	begin(&s, 1), plan(&s, 0, false), rs(&s, 0, false), ds(&s);
	put("dest", "rogue-state-before-final", &s);
	begin(&s, 1), plan(&s, 0, false), rs(&s, 0, true), re(&s, 0, 0), re(&s, 1, 0);
	mf(&s);
	put("dest", "rogue-manifest-before-state", &s);
	begin(&s, 1), plan(&s, 0, false), rs(&s, 0, false), commit(&s);
	put("dest", "rogue-commit-before-ready", &s);
	begin(&s, 1), plan(&s, 0, false), plan(&s, 0, false);
	put("dest", "rogue-plan-twice", &s);
	begin(&s, 1), plan(&s, 0, false), rs(&s, 0, true), re(&s, 0, 0), re(&s, 1, 0);
	zp(&s, 1, 0, 512), ds(&s), mf(&s);
	put("dest", "rogue-pages-after-final", &s);
	begin(&s, 1), plan(&s, 0, false), rs(&s, 0, false), zp(&s, 0, 0, 0),
	    abort_(&s, 0);
	put("dest", "abort-in-round", &s);
	begin(&s, 0), abort_(&s, 0);
	put("dest", "abort-first", &s);
	/* plans the definitions or this host refuse */
	begin(&s, 1), plan(&s, 1, false), rounds(&s, 2, false);
	put("dest", "plan-disk", &s);
	begin(&s, 1), plan(&s, 0, true);
	put("dest", "plan-vtpm", &s);
	/* resolve queries: the harness's records end in 1..6 (6: another
	 * source's); 7 has none; a malformed id */
	for (unsigned i = 1; i <= 7; i++) {
		char id[40];
		snprintf(id, sizeof(id), "%.31s%u", FZ_ID, i);
		begin(&s, 0), query(&s, id);
		snprintf(name, sizeof(name), "resolve-query-%u", i);
		put("dest", name, &s);
	}
	begin(&s, 0), query(&s, "not-an-id");
	put("dest", "resolve-query-bad-id", &s);
	/* pre-checks (engine/precheck.c): answered, then nothing else */
	begin(&s, 0), plan_as(&s, SMG_FT_PRECHECK, 0, false);
	put("dest", "precheck", &s);
	begin(&s, 0), plan_as(&s, SMG_FT_PRECHECK, 1, true);
	put("dest", "precheck-disk-vtpm", &s);
	begin(&s, 1), plan_as(&s, SMG_FT_PRECHECK, 0, false), plan(&s, 0, false);
	put("dest", "precheck-then-plan", &s);
}

/* ---- the destination's answers (fuzz_resolve) --------------------------- */
static void answer(const char *name, uint8_t head, int outcome, uint8_t flags)
{
	Smg__ResolveAnswer m = SMG__RESOLVE_ANSWER__INIT;
	struct seed s;

	m.migration_id = (char *)FZ_ID;
	m.outcome = (Smg__ResolveOutcome)outcome;
	begin(&s, head);
	msg(&s, 0, SMG_FT_RESOLVE_ANSWER, flags, &m.base);
	put("resolve", name, &s);
}

static void resolve_seeds(void)
{
	Smg__Abort a = SMG__ABORT__INIT;
	struct seed s;

	answer("running", 0, SMG__RESOLVE_OUTCOME__RESOLVE_RUNNING, FZ_FIX);
	answer("discarded", 0, SMG__RESOLVE_OUTCOME__RESOLVE_DISCARDED, FZ_FIX);
	answer("unknown", 0, SMG__RESOLVE_OUTCOME__RESOLVE_UNKNOWN, FZ_FIX);
	answer("pending", 0, SMG__RESOLVE_OUTCOME__RESOLVE_PENDING, FZ_FIX);
	answer("running-unsigned", 0, SMG__RESOLVE_OUTCOME__RESOLVE_RUNNING, 0);
	answer("running-other-peer", 1, SMG__RESOLVE_OUTCOME__RESOLVE_RUNNING, FZ_FIX);
	a.reason = SMG__ABORT_REASON__ABORT_NOT_SOURCE;
	a.detail = (char *)"this host is not the source of that migration";
	a.error = -13;
	begin(&s, 0), msg(&s, 0, SMG_FT_ABORT, 0, &a.base);
	put("resolve", "refused", &s);
}

/* ---- a destination's answers to a source (fuzz_source) ----------------- */
static void plan_ack(struct seed *s, bool ok)
{
	Smg__PlanAck a = SMG__PLAN_ACK__INIT;

	a.accepted = ok;
	a.load_ms = 40;
	a.reason =
	    (char *)(ok ? ""
			: "memory: 4096 MiB requested, this host offers at most 1024");
	if (!ok) {
		a.code = SMG__ABORT_REASON__ABORT_POLICY;
		a.error = -11;
	}
	msg(s, 0, SMG_FT_PLAN_ACK, 0, &a.base);
}

static void ready(struct seed *s, uint8_t flags)
{
	Smg__Ready m = SMG__READY__INIT;
	uint8_t h[32] = {0};

	m.migration_id = (char *)FZ_ID;
	m.manifest_hash = (ProtobufCBinaryData){sizeof(h), h};
	msg(s, 0, SMG_FT_READY, flags, &m.base);
}

static void done(struct seed *s)
{
	Smg__Done m = SMG__DONE__INIT;

	m.migration_id = (char *)FZ_ID;
	m.resumed_at_ms = 1764547200000ull;
	msg(s, 0, SMG_FT_DONE, FZ_FIX, &m.base);
}

static void source_seeds(void)
{
	struct seed s;

	begin(&s, 1), plan_ack(&s, true), ready(&s, FZ_FIX), done(&s);
	put("source", "valid-2ch", &s);
	begin(&s, 0), plan_ack(&s, true), ready(&s, FZ_FIX), done(&s);
	put("source", "valid-1ch", &s);
	begin(&s, 1), plan_ack(&s, true), ready(&s, FZ_FIX);
	put("source", "no-done-in-doubt", &s);
	begin(&s, 1), plan_ack(&s, false);
	put("source", "plan-refused", &s);
	begin(&s, 1), plan_ack(&s, true), abort_(&s, 0);
	put("source", "abort-in-round", &s);
	begin(&s, 1), plan_ack(&s, true), ready(&s, 0), done(&s);
	put("source", "ready-not-ours", &s);
	begin(&s, 1), abort_(&s, 0);
	put("source", "abort-first", &s);
}

int main(int argc, char **argv)
{
	struct smg_sim_config cfg;
	struct smg_sim_mem m;
	char err[256];

	if (argc != 2) {
		fprintf(stderr, "usage: %s fuzz/corpus\n", argv[0]);
		return 2;
	}
	root = argv[1];
	/* the device state a sim domain of VM_TEXT saves */
	if (smg_sim_config_parse(VM_TEXT, strlen(VM_TEXT), &cfg, err, sizeof(err)) != 0 ||
	    smg_sim_mem_create(&cfg, false, &m) != 0 ||
	    smg_sim_state_save(&m, &state, &state_len) != 0)
		return 1;
	smg_sim_mem_unmap(&m);
	dest_seeds();
	resolve_seeds();
	source_seeds();
	free(state);
	return 0;
}
