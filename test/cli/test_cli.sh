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
grep -q "^usage:" /tmp/smg_cli_err.$$ || { echo "FAIL: no usage on stderr"; fail=1; }
[ -s /tmp/smg_cli_out.$$ ] && { echo "FAIL: usage error wrote to stdout"; fail=1; }
check "unknown global flag" 2 "$SECMIG" --frobnicate version
check "no command" 2 "$SECMIG"
check "help unknown" 2 "$SECMIG" help frobnicate
check "version extra arg" 2 "$SECMIG" version extra
rm -f /tmp/smg_cli_out.$$ /tmp/smg_cli_err.$$
[ $fail = 0 ] && echo "cli: all checks passed"
exit $fail
