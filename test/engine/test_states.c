/* The source and destination state machines (engine/states.c), table by
 * table. The legal transitions below are the protocol's sequence
 * (docs/protocol.md "Sequence", DESIGN §1, §7) written out again here; every
 * other (state, input) pair must be refused, so a transition added, lost or
 * redirected in the engine's table fails a row. Named rows then replay the
 * attacks a rogue peer tries (a frame out of order, COMMIT before READY,
 * PAGES after DEVICE_STATE, a second PLAN, ...) through the frame-type
 * mapping the engines use, and two whole runs walk each side from its first
 * state to its last. */
#include <stdbool.h>
#include <string.h>

#include "base/base.h"
#include "check.h"
#include "engine/internal.h"
#include "proto/proto.h"

#define REFUSED (-1)
#define ANY	2 /* vtpm: the row holds with and without a vTPM */

/* ---- source ------------------------------------------------------------- */
static const struct {
	enum src_state from;
	enum smg_src_input in;
	enum src_state to;
} src_legal[] = {
    {SRC_SETUP, SRC_IN_PLAN_ACK, SRC_PRECOPY},
    {SRC_SETUP, SRC_IN_ABORT, SRC_ABORTED},
    {SRC_SETUP, SRC_IN_FAIL, SRC_ABORTED},
    {SRC_PRECOPY, SRC_IN_ROUND, SRC_PRECOPY},
    {SRC_PRECOPY, SRC_IN_STOP, SRC_STOPCOPY},
    {SRC_PRECOPY, SRC_IN_ABORT, SRC_ABORTED},
    {SRC_PRECOPY, SRC_IN_FAIL, SRC_ABORTED},
    {SRC_STOPCOPY, SRC_IN_SENT, SRC_HANDOVER},
    {SRC_STOPCOPY, SRC_IN_ABORT, SRC_ABORTED},
    {SRC_STOPCOPY, SRC_IN_FAIL, SRC_ABORTED},
    {SRC_HANDOVER, SRC_IN_READY, SRC_VERIFIED},
    {SRC_HANDOVER, SRC_IN_ABORT, SRC_ABORTED},
    {SRC_HANDOVER, SRC_IN_FAIL, SRC_ABORTED},
    {SRC_VERIFIED, SRC_IN_COMMIT, SRC_COMMITTED},
    {SRC_VERIFIED, SRC_IN_ABORT, SRC_ABORTED},
    {SRC_VERIFIED, SRC_IN_FAIL, SRC_ABORTED},
    /* Past the point of no return nothing aborts: the outcome is DONE or
     * in doubt (the paused copy stays until resolve). */
    {SRC_COMMITTED, SRC_IN_DONE, SRC_DONE},
    {SRC_COMMITTED, SRC_IN_ABORT, SRC_IN_DOUBT},
    {SRC_COMMITTED, SRC_IN_FAIL, SRC_IN_DOUBT},
};

static int src_expect(enum src_state s, enum smg_src_input in)
{
	for (size_t i = 0; i < SMG_ARRAY_LEN(src_legal); i++)
		if (src_legal[i].from == s && src_legal[i].in == in)
			return (int)src_legal[i].to;
	return REFUSED;
}

static int src_got(enum src_state s, enum smg_src_input in)
{
	enum src_state next = (enum src_state)99;
	int r = smg_src_next_state(s, in, &next);

	if (r != SMG_OK) {
		CHECK_EQ(r, SMG_ERR_STATE);
		CHECK_EQ(next, 99); /* untouched on refusal */
		return REFUSED;
	}
	return (int)next;
}

/* Every pair of the product: the legal ones lead where the protocol says,
 * the rest are refused (the final states accept nothing). */
static void src_every_pair(void)
{
	unsigned legal = 0;

	for (int s = 0; s < SMG_SRC_STATES; s++)
		for (int in = 0; in < SMG_SRC_INPUTS; in++) {
			int want = src_expect((enum src_state)s, (enum smg_src_input)in);
			int got = src_got((enum src_state)s, (enum smg_src_input)in);
			if (got != want)
				fprintf(
				    stderr, "  source %s, input %d: got %d, want %d\n",
				    smg_src_state_name((enum src_state)s), in, got, want);
			CHECK_EQ(got, want);
			legal += want != REFUSED;
		}
	CHECK_EQ(legal, SMG_ARRAY_LEN(src_legal)); /* no row of ours is a duplicate */
	CHECK_EQ(src_got((enum src_state)SMG_SRC_STATES, SRC_IN_FAIL), REFUSED);
	CHECK_EQ(src_got(SRC_SETUP, (enum smg_src_input)SMG_SRC_INPUTS), REFUSED);
}

