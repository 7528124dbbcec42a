/* The pre-copy stop rule. Ours is QEMU's (stop once the dirty set fits
 * bandwidth x max-downtime) sharpened for low downtime: while the dirty set
 * still halves every round, one more round is cheaper than the downtime it
 * saves, so we only stop when it fits AND has stopped shrinking (or is
 * already tiny). The estimate covers everything that happens while the VM
 * is paused: dirty memory and the disk delta over the link, plus the fixed
 * costs the caller knows (the destination's load time).
 *
 * --max-downtime is a limit, not a hint: stop-and-copy only starts over it
 * when the operator chose --on-no-converge extend. Non-convergence
 * (dirtying outpaced sending two rounds in a row) is answered by throttle
 * steps (auto-converge) until the throttle is maxed out; then, or at the
 * round cap, the policy decides: abort (the default, exit 8) or extend. The
 * round cap makes the loop finite by construction. */
#include <string.h>

#include "base/base.h"

#include "engine/engine.h"

#define XEN_DIRTY_PAGES_STOP 50
#define XEN_MAX_ROUNDS	     5
#define TINY_DIRTY_PAGES     16	 /* below this one more round is not worth it */
#define SHRINK_KEEP_GOING    0.5 /* continue while a round at least halves it */
#define OUTPACED_ROUNDS	     2
#define SHRINK_PROGRESS	     0.9  /* still shrinking by a tenth per round */
#define SHRINK_STUCK	     0.75 /* over the budget and shrinking by less than 1/4 */
#define BW_SMOOTH	     0.5  /* weight of the newest sample */
#define SMALL_SET_SHARE	     20	  /* a dirty set under budget/20 to send ... */
#define ROUND_COST_RATIO     20	  /* ... and a scan 20x that: stop */

void smg_precopy_init(struct smg_precopy *pc, enum smg_stop_rule rule,
		      unsigned max_downtime_ms, unsigned max_rounds, bool auto_converge)
{
	memset(pc, 0, sizeof(*pc));
	pc->rule = rule;
	pc->max_downtime_ms =
	    max_downtime_ms ? max_downtime_ms : SMG_MAX_DOWNTIME_DEFAULT_MS;
	pc->max_rounds = max_rounds ? max_rounds : SMG_MAX_ROUNDS_DEFAULT;
	pc->auto_converge = auto_converge;
	pc->prev_dirty = UINT64_MAX;
}

/* The budget cannot be met: the operator's policy decides. */
static enum smg_precopy_decision no_converge(struct smg_precopy *pc, const char *why)
{
	pc->why = why;
	if (pc->on_no_converge == SMG_NOCONV_EXTEND) {
		pc->over_budget = true;
		return SMG_PRECOPY_STOP;
	}
	return SMG_PRECOPY_ABORT;
}

/* Auto-converge. QEMU steps the throttle by a fixed increment; we also
 * jump straight to the cap the measurements call for (guest dirty rate at
 * most half the bandwidth), so a hopeless gap does not take ten rounds. */
static enum smg_precopy_decision outpaced(struct smg_precopy *pc)
{
	unsigned next, need = 0;
	double raw;

	pc->outpaced = 0;
	if (!pc->auto_converge)
		return no_converge(pc, "dirtying outpaces the link and auto-converge is "
				       "off");
	if (pc->throttle >= SMG_THROTTLE_MAX)
		return no_converge(pc, "dirtying outpaces the link at the maximum "
				       "throttle");
	raw = pc->dirty_rate / (1.0 - pc->throttle / 100.0);
	if (raw > 0 && pc->bw > 0 && pc->bw / 2 < raw)
		need = (unsigned)(100.0 * (1.0 - pc->bw / 2 / raw)) + 1;
	next = pc->throttle == 0 ? SMG_THROTTLE_FIRST : pc->throttle + SMG_THROTTLE_STEP;
	pc->throttle = next > need ? next : need;
	if (pc->throttle > SMG_THROTTLE_MAX)
		pc->throttle = SMG_THROTTLE_MAX;
	return SMG_PRECOPY_THROTTLE;
}

