#!/usr/bin/env bash
# bench/qemu.sh [BUILD_DIR]: one real guest (the test bed's: Debian kernel,
# busybox, 256 MiB, a disk, a NIC, a vTPM; test/qemu/qemubed.sh) running a
# memory workload at a fixed dirty rate (DIRTY_RATE MiB/s over DIRTY_MIB
# MiB), migrated three times in the same run between the two host
# namespaces of the network bed:
#   1. QEMU's own migration over plain TCP        (src -> dst)
#   2. QEMU's own migration with TLS               (dst -> src)
#      (tls-creds-x509, verify-peer, certificates made here with openssl)
#   3. secmig send --backend qemu                  (src -> dst)
#      (encryption, mutual authentication, end-to-end manifest verification)
# For each: total time, downtime as the guest's network sees it (the
# longest gap between its UDP ticks, sent every 10 ms and stamped on
# arrival by the host: the guest's own clock stops while it is paused) and
# as the migrator reports it (QMP's "downtime"; secmig's downtime_ms), and
# bytes on the wire (the sending host's uplink counter). The load average is
# printed before each. The last line is one JSON object.
#
# Build first: bash scripts/build.sh release. Not a test: numbers vary with
# the machine's load; the lead runs it on a quiet machine.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$top/build-release}
S=${SECMIG:-$build/secmig}
[ -x "$S" ] || { echo "bench/qemu: build first: bash scripts/build.sh release" >&2; exit 1; }
export SECMIG=$S SMG_SRC=$top SMG_BUILD=$build
DIRTY_MIB=${DIRTY_MIB:-64}
DIRTY_RATE=${DIRTY_RATE:-16}
SETTLE_S=${SETTLE_S:-5}
QB_CMDLINE_EXTRA="smg.mode=bench smg.dirty_mib=$DIRTY_MIB smg.dirty_rate=$DIRTY_RATE"
. "$top/test/net/netbed.sh"
. "$top/test/qemu/qemubed.sh"
TOOL="python3 $top/bench/qemu_tool.py"
PORT=4444
# Both sides' output, each line stamped on arrival (qemubed.sh qb_stamp),
# kept in KEEP with the timeline built from them.
export QB_STAMP=qb_stamp
KEEP=${KEEP:-$(mktemp -d /tmp/secmig-bench-qemu.XXXXXX)}

log() { echo "bench/qemu: $*" >&2; }
jget() { # json key -> number (null when absent)
	local v
	v=$(sed -n "s/.*\"$2\": *\([0-9.-]*\).*/\1/p" <<<"$1" | head -1)
	echo "${v:-null}"
}
now_ns() { date +%s%N; }
uplink_tx() { nb_exec "$1" awk '$1 == "uplink:" { print $10 }' /proc/net/dev; }
load() { cut -d' ' -f1-3 /proc/loadavg; }

# Memory and device state only, for all three: QEMU's own migration does
# not move the disk, so the disk is shared storage here (one qemu-nbd
# export, shared=yes); test/qemu runs secmig with each host's disk service.
QB_DISK=${QB_DISK:-shared}
QB_BOOT_ALL=1
qb_init
qb_define src
qb_define dst
qb_keys || exit 1
qb_start src || { cat "$T/src/qemu/$QB_NAME.log"; exit 1; }
for _ in $(seq 240); do grep -aq GUEST-BENCH "$T/src/serial.log" && break; sleep 0.5; done
grep -aq GUEST-BENCH "$T/src/serial.log" || { log "guest did not start its workload"; exit 1; }
nb_bg sw "$T/ticks.err" $TOOL ticks 7001 "$T/ticks.log"
for _ in $(seq 100); do [ -s "$T/ticks.log" ] && break; sleep 0.1; done
[ -s "$T/ticks.log" ] || { log "no ticks from the guest"; exit 1; }

# Certificates for QEMU's TLS migration: one CA, a server and a client
# certificate naming both hosts' addresses.
tls=$T/tls
mkdir -p "$tls"
(
	cd "$tls" || exit 1
	ext() { printf 'basicConstraints=CA:FALSE\nsubjectAltName=IP:%s,IP:%s\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=%s\n' \
		"$NB_SRC4" "$NB_DST4" "$1"; }
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
		-subj /CN=secmig-bench-ca -keyout ca-key.pem -out ca-cert.pem
	for who in server client; do
		openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
			-subj "/CN=secmig-bench-$who" -keyout "$who-key.pem" -out "$who.csr"
		openssl x509 -req -in "$who.csr" -CA ca-cert.pem -CAkey ca-key.pem -CAcreateserial \
			-days 2 -out "$who-cert.pem" -extfile <(ext "${who}Auth")
	done
) >"$T/tls.log" 2>&1 || { log "certificates: $(tail -3 "$T/tls.log")"; exit 1; }

# native FROM TO [TLS_DIR] -> JSON line (total, downtime, bytes, gap)
native() {
	local from=$1 to=$2 tlsdir=${3:-} t0 t1 tx0 tx1 out g
	nb_exec "$to" "$S" -q qemu --state-dir "$T/$to" --incoming start "$QB_NAME" ||
		{ log "incoming QEMU on $to"; return 1; }
	qb_note_pid "$to"
	tx0=$(uplink_tx "$from")
	out=$(nb_exec "$from" $TOOL native "$T/$from/qemu/$QB_NAME.qmp" "$T/$to/qemu/$QB_NAME.qmp" \
		"$(qb_addr "$to")" "$PORT" $tlsdir)
	tx1=$(uplink_tx "$from")
	t0=$(jget "$out" t0_ns)
	t1=$(jget "$out" t1_ns)
	nb_exec "$from" "$S" -q qemu --state-dir "$T/$from" stop "$QB_NAME"
	sleep 2
	g=$($TOOL gap "$T/ticks.log" $((t0 - 1000000000)) $((t1 + 2000000000)))
	echo "$out $g {\"wire_bytes\": $((tx1 - tx0))}"
}

