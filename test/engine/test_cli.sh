#!/usr/bin/env bash
# send/recv/resolve/demo command lines: usage errors (2), missing keys (11),
# an unknown receiver key (3), a missing domain (12); the VM is untouched.
. "$SMG_SRC/test/engine/lib.sh"
code() { # WANT DESC CMD...
	local want=$1 desc=$2; shift 2
	"$@" >"$T/out" 2>"$T/err"
	local rc=$?
	[ "$rc" = "$want" ] || { err "$desc: exit $rc, want $want"; cat "$T/err"; }
}
code 2 "send without --to" "$SECMIG" send --domain x
code 2 "send bad --channels" "$SECMIG" send --to 127.0.0.1 --domain x --channels 9
code 2 "send bad --max-downtime" "$SECMIG" send --to 127.0.0.1 --domain x --max-downtime abc
code 2 "send bad --rule" "$SECMIG" send --to 127.0.0.1 --domain x --rule fast
code 2 "send bad address" "$SECMIG" send --to "[::1" --domain x
code 2 "recv without --listen" "$SECMIG" recv
code 2 "recv bad --max-concurrent" "$SECMIG" recv --listen 127.0.0.1:0 --max-concurrent 0
code 2 "resolve without --domain" "$SECMIG" resolve
code 2 "demo bad --workload" "$SECMIG" demo --workload spin
code 0 "help send" "$SECMIG" help send
grep -q -- "--no-auto-converge" "$T/out" || err "help send lacks --no-auto-converge"
code 11 "send without keys" "$SECMIG" send --to 127.0.0.1:1 --domain x --state-dir "$T/nokeys" --json
tail -n 1 "$T/out" | grep -q '"event":"result"' || err "no result line on a config error"

vm cli 8M hotspot 5M
start_recv
# The receiver presents a key the sender has not enrolled under that name.
"$SECMIG" keygen "$T/other.key" >/dev/null
echo "dst $(cat "$T/other.key.pub")" >"$T/wrongpeers"
chmod 600 "$T/wrongpeers"
code 3 "unknown receiver key" "$SECMIG" --quiet send --to "127.0.0.1:$PORT" --peer dst --domain cli \
	--state-dir "$A" --name src --peers "$T/wrongpeers"
kill "$RECV_PID" 2>/dev/null
wait "$RECV_PID" 2>/dev/null
expect_on A cli "authentication failure"

# A missing domain is found on this host before any connection: the
# receiver never sees a session (it was: a session, then "backend: success").
start_recv
code 12 "missing domain" "$SECMIG" --quiet send --to "127.0.0.1:$PORT" --peer dst --domain nosuch \
	--state-dir "$A" --name src
grep -q "cannot open domain 'nosuch' on this host" "$T/err" || err "missing domain: $(cat "$T/err")"
grep -q success "$T/err" && err "missing domain reported as success"
kill "$RECV_PID" 2>/dev/null
wait "$RECV_PID" 2>/dev/null
[ "$(wc -l <"$T/recv.out")" = 1 ] || err "missing domain: the receiver saw a session"
# Nothing listens at all: still the local verdict, not a network error.
code 12 "missing domain, no receiver" "$SECMIG" --quiet send --to 127.0.0.1:1 --peer dst \
	--domain nosuch --state-dir "$A" --name src
code 12 "unknown backend" "$SECMIG" --quiet send --to 127.0.0.1:1 --peer dst --domain cli \
	--state-dir "$A" --name src --backend nosuch
# The destination must be named: an address alone is refused (usage).
code 2 "send to an unnamed address" "$SECMIG" --quiet send --to 127.0.0.1:1 --domain cli \
	--state-dir "$A" --name src
grep -q "not an enrolled peer" "$T/err" || err "unnamed destination: $(cat "$T/err")"
code 11 "send --peer not enrolled" "$SECMIG" --quiet send --to 127.0.0.1:1 --peer nobody \
	--domain cli --state-dir "$A" --name src
code 12 "resolve with nothing in doubt" "$SECMIG" --quiet resolve --domain cli --state-dir "$A"
expect_on A cli "after the CLI errors"
[ $fail = 0 ] && echo "engine cli: all checks passed"
exit $fail