enum smg_precopy_decision smg_precopy_next_round(struct smg_precopy *pc,
						 uint64_t bytes_sent, uint64_t round_ns,
						 uint64_t dirty_pages, uint32_t page_size)
{
	double secs = round_ns > 0 ? (double)round_ns / 1e9 : 1e-6;
	double send_s = secs - pc->scan_ms / 1e3; /* the link's share of it */
	double dirty_bytes = (double)dirty_pages * page_size;
	double sample = (double)bytes_sent / (send_s > secs / 10 ? send_s : secs / 10);
	uint64_t prev = pc->prev_dirty;

	pc->round++;
	/* A round of a few pages says little about the link: keep the old
	 * estimate unless this one carried a real amount of data. */
	if (pc->bw == 0 || bytes_sent >= (1u << 20))
		pc->bw =
		    pc->bw == 0 ? sample : BW_SMOOTH * sample + (1 - BW_SMOOTH) * pc->bw;
	pc->dirty_rate = dirty_bytes / secs;
	/* Estimate with the worse of the smoothed and the newest rate: a link
	 * that just slowed down must not talk us into a long pause. */
	double bw = bytes_sent >= (1u << 20) && sample < pc->bw ? sample : pc->bw;
	pc->est_ms =
	    (bw > 0 ? (dirty_bytes + (double)pc->pending_bytes) / bw * 1000.0 : 0) +
	    pc->fixed_ms;
	pc->prev_dirty = dirty_pages;
	pc->over_budget = false;
	pc->why = NULL;

	switch (pc->rule) {
	case SMG_RULE_STOP_AND_COPY:
		return SMG_PRECOPY_STOP;
	case SMG_RULE_XEN:
		return dirty_pages < XEN_DIRTY_PAGES_STOP || pc->round >= XEN_MAX_ROUNDS
			   ? SMG_PRECOPY_STOP
			   : SMG_PRECOPY_CONTINUE;
	case SMG_RULE_DOWNTIME:
		break;
	}
	if (pc->est_ms <= pc->max_downtime_ms) {
		bool shrinking = prev == UINT64_MAX ||
				 (double)dirty_pages <= SHRINK_KEEP_GOING * (double)prev;

		/* Above a tenth of the budget, any real progress is worth one
		 * more round (the round cap still bounds it). */
		bool progress = prev != UINT64_MAX &&
				(double)dirty_pages < SHRINK_PROGRESS * (double)prev &&
				pc->est_ms > pc->max_downtime_ms / 10.0 &&
				pc->round < pc->max_rounds / 2;

		/* One more round saves at most the dirty set's transfer from
		 * the downtime and costs its scan besides (a backend without a
		 * dirty log hashes all memory every round: docs/qemu.md). Once
		 * that set is a small part of the budget and the scan dwarfs
		 * it, stop. */
		double xfer_ms = pc->est_ms - pc->fixed_ms;
		bool not_worth =
		    xfer_ms <= (double)pc->max_downtime_ms / SMALL_SET_SHARE &&
		    pc->scan_ms > ROUND_COST_RATIO * xfer_ms;

		pc->outpaced = 0;
		if (dirty_pages <= TINY_DIRTY_PAGES || pc->round >= pc->max_rounds ||
		    not_worth)
			return SMG_PRECOPY_STOP;
		return shrinking || progress ? SMG_PRECOPY_CONTINUE : SMG_PRECOPY_STOP;
	}
	if (pc->round >= pc->max_rounds)
		return no_converge(pc, "the round cap came before the estimate fit the "
				       "downtime budget");
	/* Dirtying outpaces sending when the pages dirtied during a round
	 * take at least as long to send as the round took. A set that barely
	 * shrinks counts too: with uniform writes the unique dirty pages
	 * saturate and understate the write rate. */
	bool stuck =
	    prev != UINT64_MAX && (double)dirty_pages > SHRINK_STUCK * (double)prev;
	if (pc->dirty_rate >= pc->bw || stuck)
		pc->outpaced++;
	else
		pc->outpaced = 0;
	if (pc->outpaced >= OUTPACED_ROUNDS)
		return outpaced(pc);
	return SMG_PRECOPY_CONTINUE;
}

double smg_precopy_eta(double remaining_bytes, double bw, double dirty_rate)
{
	double q = bw > 0 ? dirty_rate / bw : 1.0;

	if (remaining_bytes <= 0)
		return 0;
	if (bw <= 0 || q >= 0.95)
		return -1;
	return remaining_bytes / bw / (1.0 - q);
}

const char *smg_phase_name(enum smg_phase p)
{
	static const char *const names[] = {"setup",  "precopy", "stopcopy", "verify",
					    "commit", "done",	 "aborted",  "in_doubt"};

	return (unsigned)p < SMG_ARRAY_LEN(names) ? names[p] : "unknown";
}
