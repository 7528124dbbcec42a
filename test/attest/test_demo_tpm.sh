#!/usr/bin/env bash
# `secmig demo` runs in TPM mode: one swtpm per host, both enrolled, a policy
# per host, a guest vTPM; the result reports the handshake time.
command -v swtpm >/dev/null || exit 77
out=$(mktemp /tmp/smg-demo-tpm.XXXXXX)
trap 'rm -f "$out" "$out.err"' EXIT
"$SECMIG" demo --memory 16M --dirty-rate 5M --json >"$out" 2>"$out.err"
rc=$?
fail=0
[ "$rc" = 0 ] || { echo "FAIL: demo exit $rc"; tail -n 5 "$out.err"; fail=1; }
last=$(tail -n 1 "$out")
echo "$last" | grep -q '"outcome":"migrated"' || { echo "FAIL: not migrated: $last"; fail=1; }
echo "$last" | grep -q '"verified":true' || { echo "FAIL: not verified: $last"; fail=1; }
echo "$last" | grep -Eq '"handshake_ms":[0-9]+\.[0-9]' || { echo "FAIL: no handshake_ms: $last"; fail=1; }
grep -q "TPM mode: sessions bound" "$out.err" || { echo "FAIL: the demo did not run in TPM mode"; fail=1; }
exit $fail
