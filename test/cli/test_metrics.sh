#!/usr/bin/env bash
# `secmig metrics` (issue 17 item 4) against a migration this test runs: a
# service receiver on B takes one migration from src and refuses a peer it
# does not enrol, is reloaded (SIGHUP), and the scrape must say exactly
# that: migrated 1 with the bytes and rounds of recv's JSON result, the
# refusal under reason unknown_peer, one reload, nothing active; in the
# Prometheus text format, checked by a strict parser (prom_check.py, which
# must itself reject broken input). --output writes the same text to a file
# atomically, for node_exporter's textfile collector.
. "$SMG_SRC/test/engine/lib.sh"
CHECKER="$SMG_SRC/test/cli/prom_check.py"

# the format checker rejects what it must
printf '# TYPE a counter\na{x="1"} 1\nb 2\na{x="2"} 3\n' >"$T/bad1.prom"
printf '# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_sum 0\nh_count 1\n' >"$T/bad2.prom"
printf 'a{x="1} 1\n' >"$T/bad3.prom"
printf '# TYPE a counter\na -1\n' >"$T/bad4.prom"
for b in 1 2 3 4; do
	python3 "$CHECKER" "$T/bad$b.prom" >/dev/null 2>&1 && err "prom_check accepts bad$b.prom"
done

# a peer B does not enrol, with a VM of its own
N=$T/new
mkdir -p "$N"
"$SECMIG" keygen "$N/host.key" >/dev/null || exit 1
echo "dst $(cat "$B/host.key.pub")" >"$N/peers"
chmod 600 "$N/peers"
"$SECMIG" --quiet sim host --state-dir "$N" & PIDS+=($!)
for i in $(seq 100); do [ -S "$N/sim.sock" ] && break; sleep 0.05; done
printf 'name = n1\nmemory = 8M\nvcpus = 1\nworkload = uniform\ndirty_rate = 1M\n' >"$T/n1.cfg"
"$SECMIG" sim --state-dir "$N" create "$T/n1.cfg" >/dev/null || err "create n1"

"$SECMIG" recv --listen 127.0.0.1:0 --json --state-dir "$B" --name dst \
	--insecure-software-mode --defs "$B/defs" >"$T/recv.out" 2>"$T/recv.err" &
RECV_PID=$!
PIDS+=($RECV_PID)
PORT=
for i in $(seq 200); do
	PORT=$(sed -n 's/.*"event":"listening".*"port":\([0-9]*\).*/\1/p' "$T/recv.out")
	[ -n "$PORT" ] && break
	sleep 0.05
done
[ -n "$PORT" ] || { err "receiver did not start"; exit 1; }

# scrape NAME: metrics into $T/NAME.prom, checked, as sorted lines in NAME.txt
scrape() {
	"$SECMIG" metrics --state-dir "$B" >"$T/$1.prom" 2>"$T/$1.err" ||
		err "secmig metrics exit $?: $(cat "$T/$1.err")"
	python3 "$CHECKER" "$T/$1.prom" >"$T/$1.txt" 2>"$T/$1.check" ||
		err "scrape $1 is not valid exposition text: $(cat "$T/$1.check")"
}
# val NAME SERIES: the value of one series (labels sorted) or "missing"
val() { awk -v s="$2" '$1 == s { print $2; f = 1 } END { if (!f) print "missing" }' "$T/$1.txt"; }
want() { # NAME SERIES VALUE
	local v
	v=$(val "$1" "$2")
	[ "$v" = "$3" ] || err "$1: $2 is $v, want $3"
}

scrape before
want before 'secmig_processes{}' 1
want before 'secmig_migrations_total{outcome="migrated",role="recv"}' 0

# one migration from src
vm small 8M uniform 1M
send small
[ "$RC" = 0 ] || err "migration from src: send exit $RC"
expect_on B small "metrics migration"
for i in $(seq 200); do grep -q '"event":"result"' "$T/recv.out" && break; sleep 0.05; done
RES=$(grep '"event":"result"' "$T/recv.out" | head -n 1)
BYTES=$(sed -n 's/.*"bytes_sent":\([0-9]*\).*/\1/p' <<<"$RES")
ROUNDS=$(sed -n 's/.*"rounds":\([0-9]*\).*/\1/p' <<<"$RES")
[ -n "$BYTES" ] && [ "$BYTES" -gt 0 ] || err "recv's result has no bytes_sent: $RES"

# the peer B does not enrol: refused at the handshake
"$SECMIG" --quiet send --to "127.0.0.1:$PORT" --peer dst --domain n1 --json \
	--state-dir "$N" --name new >"$T/new.out" 2>"$T/new.err"
NRC=$?
[ "$NRC" = 3 ] || err "unenrolled peer: send exit $NRC, want 3"

# counters survive a reload
kill -HUP "$RECV_PID"
for i in $(seq 400); do
	grep -q '"event":"reloaded","generation":2' "$T/recv.out" && break
	sleep 0.05
done
grep -q '"event":"reloaded","generation":2' "$T/recv.out" || err "recv did not reload"

scrape after
want after 'secmig_processes{}' 1
want after 'secmig_migrations_total{outcome="migrated",role="recv"}' 1
for o in failed cancelled in_doubt refused; do
	want after "secmig_migrations_total{outcome=\"$o\",role=\"recv\"}" 0
done
want after 'secmig_transferred_bytes_total{role="recv"}' "$BYTES"
want after 'secmig_refused_total{reason="unknown_peer",role="recv"}' 1
want after 'secmig_refused_total{reason="auth",role="recv"}' 0
want after 'secmig_downtime_seconds_count{role="recv"}' 1
want after 'secmig_downtime_seconds_bucket{le="+Inf",role="recv"}' 1
want after 'secmig_rounds_count{role="recv"}' 1
want after 'secmig_rounds_sum{role="recv"}' "$ROUNDS"
want after 'secmig_active_migrations{role="recv"}' 0
want after 'secmig_reloads_total{result="ok"}' 1
want after 'secmig_reloads_total{result="failed"}' 0
for f in secmig_migrations_total secmig_refused_total secmig_transferred_bytes_total \
	secmig_downtime_seconds secmig_rounds secmig_active_migrations secmig_reloads_total; do
	grep -q "^# HELP $f " "$T/after.prom" || err "no HELP for $f"
	grep -q "^# TYPE $f " "$T/after.prom" || err "no TYPE for $f"
done

# --output: the same text in a file, world-readable for the collector
"$SECMIG" metrics --state-dir "$B" --output "$T/textfile.prom" || err "metrics --output exit $?"
[ "$(stat -c %a "$T/textfile.prom")" = 644 ] || err "--output file mode $(stat -c %a "$T/textfile.prom")"
python3 "$CHECKER" "$T/textfile.prom" >"$T/textfile.txt" || err "--output text is not valid"
cmp -s "$T/textfile.txt" "$T/after.txt" || err "--output differs from stdout"
ls "$T" | grep -q '\.tmp$' && err "--output left a temporary file"

# recv's log lines: timestamp, level, the migration id; no file:line
grep -q "^20[0-9-]*T[0-9:.]*Z secmig info: migration=[0-9a-f]\{32\} peer=src domain=small: " "$T/recv.err" ||
	err "recv logged no line with timestamp, level and migration id: $(head -n 3 "$T/recv.err")"
grep -q '\.c:[0-9]' "$T/recv.err" && err "recv's log shows file:line without -v: $(grep -m1 '\.c:[0-9]' "$T/recv.err")"

[ $fail = 0 ] && { echo "metrics: all checks passed"; cat "$T/after.prom" | grep -v '^#' | grep -v ' 0$'; }
exit $fail