/* What a rogue destination sends, through the mapping recv_ctrl uses. */
static const struct {
	const char *what;
	enum src_state state;
	uint8_t frame;
	int to;
} src_frames[] = {
    {"PLAN_ACK answers the plan", SRC_SETUP, SMG_FT_PLAN_ACK, SRC_PRECOPY},
    {"READY before any round", SRC_SETUP, SMG_FT_READY, REFUSED},
    {"DONE before the plan is accepted", SRC_SETUP, SMG_FT_DONE, REFUSED},
    {"a PLAN from the destination", SRC_SETUP, SMG_FT_PLAN, REFUSED},
    {"ABORT refuses before the plan", SRC_SETUP, SMG_FT_ABORT, SRC_ABORTED},
    {"READY during pre-copy", SRC_PRECOPY, SMG_FT_READY, REFUSED},
    {"a second PLAN_ACK", SRC_PRECOPY, SMG_FT_PLAN_ACK, REFUSED},
    {"PAGES from the destination", SRC_PRECOPY, SMG_FT_PAGES, REFUSED},
    {"ABORT during a round", SRC_PRECOPY, SMG_FT_ABORT, SRC_ABORTED},
    {"READY before the manifest", SRC_STOPCOPY, SMG_FT_READY, REFUSED},
    {"ABORT while paused", SRC_STOPCOPY, SMG_FT_ABORT, SRC_ABORTED},
    {"READY after the manifest", SRC_HANDOVER, SMG_FT_READY, SRC_VERIFIED},
    {"DONE before COMMIT", SRC_HANDOVER, SMG_FT_DONE, REFUSED},
    {"a COMMIT from the destination", SRC_HANDOVER, SMG_FT_COMMIT, REFUSED},
    {"a second READY", SRC_VERIFIED, SMG_FT_READY, REFUSED},
    {"DONE before COMMIT went out", SRC_VERIFIED, SMG_FT_DONE, REFUSED},
    {"ABORT after READY (the re-check)", SRC_VERIFIED, SMG_FT_ABORT, SRC_ABORTED},
    {"DONE after COMMIT", SRC_COMMITTED, SMG_FT_DONE, SRC_DONE},
    {"READY again after COMMIT", SRC_COMMITTED, SMG_FT_READY, REFUSED},
    {"ABORT after COMMIT: in doubt", SRC_COMMITTED, SMG_FT_ABORT, SRC_IN_DOUBT},
    {"a second DONE", SRC_DONE, SMG_FT_DONE, REFUSED},
    {"ABORT after the end", SRC_ABORTED, SMG_FT_ABORT, REFUSED},
    {"a RESOLVE_ANSWER mid-migration", SRC_HANDOVER, SMG_FT_RESOLVE_ANSWER, REFUSED},
    {"an unassigned type", SRC_COMMITTED, 0xee, REFUSED},
};

static void src_frame_rows(void)
{
	for (size_t i = 0; i < SMG_ARRAY_LEN(src_frames); i++) {
		int got =
		    src_got(src_frames[i].state, smg_src_input_of(src_frames[i].frame));
		if (got != src_frames[i].to)
			fprintf(stderr, "  source row '%s': got %d, want %d\n",
				src_frames[i].what, got, src_frames[i].to);
		CHECK_EQ(got, src_frames[i].to);
	}
	/* Only the four frames a destination may send are inputs. */
	for (unsigned t = 0; t < 256; t++) {
		enum smg_src_input in = smg_src_input_of((uint8_t)t);
		bool known = t == SMG_FT_PLAN_ACK || t == SMG_FT_READY ||
			     t == SMG_FT_DONE || t == SMG_FT_ABORT;
		CHECK(known ? in != SRC_IN_STRAY : in == SRC_IN_STRAY);
	}
}

