#!/usr/bin/env bash
# The RESOLVE answer is signed (issue 16): after an in-doubt migration
# (the destination resumed, DONE never came) the source settles its paused
# copy only on an answer signed by the destination's enrolled key over that
# session, migration id and outcome. An unsigned answer, a flipped
# signature, and a signature over another outcome than the one sent are
# each refused with exit 7, the source copy still paused and in doubt;
# then a genuine answer settles it (the destination runs the VM).
. "$SMG_SRC/test/engine/lib.sh"

resolve() { # [receiver env...] -> RRC
	start_recv "$@"
	"$SECMIG" --quiet resolve --domain rs1 --to "127.0.0.1:$PORT" --json \
		--state-dir "$A" --name src >"$T/resolve.out" 2>"$T/resolve.err"
	RRC=$?
	wait "$RECV_PID"
}

vm rs1 16M hotspot 5M
start_recv SMG_FI=dst_no_done
send rs1
wait "$RECV_PID"
[ "$RC" = 9 ] || err "dst_no_done: send exit $RC, want 9"
[ "$(state_on "$A" rs1)" = in_doubt ] || err "source copy not kept paused"

for f in audit_resolve_unsigned audit_resolve_sig_flip audit_resolve_outcome_swap; do
	resolve SMG_FI=$f
	[ "$RRC" = 7 ] || { err "$f: resolve exit $RRC, want 7"; cat "$T/resolve.err"; }
	grep -q "resolve answer from 'dst' rejected" "$T/resolve.err" ||
		err "$f: no rejection in the log: $(cat "$T/resolve.err")"
	[ "$(state_on "$A" rs1)" = in_doubt ] || err "$f: the source copy was settled"
	[ "$(state_on "$B" rs1)" = running ] || err "$f: the destination's VM: $(state_on "$B" rs1)"
done

resolve
[ "$RRC" = 0 ] || { err "genuine answer: resolve exit $RRC"; cat "$T/resolve.err"; }
grep -q running_on_destination "$T/resolve.out" || err "resolve: $(cat "$T/resolve.out")"
expect_on B rs1 "in doubt, settled by a signed answer"
exit $fail
