#!/usr/bin/env bash
# bench/channel.sh [GIB] [PAGES_PER_FRAME] [REPS]: the secure channel against
# the raw frame AEAD, plain TCP and an ssh tunnel (chacha20-poly1305, what
# `xl migrate` uses), all measured in this run, REPS times each (medians).
# Starts its own sshd on a loopback port with throwaway keys and stops it (by
# PID). Run by hand on a quiet machine from the source tree after
# `bash scripts/build.sh release`; last line is JSON.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
gib=${1:-2}
ppf=${2:-16}
reps=${3:-3}
bin=$top/build-release/bench_channel
[ -x "$bin" ] || { echo "build first: bash scripts/build.sh release" >&2; exit 2; }

work=$(mktemp -d /tmp/smgbench-ssh.XXXXXX)
sshd_pid=
cleanup() {
	[ -n "$sshd_pid" ] && kill "$sshd_pid" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

ssh_gbps=null
if command -v /usr/sbin/sshd >/dev/null && command -v ssh >/dev/null; then
	ssh-keygen -q -t ed25519 -N '' -f "$work/host"
	ssh-keygen -q -t ed25519 -N '' -f "$work/user"
	cp "$work/user.pub" "$work/authorized_keys"
	port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
	cat >"$work/sshd_config" <<CFG
ListenAddress 127.0.0.1
Port $port
HostKey $work/host
AuthorizedKeysFile $work/authorized_keys
PidFile $work/sshd.pid
StrictModes no
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
PermitRootLogin prohibit-password
Ciphers chacha20-poly1305@openssh.com
CFG
	mkdir -p /run/sshd
	/usr/sbin/sshd -D -f "$work/sshd_config" -E "$work/sshd.log" &
	sshd_pid=$!
	for _ in $(seq 50); do
		ssh -q -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
			-i "$work/user" -p "$port" root@127.0.0.1 true 2>/dev/null && break
		sleep 0.1
	done
	bytes=$(python3 -c "print(int($gib * (1 << 30)))")
	ssh_run() {
		head -c "$1" /dev/zero | ssh -q -c chacha20-poly1305@openssh.com -o BatchMode=yes \
			-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o Compression=no \
			-i "$work/user" -p "$port" root@127.0.0.1 'cat > /dev/null'
	}
	ssh_run $((bytes / 8)) # warm-up
	rates=()
	for _ in $(seq "$reps"); do
		t0=$(date +%s.%N)
		ssh_run "$bytes"
		t1=$(date +%s.%N)
		rates+=("$(python3 -c "print($bytes / ($t1 - $t0) / 1e9)")")
	done
	ssh_gbps=$(python3 -c "import statistics, sys; print(round(statistics.median(map(float, sys.argv[1:])), 4))" "${rates[@]}")
	echo "ssh tunnel (chacha20-poly1305): $ssh_gbps GB/s (median of $reps: ${rates[*]})" >&2
	kill "$sshd_pid"
	wait "$sshd_pid" 2>/dev/null || true
	sshd_pid=
else
	echo "sshd/ssh not installed (openssh-server): ssh figure left out" >&2
fi

json=$("$bin" "$gib" "$ppf" "$reps")
python3 - "$json" "$ssh_gbps" <<'PY'
import json, sys
d = json.loads(sys.argv[1])
ssh = None if sys.argv[2] == "null" else float(sys.argv[2])
d["ssh_GBps"] = ssh
d["ratio_1ch_vs_ssh"] = round(d["secmig_1ch_GBps"] / ssh, 4) if ssh else None
with open("/proc/loadavg") as f:
    d["loadavg_1m_end"] = max(d["loadavg_1m_end"], float(f.read().split()[0]))
print(json.dumps(d))
PY