/* ---- destination -------------------------------------------------------- */
static const struct {
	enum dst_state from;
	enum smg_dst_input in;
	int vtpm; /* 0, 1 or ANY */
	enum dst_state to;
} dst_legal[] = {
    {DST_WAIT_PLAN, DST_IN_PLAN, ANY, DST_WAIT_ROUND},
    {DST_WAIT_ROUND, DST_IN_ROUND_START, ANY, DST_IN_ROUND},
    {DST_WAIT_ROUND, DST_IN_FINAL_START, ANY, DST_FINAL_ROUND},
    {DST_IN_ROUND, DST_IN_DATA, ANY, DST_IN_ROUND},
    {DST_IN_ROUND, DST_IN_ROUND_END, ANY, DST_WAIT_ROUND},
    {DST_FINAL_ROUND, DST_IN_DATA, ANY, DST_FINAL_ROUND},
    {DST_FINAL_ROUND, DST_IN_ROUND_END, ANY, DST_WAIT_STATE},
    {DST_WAIT_STATE, DST_IN_DEVICE_STATE, 1, DST_WAIT_VTPM},
    {DST_WAIT_STATE, DST_IN_DEVICE_STATE, 0, DST_WAIT_MANIFEST},
    {DST_WAIT_VTPM, DST_IN_VTPM_STATE, ANY, DST_WAIT_MANIFEST},
    {DST_WAIT_MANIFEST, DST_IN_MANIFEST, ANY, DST_VERIFY},
    {DST_VERIFY, DST_IN_VERIFIED, ANY, DST_READY_SENT},
    {DST_READY_SENT, DST_IN_COMMIT, ANY, DST_RESUMED},
};

static int dst_expect(enum dst_state s, enum smg_dst_input in, bool vtpm)
{
	/* Before the end, the source's ABORT and our own failure end it. */
	if (s != DST_RESUMED && s != DST_ABORTED &&
	    (in == DST_IN_ABORT || in == DST_IN_FAIL))
		return DST_ABORTED;
	for (size_t i = 0; i < SMG_ARRAY_LEN(dst_legal); i++)
		if (dst_legal[i].from == s && dst_legal[i].in == in &&
		    (dst_legal[i].vtpm == ANY || dst_legal[i].vtpm == (int)vtpm))
			return (int)dst_legal[i].to;
	return REFUSED;
}

static int dst_got(enum dst_state s, enum smg_dst_input in, bool vtpm)
{
	enum dst_state next = (enum dst_state)99;
	int r = smg_dst_next_state(s, in, vtpm, &next);

	if (r != SMG_OK) {
		CHECK_EQ(r, SMG_ERR_STATE);
		CHECK_EQ(next, 99);
		return REFUSED;
	}
	return (int)next;
}

static void dst_every_pair(void)
{
	for (int v = 0; v < 2; v++)
		for (int s = 0; s < SMG_DST_STATES; s++)
			for (int in = 0; in < SMG_DST_INPUTS; in++) {
				int want = dst_expect((enum dst_state)s,
						      (enum smg_dst_input)in, v);
				int got =
				    dst_got((enum dst_state)s, (enum smg_dst_input)in, v);
				if (got != want)
					fprintf(stderr,
						"  destination %s, input %d, vtpm %d: "
						"got %d, want %d\n",
						smg_dst_state_name((enum dst_state)s), in,
						v, got, want);
				CHECK_EQ(got, want);
			}
	CHECK_EQ(dst_got((enum dst_state)SMG_DST_STATES, DST_IN_FAIL, false), REFUSED);
	CHECK_EQ(dst_got(DST_WAIT_PLAN, (enum smg_dst_input)SMG_DST_INPUTS, false),
		 REFUSED);
}

