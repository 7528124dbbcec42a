#!/usr/bin/env bash
# `secmig sim`: a host with domains that outlive their clients, config errors
# named by line, every workload pattern (including a recorded trace), verify.
set -u
T=$(mktemp -d /tmp/smg-simcli.XXXXXX)
fail=0
err() { echo "FAIL: $*"; fail=1; }
"$SECMIG" --quiet sim host --state-dir "$T" & HOST=$!
trap 'kill $HOST 2>/dev/null; wait $HOST 2>/dev/null; rm -rf "$T"' EXIT
for i in $(seq 100); do [ -S "$T/sim.sock" ] && break; sleep 0.05; done

seq 0 7 400 >"$T/trace.txt"
for wl in idle uniform hotspot trace; do
	printf 'name = %s\nmemory = 8M\nvcpus = 3\nworkload = %s\ndirty_rate = 20M\ntrace = %s\nzero_pct = 30\n' \
		"$wl" "$wl" "$T/trace.txt" >"$T/$wl.cfg"
	"$SECMIG" sim --state-dir "$T" create "$T/$wl.cfg" >/dev/null || err "create $wl"
done
sleep 0.5
"$SECMIG" sim --state-dir "$T" list >"$T/list"
[ "$(wc -l <"$T/list")" = 4 ] || err "list: $(cat "$T/list")"
for wl in uniform hotspot trace; do
	w=$(awk -v n=$wl '$1 == n {print $5}' "$T/list")
	[ "${w:-0}" -gt 100 ] || err "$wl: only ${w:-0} writes"
done
for wl in idle uniform hotspot trace; do
	"$SECMIG" sim --state-dir "$T" verify $wl >"$T/v" || { err "verify $wl"; cat "$T/v"; }
done
grep -q "zero=" "$T/v" || err "verify prints no counts"

"$SECMIG" sim --state-dir "$T" create "$T/idle.cfg" 2>"$T/e"
[ $? = 12 ] || err "duplicate name not refused"
printf 'name = bad\nmemory = 8M\nvcpus = many\n' >"$T/bad.cfg"
"$SECMIG" sim --state-dir "$T" create "$T/bad.cfg" 2>"$T/e"
[ $? = 11 ] || err "bad config: wrong exit"
grep -q "line 3" "$T/e" || err "bad config: no line number: $(cat "$T/e")"
"$SECMIG" sim --state-dir "$T" verify nosuch 2>/dev/null
[ $? = 12 ] || err "verify of a missing domain"
"$SECMIG" sim --state-dir "$T/nowhere" list 2>/dev/null
[ $? = 12 ] || err "no host: wrong exit"
"$SECMIG" sim --state-dir "$T" frob 2>/dev/null
[ $? = 2 ] || err "unknown subcommand"
"$SECMIG" sim --state-dir "$T" destroy trace || err "destroy"
[ "$("$SECMIG" sim --state-dir "$T" list | wc -l)" = 3 ] || err "destroy left it"

# One host per directory: a second one refuses to take over the socket.
"$SECMIG" sim host --state-dir "$T" 2>"$T/e"
[ $? = 12 ] || err "a second host on the same directory did not fail"
grep -q "a sim host already serves $T/sim.sock" "$T/e" || err "second host: $(cat "$T/e")"
"$SECMIG" sim --state-dir "$T" list >/dev/null || err "the first host is gone"

# Peer credentials: with the directory and socket loosened by hand, a
# process of another user is hung up on without an answer.
chmod 711 "$T"; chmod 666 "$T/sim.sock"
python3 - "$T/sim.sock" <<'EOF2' >"$T/nobody.out" 2>&1
import os, socket, sys
os.setgid(65534); os.setuid(65534)
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.connect(sys.argv[1])
s.settimeout(5)
try:
    s.send(b"LIST")
    print("sim.sock got", len(s.recv(100)))
except (ConnectionResetError, BrokenPipeError):
    print("sim.sock got 0")  # hung up on: refused
except Exception as e:
    print("sim.sock error", type(e).__name__)
EOF2
chmod 700 "$T"; chmod 600 "$T/sim.sock"
grep -q "sim.sock got 0" "$T/nobody.out" || { err "another uid was served"; cat "$T/nobody.out"; }
"$SECMIG" sim --state-dir "$T" list >/dev/null || err "host gone after another uid's client"
[ $fail = 0 ] && echo "sim cli: all checks passed"
exit $fail