secmig_run() { # from to -> JSON line; the timeline in $T/timeline.txt
	local from=$1 to=$2 t0 t1 tx0 tx1 res g
	qb_recv "$to" || return 1
	tx0=$(uplink_tx "$from")
	t0=$(now_ns)
	qb_send "$from" "$to"
	t1=$(now_ns)
	tx1=$(uplink_tx "$from")
	wait "$QB_RECV_PID" 2>/dev/null
	$TOOL timeline "$T/send.ts" "$T/recv-$to.ts" "$t0" >"$T/timeline.txt" 2>&1
	mkdir -p "$KEEP" && cp "$T"/send.* "$T"/recv-"$to".* "$T/timeline.txt" "$KEEP/" 2>/dev/null
	cp "$T/$from/qemu/$QB_NAME.log" "$KEEP/qemu-$from.log" 2>/dev/null
	cp "$T/$to/qemu/$QB_NAME.log" "$KEEP/qemu-$to.log" 2>/dev/null
	[ "$QB_RC" = 0 ] || { log "secmig send exit $QB_RC: $(tail -3 "$T/send.err")"; return 1; }
	qb_note_pid "$to"
	res=$(grep '"event":"result"' "$T/send.out")
	sleep 2
	g=$($TOOL gap "$T/ticks.log" $((t0 - 1000000000)) $((t1 + 2000000000)))
	scan=$(sed -n 's/.*(\([0-9]*\) ms\/GiB hashed).*/\1/p' "$T/send.err" | tail -1)
	echo "$res $g {\"wire_bytes\": $((tx1 - tx0)), \"scan_ms_per_gib\": ${scan:-0}}"
}

# SECMIG_ONLY=1: only the secmig run (to look at its timeline; the targets
# compare it with QEMU's runs of the same invocation only).
TCP='{}' TLS='{}' L1=- L2=-
if [ "${SECMIG_ONLY:-0}" != 1 ]; then
	sleep "$SETTLE_S"
	L1=$(load)
	log "load $L1: QEMU native, TCP, src -> dst"
	TCP=$(native src dst) || exit 1
	echo "qemu-tcp: $TCP"
	sleep "$SETTLE_S"
	L2=$(load)
	log "load $L2: QEMU native, TLS, dst -> src"
	TLS=$(native dst src "$tls") || exit 1
	echo "qemu-tls: $TLS"
fi
sleep "$SETTLE_S"
L3=$(load)
log "load $L3: secmig, src -> dst"
SEC=$(secmig_run src dst) || exit 1
echo "secmig: $SEC"
qb_expect_on dst "after the benchmark" >/dev/null || log "WARNING: the VM is not (only) on dst"

cat "$T/timeline.txt"
log "logs and timeline kept in $KEEP"
printf '%-10s %10s %14s %14s %14s\n' run total_ms downtime_ms guest_gap_ms wire_bytes
printf '%-10s %10s %14s %14s %14s\n' qemu-tcp "$(jget "$TCP" total_ms)" "$(jget "$TCP" downtime_ms)" \
	"$(jget "$TCP" gap_ms)" "$(jget "$TCP" wire_bytes)"
printf '%-10s %10s %14s %14s %14s\n' qemu-tls "$(jget "$TLS" total_ms)" "$(jget "$TLS" downtime_ms)" \
	"$(jget "$TLS" gap_ms)" "$(jget "$TLS" wire_bytes)"
printf '%-10s %10s %14s %14s %14s\n' secmig "$(jget "$SEC" total_ms)" "$(jget "$SEC" downtime_ms)" \
	"$(jget "$SEC" gap_ms)" "$(jget "$SEC" wire_bytes)"
echo "loadavg before each run: $L1 | $L2 | $L3; dirty rate ${DIRTY_RATE} MiB/s over ${DIRTY_MIB} MiB"
printf '{"total_ms_qemu_tcp":%s,"total_ms_qemu_tls":%s,"total_ms_secmig":%s,' \
	"$(jget "$TCP" total_ms)" "$(jget "$TLS" total_ms)" "$(jget "$SEC" total_ms)"
printf '"downtime_ms_qemu_tcp":%s,"downtime_ms_qemu_tls":%s,"downtime_ms_secmig":%s,' \
	"$(jget "$TCP" downtime_ms)" "$(jget "$TLS" downtime_ms)" "$(jget "$SEC" downtime_ms)"
printf '"guest_gap_ms_qemu_tcp":%s,"guest_gap_ms_qemu_tls":%s,"guest_gap_ms_secmig":%s,' \
	"$(jget "$TCP" gap_ms)" "$(jget "$TLS" gap_ms)" "$(jget "$SEC" gap_ms)"
printf '"bytes_qemu_tcp":%s,"bytes_qemu_tls":%s,"bytes_secmig":%s,"bytes_secmig_payload":%s,' \
	"$(jget "$TCP" wire_bytes)" "$(jget "$TLS" wire_bytes)" "$(jget "$SEC" wire_bytes)" \
	"$(jget "$SEC" bytes_sent)"
printf '"scan_ms_per_gib":%s,"dirty_rate_mib_s":%s,"loadavg":["%s","%s","%s"]}\n' \
	"$(jget "$SEC" scan_ms_per_gib)" "$DIRTY_RATE" "$L1" "$L2" "$L3"