/* What a rogue source sends, through the mapping the destination uses. */
static const struct {
	const char *what;
	enum dst_state state;
	uint8_t frame;
	bool vtpm;
	int to;
} dst_frames[] = {
    {"the plan", DST_WAIT_PLAN, SMG_FT_PLAN, false, DST_WAIT_ROUND},
    {"pages before the plan", DST_WAIT_PLAN, SMG_FT_PAGES, false, REFUSED},
    {"COMMIT as the first frame", DST_WAIT_PLAN, SMG_FT_COMMIT, false, REFUSED},
    {"ABORT before the plan", DST_WAIT_PLAN, SMG_FT_ABORT, false, DST_ABORTED},
    {"a second PLAN", DST_WAIT_ROUND, SMG_FT_PLAN, false, REFUSED},
    {"a PLAN in a round", DST_IN_ROUND, SMG_FT_PLAN, false, REFUSED},
    {"pages before ROUND_START", DST_WAIT_ROUND, SMG_FT_PAGES, false, REFUSED},
    {"zero pages before ROUND_START", DST_WAIT_ROUND, SMG_FT_ZERO_PAGES, false, REFUSED},
    {"a disk chunk before ROUND_START", DST_WAIT_ROUND, SMG_FT_DISK_CHUNK, false,
     REFUSED},
    {"ROUND_END before ROUND_START", DST_WAIT_ROUND, SMG_FT_ROUND_END, false, REFUSED},
    {"ROUND_START inside a round", DST_IN_ROUND, SMG_FT_ROUND_START, false, REFUSED},
    {"a disk chunk in a round", DST_IN_ROUND, SMG_FT_DISK_CHUNK, false, DST_IN_ROUND},
    {"DEVICE_STATE before the final round", DST_IN_ROUND, SMG_FT_DEVICE_STATE, false,
     REFUSED},
    {"DEVICE_STATE between rounds", DST_WAIT_ROUND, SMG_FT_DEVICE_STATE, false, REFUSED},
    {"DEVICE_STATE inside the final round", DST_FINAL_ROUND, SMG_FT_DEVICE_STATE, false,
     REFUSED},
    {"MANIFEST inside the final round", DST_FINAL_ROUND, SMG_FT_MANIFEST, false, REFUSED},
    {"ROUND_START after the final round", DST_WAIT_STATE, SMG_FT_ROUND_START, false,
     REFUSED},
    {"pages after the final round", DST_WAIT_STATE, SMG_FT_PAGES, false, REFUSED},
    {"MANIFEST before DEVICE_STATE", DST_WAIT_STATE, SMG_FT_MANIFEST, false, REFUSED},
    {"DEVICE_STATE, no vTPM", DST_WAIT_STATE, SMG_FT_DEVICE_STATE, false,
     DST_WAIT_MANIFEST},
    {"DEVICE_STATE, a vTPM", DST_WAIT_STATE, SMG_FT_DEVICE_STATE, true, DST_WAIT_VTPM},
    {"PAGES after DEVICE_STATE", DST_WAIT_MANIFEST, SMG_FT_PAGES, false, REFUSED},
    {"PAGES after DEVICE_STATE (vTPM due)", DST_WAIT_VTPM, SMG_FT_PAGES, true, REFUSED},
    {"a second DEVICE_STATE", DST_WAIT_MANIFEST, SMG_FT_DEVICE_STATE, false, REFUSED},
    {"VTPM_STATE for a VM without one", DST_WAIT_MANIFEST, SMG_FT_VTPM_STATE, false,
     REFUSED},
    {"MANIFEST before the vTPM's state", DST_WAIT_VTPM, SMG_FT_MANIFEST, true, REFUSED},
    {"a second VTPM_STATE", DST_WAIT_MANIFEST, SMG_FT_VTPM_STATE, true, REFUSED},
    {"the manifest", DST_WAIT_MANIFEST, SMG_FT_MANIFEST, false, DST_VERIFY},
    {"COMMIT before READY", DST_WAIT_MANIFEST, SMG_FT_COMMIT, false, REFUSED},
    {"COMMIT in a round", DST_IN_ROUND, SMG_FT_COMMIT, false, REFUSED},
    {"COMMIT while verifying", DST_VERIFY, SMG_FT_COMMIT, false, REFUSED},
    {"a second MANIFEST", DST_READY_SENT, SMG_FT_MANIFEST, false, REFUSED},
    {"pages after READY", DST_READY_SENT, SMG_FT_PAGES, false, REFUSED},
    {"COMMIT after READY", DST_READY_SENT, SMG_FT_COMMIT, false, DST_RESUMED},
    {"ABORT after READY", DST_READY_SENT, SMG_FT_ABORT, false, DST_ABORTED},
    {"a second COMMIT", DST_RESUMED, SMG_FT_COMMIT, false, REFUSED},
    {"ABORT after resume", DST_RESUMED, SMG_FT_ABORT, false, REFUSED},
    {"a READY from the source", DST_READY_SENT, SMG_FT_READY, false, REFUSED},
    {"a PLAN_ACK from the source", DST_WAIT_PLAN, SMG_FT_PLAN_ACK, false, REFUSED},
    {"a RESOLVE_QUERY mid-migration", DST_IN_ROUND, SMG_FT_RESOLVE_QUERY, false, REFUSED},
    {"a PRECHECK mid-migration", DST_WAIT_ROUND, SMG_FT_PRECHECK, false, REFUSED},
    {"a handshake HELLO mid-migration", DST_IN_ROUND, SMG_FT_HELLO, false, REFUSED},
    {"an unassigned type", DST_IN_ROUND, 0xee, false, REFUSED},
};

