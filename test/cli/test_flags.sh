#!/usr/bin/env bash
# The commands' option parsers (cli/opts.c and each command's table) agree
# with their help and keep their usage errors: every --flag a command's
# help names is one its parser takes, and each bad value is refused with
# its own message and exit 2 before anything runs. No daemon is started:
# every case stops at the parser.
set -u
fail=0
bad() { echo "FAIL: $*"; fail=1; }
T=$(mktemp -d /tmp/smg-flags.XXXXXX)
trap 'rm -rf "$T"' EXIT
export SECMIG_STATE_DIR=$T/none SECMIG_CONFIG=

# Every flag of the help text is known to the parser: given as "--flag="
# (an empty value, or a value for a flag that takes none), the parser may
# refuse the value or the missing rest of the command line, never the flag.
for c in send precheck recv resolve status cancel tune metrics audit operator init; do
	flags=$("$SECMIG" help "$c" | sed 's/send --[a-z-]*//g' |
		grep -o -- '--[a-z][a-z0-9-]*' | sort -u)
	[ -n "$flags" ] || bad "$c: no flags in its help"
	for f in $flags; do
		[ "$f" = --help ] && continue
		"$SECMIG" "$c" "$f=" >/dev/null 2>"$T/err"
		grep -q "unrecognized option '$f" "$T/err" && bad "$c does not take $f: $(head -1 "$T/err")"
	done
done

# CMD ARGS... | MESSAGE: exit 2 and MESSAGE as the first line on stderr.
while IFS='|' read -r args msg; do
	[ -n "$args" ] || continue
	# shellcheck disable=SC2086
	"$SECMIG" $args >"$T/out" 2>"$T/err"
	rc=$?
	[ $rc = 2 ] || bad "'$args': exit $rc, want 2"
	got=$(head -1 "$T/err")
	[ "$got" = "secmig: $msg" ] || bad "'$args': '$got', want 'secmig: $msg'"
	[ -s "$T/out" ] && bad "'$args' wrote to stdout: $(head -1 "$T/out")"
