/* The transitions of the source and destination state machines (DESIGN §1,
 * §6, §7; docs/protocol.md "Sequence"), as tables: a pair that is not in a
 * table is refused. They do no I/O and hold no state, so
 * test/engine/test_states.c checks every pair against its own table of
 * what the protocol allows.
 *
 * ABORT and a local failure end every state before the point of no
 * return in ABORTED; after it the source cannot know whether the
 * destination resumed (IN_DOUBT), and the destination keeps the copy it
 * committed (ABORTED with its COMMIT recorded: resolve resumes it). */
#include "engine/internal.h"
#include "proto/proto.h"

/* 0 in a table is "refused"; a transition to s is stored as s + 1. */
#define TO(s)	    ((uint8_t)((s) + 1))
#define SRC_ENDS(s) [SRC_IN_ABORT] = TO(s), [SRC_IN_FAIL] = TO(s)
#define DST_ENDS    [DST_IN_ABORT] = TO(DST_ABORTED), [DST_IN_FAIL] = TO(DST_ABORTED)

static const uint8_t src_next[SMG_SRC_STATES][SMG_SRC_INPUTS] = {
    [SRC_SETUP] = {[SRC_IN_PLAN_ACK] = TO(SRC_PRECOPY), SRC_ENDS(SRC_ABORTED)},
    [SRC_PRECOPY] = {[SRC_IN_ROUND] = TO(SRC_PRECOPY),
		     [SRC_IN_STOP] = TO(SRC_STOPCOPY),
		     SRC_ENDS(SRC_ABORTED)},
    [SRC_STOPCOPY] = {[SRC_IN_SENT] = TO(SRC_HANDOVER), SRC_ENDS(SRC_ABORTED)},
    [SRC_HANDOVER] = {[SRC_IN_READY] = TO(SRC_VERIFIED), SRC_ENDS(SRC_ABORTED)},
    [SRC_VERIFIED] = {[SRC_IN_COMMIT] = TO(SRC_COMMITTED), SRC_ENDS(SRC_ABORTED)},
    [SRC_COMMITTED] = {[SRC_IN_DONE] = TO(SRC_DONE), SRC_ENDS(SRC_IN_DOUBT)},
    /* DONE, ABORTED and IN_DOUBT are final: nothing follows them. */
};

static const uint8_t dst_next[SMG_DST_STATES][SMG_DST_INPUTS] = {
    [DST_WAIT_PLAN] = {[DST_IN_PLAN] = TO(DST_WAIT_ROUND), DST_ENDS},
    [DST_WAIT_ROUND] = {[DST_IN_ROUND_START] = TO(DST_IN_ROUND),
			[DST_IN_FINAL_START] = TO(DST_FINAL_ROUND),
			DST_ENDS},
    [DST_IN_ROUND] = {[DST_IN_DATA] = TO(DST_IN_ROUND),
		      [DST_IN_ROUND_END] = TO(DST_WAIT_ROUND),
		      DST_ENDS},
    [DST_FINAL_ROUND] = {[DST_IN_DATA] = TO(DST_FINAL_ROUND),
			 [DST_IN_ROUND_END] = TO(DST_WAIT_STATE),
			 DST_ENDS},
    /* Without a vTPM, smg_dst_next_state goes on to WAIT_MANIFEST. */
    [DST_WAIT_STATE] = {[DST_IN_DEVICE_STATE] = TO(DST_WAIT_VTPM), DST_ENDS},
    [DST_WAIT_VTPM] = {[DST_IN_VTPM_STATE] = TO(DST_WAIT_MANIFEST), DST_ENDS},
    [DST_WAIT_MANIFEST] = {[DST_IN_MANIFEST] = TO(DST_VERIFY), DST_ENDS},
    [DST_VERIFY] = {[DST_IN_VERIFIED] = TO(DST_READY_SENT), DST_ENDS},
    [DST_READY_SENT] = {[DST_IN_COMMIT] = TO(DST_RESUMED), DST_ENDS},
    /* RESUMED and ABORTED are final. */
};

