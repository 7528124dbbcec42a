#!/usr/bin/env bash
# Regenerate the seeds of the audit fuzzers from real artefacts: the log
# records of a TPM-less migration between two state dirs on loopback (and
# of a refused one), their receipts, a ticket in both forms, an operators
# file. Usage: SECMIG=build-asan/secmig bash fuzz/tools/gen_audit_corpus.sh
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
export SECMIG=${SECMIG:-$top/build-asan/secmig} SMG_SRC=$top
. "$top/test/engine/lib.sh"
C=$top/fuzz/corpus
mkdir -p "$C/audit_record" "$C/audit_receipt" "$C/audit_ticket" "$C/audit_operators"

vm seed1 16M uniform 5M
start_recv
send seed1
wait "$RECV_PID"
vm seed2 16M idle 0
start_recv SMG_FI=audit_receipt_sig_flip
send seed2
wait "$RECV_PID" || true
"$SECMIG" audit rotate --state-dir "$A" --name src >/dev/null

i=0
for f in "$A"/audit/audit.log* "$B"/audit/audit.log "$A/audit/audit.head"; do
	while IFS= read -r line; do
		i=$((i + 1))
		printf '%s' "$line" >"$C/audit_record/line$i"
		r=$(printf '%s' "$line" | sed -n 's/.*"receipt":"\([^"]*\)".*/\1/p')
		[ -n "$r" ] && printf '%s' "$r" | base64 -d >"$C/audit_receipt/receipt$i"
	done <"$f"
done

K=$T/k
mkdir -p "$K"
for k in root alice; do "$SECMIG" keygen "$K/$k.key" >/dev/null; done
"$SECMIG" operator admin --name root --key "$K/root.key.pub" --file "$T/ops" >/dev/null
"$SECMIG" operator enrol --admin root --admin-key "$K/root.key" --name alice \
	--key "$K/alice.key.pub" --vms 'web-*,db1' --from region=eu --to 'dst*' \
	--file "$T/ops" >/dev/null
"$SECMIG" operator revoke --admin root --admin-key "$K/root.key" --name alice \
	--file "$T/ops" >/dev/null
cp "$T/ops" "$C/audit_operators/full"
printf '# comment\nadmin root %s\n' "$(cat "$K/root.key.pub")" >"$C/audit_operators/admin_only"
"$SECMIG" ticket sign --key "$K/alice.key" --operator alice --vm web-1 --from src \
	--to dst --out "$T/t" >/dev/null
{ printf '\x01'; cat "$T/t"; } >"$C/audit_ticket/armoured"
{ printf '\x00'; sed -n '/BEGIN/,/END/p' "$T/t" | sed '1d;$d' | tr -d '\n' | base64 -d; } \
	>"$C/audit_ticket/binary"
echo "seeds: $(ls "$C/audit_record" | wc -l) records, $(ls "$C/audit_receipt" | wc -l) receipts"
