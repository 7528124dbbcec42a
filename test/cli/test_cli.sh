#!/usr/bin/env bash
# CLI skeleton: help, version, usage errors and their exit codes.
set -u
fail=0
check() { # desc, expected-rc, cmd...
	local desc=$1 want=$2; shift 2
	"$@" >/tmp/smg_cli_out.$$ 2>/tmp/smg_cli_err.$$
	local rc=$?
	if [ "$rc" != "$want" ]; then
		echo "FAIL: $desc: exit $rc, want $want"; cat /tmp/smg_cli_err.$$; fail=1
	fi
}
check "version" 0 "$SECMIG" version
grep -q '^backends: sim' /tmp/smg_cli_out.$$ || { echo "FAIL: version lists no sim backend"; fail=1; }
grep -q '^libsodium ' /tmp/smg_cli_out.$$ || { echo "FAIL: version lacks libsodium"; fail=1; }
grep -q '^liburing ' /tmp/smg_cli_out.$$ || { echo "FAIL: version lacks liburing"; fail=1; }
grep -q '^protobuf-c ' /tmp/smg_cli_out.$$ || { echo "FAIL: version lacks protobuf-c"; fail=1; }
grep -q '^tpm2-tss ' /tmp/smg_cli_out.$$ || { echo "FAIL: version lacks tpm2-tss"; fail=1; }
check "--help" 0 "$SECMIG" --help
grep -q 'version' /tmp/smg_cli_out.$$ || { echo "FAIL: --help lists no commands"; fail=1; }
check "help version" 0 "$SECMIG" help version
check "unknown command" 2 "$SECMIG" frobnicate
grep -q "unknown command 'frobnicate'" /tmp/smg_cli_err.$$ || { echo "FAIL: no message"; fail=1; }
grep -q "secmig help" /tmp/smg_cli_err.$$ || { echo "FAIL: no hint on stderr"; fail=1; }
[ -s /tmp/smg_cli_out.$$ ] && { echo "FAIL: usage error wrote to stdout"; fail=1; }
# a usage error is one line and a hint, with the nearest command or flag
two_lines() { # desc, then the stderr must be 2 lines and match each pattern
	local desc=$1; shift
	[ "$(wc -l </tmp/smg_cli_err.$$)" = 2 ] || { echo "FAIL: $desc: not 2 lines:"; cat /tmp/smg_cli_err.$$; fail=1; }
	for p in "$@"; do
		grep -q -- "$p" /tmp/smg_cli_err.$$ || { echo "FAIL: $desc: no '$p' in:"; cat /tmp/smg_cli_err.$$; fail=1; }
	done
}
check "near-miss command" 2 "$SECMIG" sned
two_lines "sned" "unknown command 'sned'; did you mean 'send'?" "secmig help"
check "near-miss flag" 2 "$SECMIG" recv --listn 127.0.0.1:0
two_lines "recv --listn" "unrecognized option '--listn'; did you mean '--listen'?" "secmig help recv"
check "near-miss flag with a value" 2 "$SECMIG" precheck --domian=vm1 --to x
two_lines "precheck --domian=" "did you mean '--domain'?"
check "missing value" 2 "$SECMIG" send --to
two_lines "send --to" "option '--to' requires an argument"
check "bad value" 2 "$SECMIG" recv --listen 127.0.0.1:0 --max-concurrent 999
two_lines "--max-concurrent 999" "1..64"
# every command answers --help with its usage on stdout, exit 0
for c in $("$SECMIG" help | awk '/^  [a-z]/ {print $1}'); do
	check "$c --help" 0 "$SECMIG" "$c" --help
	grep -q "^usage: secmig" /tmp/smg_cli_out.$$ || { echo "FAIL: $c --help: no usage on stdout"; fail=1; }
done
check "unknown global flag" 2 "$SECMIG" --frobnicate version
check "no command" 2 "$SECMIG"
check "help unknown" 2 "$SECMIG" help frobnicate
check "version extra arg" 2 "$SECMIG" version extra
rm -f /tmp/smg_cli_out.$$ /tmp/smg_cli_err.$$
[ $fail = 0 ] && echo "cli: all checks passed"
exit $fail