enum smg_src_input smg_src_input_of(uint8_t frame_type)
{
	switch (frame_type) {
	case SMG_FT_PLAN_ACK:
		return SRC_IN_PLAN_ACK;
	case SMG_FT_READY:
		return SRC_IN_READY;
	case SMG_FT_DONE:
		return SRC_IN_DONE;
	case SMG_FT_ABORT:
		return SRC_IN_ABORT;
	default:
		return SRC_IN_STRAY;
	}
}

enum smg_dst_input smg_dst_input_of(uint8_t frame_type)
{
	switch (frame_type) {
	case SMG_FT_PLAN:
		return DST_IN_PLAN;
	case SMG_FT_ROUND_START:
		return DST_IN_ROUND_START;
	case SMG_FT_PAGES:
	case SMG_FT_ZERO_PAGES:
	case SMG_FT_DISK_CHUNK:
		return DST_IN_DATA;
	case SMG_FT_ROUND_END:
		return DST_IN_ROUND_END;
	case SMG_FT_DEVICE_STATE:
		return DST_IN_DEVICE_STATE;
	case SMG_FT_VTPM_STATE:
		return DST_IN_VTPM_STATE;
	case SMG_FT_MANIFEST:
		return DST_IN_MANIFEST;
	case SMG_FT_COMMIT:
		return DST_IN_COMMIT;
	case SMG_FT_ABORT:
		return DST_IN_ABORT;
	default:
		return DST_IN_STRAY;
	}
}

int smg_src_next_state(enum src_state s, enum smg_src_input in, enum src_state *next)
{
	uint8_t to;

	if ((unsigned)s >= SMG_SRC_STATES || (unsigned)in >= SMG_SRC_INPUTS ||
	    (to = src_next[s][in]) == 0)
		return SMG_ERR_STATE;
	*next = (enum src_state)(to - 1);
	return SMG_OK;
}

int smg_dst_next_state(enum dst_state s, enum smg_dst_input in, bool vtpm,
		       enum dst_state *next)
{
	uint8_t to;

	if ((unsigned)s >= SMG_DST_STATES || (unsigned)in >= SMG_DST_INPUTS ||
	    (to = dst_next[s][in]) == 0)
		return SMG_ERR_STATE;
	*next = (enum dst_state)(to - 1);
	if (*next == DST_WAIT_VTPM && !vtpm)
		*next = DST_WAIT_MANIFEST;
	return SMG_OK;
}

const char *smg_src_state_name(enum src_state s)
{
	static const char *const names[SMG_SRC_STATES] = {
	    [SRC_SETUP] = "setup",	 [SRC_PRECOPY] = "precopy",
	    [SRC_STOPCOPY] = "stopcopy", [SRC_HANDOVER] = "handover",
	    [SRC_VERIFIED] = "verified", [SRC_COMMITTED] = "committed",
	    [SRC_DONE] = "done",	 [SRC_ABORTED] = "aborted",
	    [SRC_IN_DOUBT] = "in_doubt",
	};

	return (unsigned)s < SMG_SRC_STATES ? names[s] : "?";
}

const char *smg_dst_state_name(enum dst_state s)
{
	static const char *const names[SMG_DST_STATES] = {
	    [DST_WAIT_PLAN] = "wait_plan",
	    [DST_WAIT_ROUND] = "wait_round",
	    [DST_IN_ROUND] = "in_round",
	    [DST_FINAL_ROUND] = "final_round",
	    [DST_WAIT_STATE] = "wait_state",
	    [DST_WAIT_VTPM] = "wait_vtpm",
	    [DST_WAIT_MANIFEST] = "wait_manifest",
	    [DST_VERIFY] = "verify",
	    [DST_READY_SENT] = "ready_sent",
	    [DST_RESUMED] = "resumed",
	    [DST_ABORTED] = "aborted",
	};

	return (unsigned)s < SMG_DST_STATES ? names[s] : "?";
}