done <<'CASES'
send --to a --domain vm --channels 9|--channels: 1..8, not '9'
send --to a --domain vm --channels 0|--channels: 1..8, not '0'
send --to a --domain vm --max-downtime 0|--max-downtime: milliseconds, 1..3600000, not '0'
send --to a --domain vm --max-rounds 1001|--max-rounds: 1..1000, not '1001'
send --to a --domain vm --bandwidth x|--bandwidth: bytes/s like 100M, not 'x'
send --to a --domain vm --rule fast|--rule: downtime, xen or stop-and-copy, not 'fast'
send --to a --domain vm --on-no-converge wait|--on-no-converge: abort or extend, not 'wait'
send --to a --domain vm --storage-mode nfs|--storage-mode: waio or dbt, not 'nfs'
send --to a --domain vm --io-timeout 99|--io-timeout: 100..3600000 ms, not '99'
send --to a --domain vm --net-bridge a/b|--net-bridge / --net-ns-prefix: bad name 'a/b'
send --to a --domain vm --net-ns-prefix=|--net-bridge / --net-ns-prefix: bad name ''
send --to a --domain vm extra|unexpected argument 'extra'
send --domain vm|send needs --to NAME[:PORT] (or --to HOST[:PORT] --peer NAME) and --domain NAME
send --to a --domain a/b|--domain: 1..63 of [A-Za-z0-9._-], not 'a/b'
send --to a: --domain vm|--to: NAME[:PORT] or HOST[:PORT], not 'a:'
send -t a -d vm -c 9|--channels: 1..8, not '9'
send --to a --domain vm -Z|unknown option '-Z'
send --to a --domain vm --chanels 2|unrecognized option '--chanels'; did you mean '--channels'?
precheck --to a --domain vm --io-timeout 1x|--io-timeout: 100..3600000 ms, not '1x'
precheck --to a|precheck needs --to NAME[:PORT] (or --to HOST[:PORT] --peer NAME) and --domain NAME
precheck --to a --domain vm --channels 2|unrecognized option '--channels'
precheck --to a --domain vm --tcti|option '--tcti' requires an argument
recv --listen :0 --max-concurrent 65|--max-concurrent: 1..64, not '65'
recv --listen :0 --channels 9|--channels: 1..8, not '9'
recv --listen :0 --progress-timeout 3600001|--progress-timeout: 100..3600000 ms, not '3600001'
recv --listen :0 --session-timeout 604800001|--session-timeout: 100..604800000 ms, not '604800001'
recv --listen :0 --io-timeout 4000000|--io-timeout: 100..3600000 ms, not '4000000'
recv --listen :0 --net-bridge a/b|--net-bridge / --net-ns-prefix: bad name 'a/b'
recv --once|recv needs --listen ADDR[:PORT]
recv --listen :0 x|unexpected argument 'x'
resolve --to a|resolve needs --domain NAME
resolve --domain vm --io-timeout 0|--io-timeout: 100..3600000 ms, not '0'
resolve --domain vm --net-ns-prefix a/b|--net-bridge / --net-ns-prefix: bad name 'a/b'
resolve --domain vm --ticket t|unrecognized option '--ticket'
status --json x|unexpected argument 'x'
status --jsn|unrecognized option '--jsn'; did you mean '--json'?
metrics x|unexpected argument 'x'
cancel|give a migration ID (32 hex digits, see secmig status) or --domain NAME
cancel --domain vm --bandwidth 1M|--bandwidth is for tune
cancel --domain vm --max-downtime 5|--max-downtime is for tune
tune --domain vm|tune needs --bandwidth and/or --max-downtime
tune --domain vm --bandwidth 0|--bandwidth: bytes/s like 100M, or none, not '0'
tune --domain vm --max-downtime 3600001|--max-downtime: milliseconds, 1..3600000, not '3600001'
tune --domain a/b --bandwidth none|give a migration ID or --domain NAME
init --mode x|--mode: tpm or software, not 'x'
init --name a/b|--name: 1..64 of [A-Za-z0-9._-], not 'a/b'
init --state-dir rel|--state-dir and --config: absolute paths under 256 bytes (the files name each other)
init extra|unexpected argument 'extra'
audit|audit needs show, verify, rotate or counters
audit show --bogus|unrecognized option '--bogus'
audit verify --peer-key|option '--peer-key' requires an argument
operator list extra|unexpected argument 'extra'
operator enrol --name x --key|option '--key' requires an argument
operator revoke|needs --name NAME
CASES

# Values that parse: the command goes past its parser (no usage error).
while read -r args; do
	[ -n "$args" ] || continue
	# shellcheck disable=SC2086
	"$SECMIG" $args >/dev/null 2>"$T/err"
	[ $? = 2 ] && bad "'$args' refused: $(head -1 "$T/err")"
done <<'CASES'
send --to a --domain vm --channels 8 --max-downtime 3600000 --max-rounds 1000 --bandwidth 100M --rule xen --on-no-converge extend --storage-mode dbt --io-timeout 100 --no-auto-converge --check-memory --json --net-bridge br0 --net-ns-prefix p
send -t a -d vm -c 1 -D 1 -b 1 -A -j -r stop-and-copy -R 1 -C
precheck --to a --domain vm --io-timeout 3600000 --disk-socket /nonexistent
recv --listen 127.0.0.1:0 --max-concurrent 64 --channels 1 --progress-timeout 3600000 --session-timeout 604800000 --backend nope
resolve --domain vm --to 127.0.0.1:1 --io-timeout 100 --net-bridge br0
status --json
metrics --output /nonexistent/dir/x
cancel 0123456789abcdef0123456789abcdef
tune --domain vm --bandwidth none --max-downtime 1
CASES
exit $fail