static void dst_frame_rows(void)
{
	static const uint8_t known[] = {
	    SMG_FT_PLAN,       SMG_FT_ROUND_START, SMG_FT_PAGES,	SMG_FT_ZERO_PAGES,
	    SMG_FT_DISK_CHUNK, SMG_FT_ROUND_END,   SMG_FT_DEVICE_STATE, SMG_FT_VTPM_STATE,
	    SMG_FT_MANIFEST,   SMG_FT_COMMIT,	   SMG_FT_ABORT,
	};

	for (size_t i = 0; i < SMG_ARRAY_LEN(dst_frames); i++) {
		int got =
		    dst_got(dst_frames[i].state, smg_dst_input_of(dst_frames[i].frame),
			    dst_frames[i].vtpm);
		if (got != dst_frames[i].to)
			fprintf(stderr, "  destination row '%s': got %d, want %d\n",
				dst_frames[i].what, got, dst_frames[i].to);
		CHECK_EQ(got, dst_frames[i].to);
	}
	/* A ROUND_START maps to the non-final input; the destination tells
	 * the final one apart once parsed. Only a source's frames are inputs. */
	CHECK_EQ(smg_dst_input_of(SMG_FT_ROUND_START), DST_IN_ROUND_START);
	for (unsigned t = 0; t < 256; t++) {
		bool is_known = memchr(known, (int)t, sizeof(known)) != NULL;
		enum smg_dst_input in = smg_dst_input_of((uint8_t)t);
		CHECK(is_known ? in != DST_IN_STRAY : in == DST_IN_STRAY);
	}
}

/* ---- whole runs ---------------------------------------------------------- */
static void src_run(void)
{
	static const enum smg_src_input run[] = {
	    SRC_IN_PLAN_ACK, SRC_IN_ROUND, SRC_IN_ROUND,  SRC_IN_STOP,
	    SRC_IN_SENT,     SRC_IN_READY, SRC_IN_COMMIT, SRC_IN_DONE,
	};
	static const enum src_state path[] = {
	    SRC_PRECOPY,  SRC_PRECOPY,	SRC_PRECOPY,   SRC_STOPCOPY,
	    SRC_HANDOVER, SRC_VERIFIED, SRC_COMMITTED, SRC_DONE,
	};
	enum src_state s = SRC_SETUP;

	for (size_t i = 0; i < SMG_ARRAY_LEN(run); i++) {
		CHECK_EQ(smg_src_next_state(s, run[i], &s), SMG_OK);
		CHECK_EQ(s, path[i]);
	}
}

static void dst_run(bool vtpm)
{
	const uint8_t frames[] = {
	    SMG_FT_PLAN,       SMG_FT_ROUND_START, SMG_FT_PAGES,      SMG_FT_ZERO_PAGES,
	    SMG_FT_ROUND_END,  SMG_FT_ROUND_START, SMG_FT_DISK_CHUNK, SMG_FT_ROUND_END,
	    0 /* final */,     SMG_FT_PAGES,	   SMG_FT_ROUND_END,  SMG_FT_DEVICE_STATE,
	    SMG_FT_VTPM_STATE, SMG_FT_MANIFEST,	   0 /* verified */,  SMG_FT_COMMIT,
	};
	enum dst_state s = DST_WAIT_PLAN;

	for (size_t i = 0; i < SMG_ARRAY_LEN(frames); i++) {
		enum smg_dst_input in = smg_dst_input_of(frames[i]);
		if (i == 8)
			in = DST_IN_FINAL_START;
		else if (i == 14)
			in = DST_IN_VERIFIED;
		else if (frames[i] == SMG_FT_VTPM_STATE && !vtpm)
			continue;
		CHECK_EQ(smg_dst_next_state(s, in, vtpm, &s), SMG_OK);
	}
	CHECK_EQ(s, DST_RESUMED);
}

int main(void)
{
	src_every_pair();
	src_frame_rows();
	src_run();
	dst_every_pair();
	dst_frame_rows();
	dst_run(false);
	dst_run(true);
	/* Names for the logs: one per state, none missing. */
	for (int s = 0; s < SMG_SRC_STATES; s++)
		CHECK(strcmp(smg_src_state_name((enum src_state)s), "?") != 0);
	for (int s = 0; s < SMG_DST_STATES; s++)
		CHECK(strcmp(smg_dst_state_name((enum dst_state)s), "?") != 0);
	return check_result("test_engine_states");
}
