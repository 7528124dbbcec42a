#!/usr/bin/env bash
# secmig tpm-enroll against a real swtpm, and secmig config check on the
# policy it feeds: idempotent enrolment, the printed block parses, errors
# carry FILE:LINE and exit 11, a PCR change after enrolment exits 4.
set -u
command -v swtpm >/dev/null && command -v tpm2_pcrextend >/dev/null || exit 77
tmp=$(mktemp -d /tmp/smg-enroll.XXXXXX)
pidfile=$tmp/swtpm.pid
cleanup() {
	[ -s "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
fail=0
started=0
for _ in $(seq 20); do # a random free pair of ports; swtpm fails to bind if taken
	port=$((20000 + RANDOM % 40000))
	if swtpm socket --tpm2 --server type=tcp,port=$port,bindaddr=127.0.0.1 \
		--ctrl type=tcp,port=$((port + 1)),bindaddr=127.0.0.1 \
		--tpmstate dir="$tmp" --flags startup-clear --pid file="$pidfile" -d 2>/dev/null; then
		started=1
		break
	fi
done
[ $started = 1 ] || { echo "FAIL: cannot start swtpm"; exit 1; }
tcti="swtpm:host=127.0.0.1,port=$port"

expect() { # desc want-rc cmd...
	local desc=$1 want=$2; shift 2
	"$@" >"$tmp/out" 2>"$tmp/err"
	local rc=$?
	if [ "$rc" != "$want" ]; then
		echo "FAIL: $desc: exit $rc, want $want"; cat "$tmp/err"; fail=1
	fi
}

expect "enrol" 0 "$SECMIG" tpm-enroll --tcti "$tcti" --pcrs 0,7,16 --name hostA --label region=eu-west
cp "$tmp/out" "$tmp/first"
grep -q '^# new keys' "$tmp/first" || { echo "FAIL: first enrolment not new"; fail=1; }
grep -q '^peer hostA$' "$tmp/first" || { echo "FAIL: no peer line"; fail=1; }
grep -Eq '^  ecdh 04[0-9a-f]{128}$' "$tmp/first" || { echo "FAIL: no ecdh line"; fail=1; }
grep -Eq '^  ak 04[0-9a-f]{128}$' "$tmp/first" || { echo "FAIL: no ak line"; fail=1; }
[ "$(grep -c '^  pcr ' "$tmp/first")" = 3 ] || { echo "FAIL: want 3 pcr lines"; fail=1; }
grep -q '^  label region=eu-west$' "$tmp/first" || { echo "FAIL: no label"; fail=1; }

expect "enrol again" 0 "$SECMIG" tpm-enroll --tcti "$tcti" --pcrs 0,7,16 --name hostA --label region=eu-west
grep -q '^# existing keys' "$tmp/out" || { echo "FAIL: second enrolment not idempotent"; fail=1; }
diff <(grep -v '^#' "$tmp/first") <(grep -v '^#' "$tmp/out") >/dev/null ||
	{ echo "FAIL: keys changed on re-run"; fail=1; }

# the block enrols hostA in hostB's policy
{ echo "host hostB"; echo "tcti $tcti"; echo "label region=eu-west"; grep -v '^#' "$tmp/first"; echo "  send web-* db1"; } >"$tmp/policy"
expect "config check ok" 0 "$SECMIG" config check "$tmp/policy"
grep -q "1 peer(s), 1 may send" "$tmp/out" || { echo "FAIL: config summary"; cat "$tmp/out"; fail=1; }

bad() { # desc line-number text
	printf '%b' "$3" >"$tmp/bad"
	expect "config check: $1" 11 "$SECMIG" config check "$tmp/bad"
	grep -q "$tmp/bad:$2: " "$tmp/err" || { echo "FAIL: $1: no line $2 in:"; cat "$tmp/err"; fail=1; }
}
bad "unknown keyword" 3 "host a\n# c\nfrobnicate x\n"
bad "bad pcr list" 2 "host a\npcrs 0,99\n"
bad "peer key too short" 3 "host a\npeer b\n  ecdh 04abcd\n"
bad "peer without tpm keys" 2 "host a\npeer b\n  send *\n"
bad "host after peer" 5 "host a\nmode software\npeer b\n  send *\nhost c\n"
{ echo "host z"; grep -v '^#' "$tmp/first" | sed -n '1,4p'; grep '^  pcr 0 ' "$tmp/first"; } >"$tmp/dup"
expect "config check: golden twice" 11 "$SECMIG" config check "$tmp/dup"
grep -q "$tmp/dup:6: golden value for PCR 0 given twice" "$tmp/err" || { echo "FAIL: golden twice"; cat "$tmp/err"; fail=1; }
bad "missing host" 1 "mode software\n"
printf 'host a\nmode software\npeer b\n  send *\n' >"$tmp/soft"
expect "software opt-in" 0 "$SECMIG" config check "$tmp/soft"
grep -q "software-key mode" "$tmp/err" || { echo "FAIL: software opt-in not logged"; fail=1; }
expect "missing file" 11 "$SECMIG" config check "$tmp/nonexistent"
expect "usage" 2 "$SECMIG" config frob

# the host's state changes after enrolment: enrol reports it, exit 4
TPM2TOOLS_TCTI=$tcti tpm2_pcrextend 16:sha256=$(printf 'ab%.0s' $(seq 32)) || fail=1
expect "enrol after PCR change" 4 "$SECMIG" tpm-enroll --tcti "$tcti" --pcrs 0,7,16 --name hostA
grep -q "PCRs changed since" "$tmp/err" || { echo "FAIL: no PCR-change message"; fail=1; }
expect "re-enrol with --force" 0 "$SECMIG" tpm-enroll --tcti "$tcti" --pcrs 0,7,16 --name hostA --force
grep -q '^# new keys' "$tmp/out" || { echo "FAIL: --force did not make new keys"; fail=1; }
expect "bad tcti" 4 "$SECMIG" tpm-enroll --tcti "swtpm:host=127.0.0.1,port=1"
expect "no tcti" 2 "$SECMIG" tpm-enroll
exit $fail
