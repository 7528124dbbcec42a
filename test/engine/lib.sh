# Shared set-up for the engine's end-to-end tests: two sim hosts (A source,
# B destination) in a temp dir, enrolled keys, helpers to run recv/send and
# to check the invariant of DESIGN §7 afterwards. Everything started here is
# killed by PID on exit.
set -u
T=$(mktemp -d /tmp/smg-engine.XXXXXX)
A=$T/a
B=$T/b
mkdir -p "$A" "$B"
PIDS=()
fail=0
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
	rm -rf "$T"
}
trap cleanup EXIT
err() {
	echo "FAIL: $*"
	fail=1
	for f in send.out send.err recv.out recv.err; do
		[ -s "$T/$f" ] && { echo "--- $f"; tail -n 5 "$T/$f" | cut -c1-400; }
	done
}

"$SECMIG" keygen "$A/host.key" >/dev/null || exit 1
"$SECMIG" keygen "$B/host.key" >/dev/null || exit 1
echo "dst $(cat "$B/host.key.pub")" >"$A/peers"
echo "src $(cat "$A/host.key.pub")" >"$B/peers"
chmod 600 "$A/peers" "$B/peers"

# B's host definitions (docs/hostdef.md): any domain from src, NICs with
# 52:54:00:* MACs in 10/8 and fd00::/8, disks in DIR/disks (the disk
# service's storage directory: disk serve --defs DIR/defs).
write_defs() { # DIR
	{
		echo "storage $1/disks"; echo "bridge hbr"; echo "vm *"; echo "  vtpm yes"
		for _ in 1 2 3 4; do echo "  nic bridge=hbr mac=52:54:00:00:00:00/24 ip=10.0.0.0/8 ip=fd00::/8"; done
	} >"$1/defs"
	chmod 600 "$1/defs"
}
write_defs "$A"
write_defs "$B"
VM_MACS=0

"$SECMIG" --quiet sim host --state-dir "$A" & PIDS+=($!)
"$SECMIG" --quiet sim host --state-dir "$B" & PIDS+=($!)
for i in $(seq 100); do
	[ -S "$A/sim.sock" ] && [ -S "$B/sim.sock" ] && break
	sleep 0.05
done

# vm NAME MEMORY WORKLOAD RATE [extra key=value lines]
vm() {
	local name=$1 mem=$2 wl=$3 rate=$4; shift 4
	{
		echo "name = $name"; echo "memory = $mem"; echo "vcpus = 2"
		echo "workload = $wl"; echo "dirty_rate = $rate"
		echo "hot_writes = 90"; echo "hot_pages = 5"; echo "seed = $RANDOM"
		VM_MACS=$((VM_MACS + 1))
		printf 'nic = mac=52:54:00:00:%02x:%02x,ipv4=10.0.%d.2\n' $((VM_MACS / 256)) $((VM_MACS % 256)) $((VM_MACS % 256))
		if [ $# = 0 ]; then echo "zero_pct = 20"; fi
		for l in "$@"; do echo "$l"; done
	} >"$T/$name.cfg"
	"$SECMIG" sim --state-dir "$A" create "$T/$name.cfg" >/dev/null || err "create $name"
}

# start_recv [env...]: a --once receiver on B (options RECV_EXTRA=(...));
# sets RECV_PID and PORT.
start_recv() {
	rm -f "$T/recv.out"
	env "$@" "$SECMIG" "${RECV_LOG:---quiet}" recv --listen 127.0.0.1:0 --once --json --check-memory \
		--state-dir "$B" --name dst --insecure-software-mode --defs "$B/defs" \
		${RECV_EXTRA[@]+"${RECV_EXTRA[@]}"} \
		>"$T/recv.out" 2>"$T/recv.err" &
	RECV_PID=$!
	PIDS+=($RECV_PID)
	PORT=
	for i in $(seq 200); do
		PORT=$(sed -n 's/.*"event":"listening".*"port":\([0-9]*\).*/\1/p' "$T/recv.out" 2>/dev/null)
		[ -n "$PORT" ] && break
		sleep 0.05
	done
	[ -n "$PORT" ] || err "receiver did not start"
}

# send NAME [flags...]: sets RC; JSON lines in $T/send.out. Tests that are
# not about the downtime limit stop-and-copy over it rather than abort
# (a loaded CI host misses 300 ms); the result still says it was exceeded.
send() {
	local name=$1; shift
	"$SECMIG" --quiet send --to "127.0.0.1:$PORT" --peer dst --domain "$name" --json \
		--state-dir "$A" --name src --check-memory --on-no-converge extend "$@" \
		>"$T/send.out" 2>"$T/send.err"
	RC=$?
}

state_on() { # HOSTDIR NAME -> state or "absent"
	local s
	s=$("$SECMIG" sim --state-dir "$1" list | awk -v n="$2" '$1 == n {print $2}')
	echo "${s:-absent}"
}
result() { tail -n 1 "$T/send.out"; }
field() { result | sed -n "s/.*\"$1\":\"\{0,1\}\([^,\"}]*\).*/\1/p"; }

# The VM runs on exactly one side and verifies there; the other has none.
expect_on() { # SIDE(A|B) NAME WHAT
	local here there
	if [ "$1" = A ]; then here=$A; there=$B; else here=$B; there=$A; fi
	local s
	s=$(state_on "$here" "$2")
	[ "$s" = running ] || err "$3: $2 is '$s' on $1, want running"
	"$SECMIG" sim --state-dir "$here" verify "$2" >"$T/verify.out" 2>&1 ||
		{ err "$3: $2 does not verify on $1"; cat "$T/verify.out"; }
	s=$(state_on "$there" "$2")
	[ "$s" = absent ] || err "$3: $2 is '$s' on the other host, want absent"
}
