#!/usr/bin/env bash
# The per-host config file (secmig.conf(5)): `secmig --config FILE CMD` and
# $SECMIG_CONFIG feed the command its options, a flag on the command line
# wins; `secmig config check FILE` reports every problem as FILE:LINE (a
# value the command's parser refuses, an unknown option, a key outside its
# section, a host definition naming a peer the peers file lacks) and exits
# 11, and 0 on a clean file.
set -u
T=$(mktemp -d /tmp/smg-conf.XXXXXX)
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done; rm -rf "$T"' EXIT
fail=0
bad() { echo "FAIL: $*"; fail=1; }

"$SECMIG" keygen "$T/host.key" >/dev/null || exit 1
"$SECMIG" keygen "$T/src.key" >/dev/null || exit 1
echo "src $(cat "$T/src.key.pub")" >"$T/peers"
printf 'storage %s/disks\nvm web-*\n  from src ghost\n' "$T" >"$T/defs"
cat >"$T/secmig.conf" <<CONF
# a receiver
state-dir $T
defs $T/defs
[recv]
listen 127.0.0.1:0
insecure-software-mode
max-concurrent 999
listenn x
name fromconf
[send]
max-downtime 300
CONF
chmod 600 "$T/peers" "$T/defs" "$T/secmig.conf"

# check: every problem with its line, exit 11
"$SECMIG" config check "$T/secmig.conf" >"$T/out" 2>"$T/err"
rc=$?
[ $rc = 11 ] || bad "config check on a broken file: exit $rc, want 11"
grep -q "secmig.conf:7: --max-concurrent: 1..64, not '999'" "$T/err" || bad "no line 7 (bad value): $(cat "$T/err")"
grep -q "secmig.conf:8: .*unrecognized option '--listenn=x'" "$T/err" || bad "no line 8 (unknown option)"
grep -q "secmig.conf:3: host definitions: .*'from ghost' is not in the peers file" "$T/err" ||
	bad "no line 3 (cross-reference)"
sed -n 's/^/  /p' "$T/err"
printf 'listen 127.0.0.1:0\n' >"$T/top.conf"
chmod 600 "$T/top.conf"
"$SECMIG" config check "$T/top.conf" 2>"$T/err2"
[ $? = 11 ] && grep -q "top.conf:1: 'listen' belongs in a \[command\] section" "$T/err2" ||
	bad "a command's option at top level: $(cat "$T/err2")"
chmod 666 "$T/top.conf"
"$SECMIG" config check "$T/top.conf" 2>/dev/null
[ $? = 11 ] || bad "a world-writable config file is accepted"

sed -i '/max-concurrent 999/d; /listenn/d' "$T/secmig.conf"
sed -i 's/ ghost//' "$T/defs"
"$SECMIG" config check "$T/secmig.conf" || bad "config check on a clean file"

# the receiver's backend: it does not start without one
"$SECMIG" --quiet sim host --state-dir "$T" &
PIDS+=($!)
for i in $(seq 200); do [ -S "$T/sim.sock" ] && break; sleep 0.05; done
# recv_name ARGS...: the name a receiver started with the config announces
recv_name() {
	rm -f "$T/recv.out"
	env "$@" --quiet recv ${RARGS[@]+"${RARGS[@]}"} >"$T/recv.out" 2>"$T/recv.err" &
	local pid=$!
	PIDS+=($pid)
	for _ in $(seq 200); do
		grep -q listening "$T/recv.out" 2>/dev/null && break
		kill -0 $pid 2>/dev/null || break
		sleep 0.05
	done
	sed -n "s/.* as '\([^']*\)'.*/\1/p" "$T/recv.out"
	kill $pid 2>/dev/null
	wait $pid 2>/dev/null
}
RARGS=()
n=$(recv_name SECMIG_CONFIG= "$SECMIG" --config "$T/secmig.conf")
[ "$n" = fromconf ] || bad "--config: recv announced '$n', want fromconf ($(cat "$T/recv.err"))"
n=$(recv_name SECMIG_CONFIG="$T/secmig.conf" "$SECMIG")
[ "$n" = fromconf ] || bad "\$SECMIG_CONFIG: recv announced '$n', want fromconf"
RARGS=(--name fromflag)
n=$(recv_name SECMIG_CONFIG="$T/secmig.conf" "$SECMIG")
[ "$n" = fromflag ] || bad "a flag does not win over the config: '$n'"
RARGS=()
"$SECMIG" --quiet recv >/dev/null 2>&1 &
PIDS+=($!)
wait $!
[ $? = 2 ] || bad "without a config recv should need --listen (exit 2)"

# [disk] applies to every disk subcommand: serve's options from the file
# (defs at the top level, chunk in [disk]) do not break 'disk list'; on its
# command line they are a usage error
printf 'state-dir %s/d\ndefs %s/defs\n[disk]\nchunk 1M\n' "$T" "$T" >"$T/disk.conf"
chmod 600 "$T/disk.conf"
mkdir -p "$T/d"
"$SECMIG" --quiet --config "$T/disk.conf" disk serve >/dev/null 2>"$T/dserve.err" &
DPID=$!
PIDS+=($DPID)
for i in $(seq 200); do [ -S "$T/d/disk.sock" ] && break; sleep 0.05; done
[ -S "$T/d/disk.sock" ] || bad "disk serve from [disk] did not start: $(cat "$T/dserve.err")"
"$SECMIG" --config "$T/disk.conf" disk create c1 1M >/dev/null 2>"$T/dl.err" ||
	bad "disk create with [disk] serve options in the file: $(cat "$T/dl.err")"
"$SECMIG" --config "$T/disk.conf" disk list >"$T/dl.out" 2>"$T/dl.err" ||
	bad "disk list with [disk] serve options in the file: $(cat "$T/dl.err")"
grep -q "^c1 " "$T/dl.out" || bad "disk list: no c1 in $(cat "$T/dl.out")"
"$SECMIG" --config "$T/disk.conf" disk list --chunk 1M >/dev/null 2>"$T/dl.err"
[ $? = 2 ] && grep -q "\-\-chunk belongs to 'disk serve'" "$T/dl.err" ||
	bad "disk list --chunk on the command line: $(cat "$T/dl.err")"
echo "config file: checks done"
exit $fail
