#!/usr/bin/env bash
# qemubed.sh: a real Linux guest under QEMU (TCG) on the two-host network
# bed (test/net/netbed.sh), migrated by `secmig --backend qemu`. Source it
# after netbed.sh, then:
#
#   qb_init            # skip (77) without root/QEMU/swtpm/busybox/cc; fetch,
#                      # build the guest (cached), bring up the network bed
#   qb_define HOST     # the VM's definition on HOST (src, dst): HOST's own
#                      # RAM file, serial log, tap on hbr, vTPM, its disk
#                      # service's export (QB_DISK=shared: one qemu-nbd)
#   qb_disk HOST       # the VM disk in HOST's service: "STATE CLIENTS" or absent
#   qb_start HOST      # secmig qemu start vm1 there; QB_PID_<host>
#   qb_wait_tick HOST N [tries]   # until HOST's serial log has tick N
#   qb_status HOST     # "running PID" / "paused PID" / "absent -1"
#   qb_down            # (trap) stop QEMUs by PID, then netbed's teardown
#
# The guest (docs/qemu.md "Test bed"): Debian's kernel (apt-get download,
# cached in $SMG_QEMU_CACHE, default $SMG_BUILD/qemu-cache) and a busybox
# initramfs whose /init prints, every tick,
#   tick N up=UPTIME mem=ok disk=ok pcr=ok seal=ok pcr16=HEX16
# N and UPTIME continue across a migration; mem: 16 MiB of random chunks in
# tmpfs re-checked by md5; disk: 64 KiB blocks of /dev/vda (virtio-blk on
# NBD) re-read with O_DIRECT; pcr: PCR 16 extended every tick, read back
# against the chain the guest keeps; seal: a secret sealed into the vTPM at
# boot (persistent handle) unsealed every 4th tick. The guest echoes TCP on
# port 7000 and answers ping on $NB_VM4.

QB_NAME=vm1
QB_MEM=${QB_MEM:-256M}
QB_DISK_MB=16
QB_PEER_PORT=7000
QB_PIDS_QEMU=()

qb_log() { echo "qemubed: $*" >&2; }

qb_cache() {
	QB_CACHE=${SMG_QEMU_CACHE:-${SMG_BUILD:-/tmp}/qemu-cache}
	mkdir -p "$QB_CACHE"
}

# The kernel image and the modules the guest loads, from Debian's package.
qb_fetch_kernel() {
	local kver deb m
	kver=$(apt-cache depends linux-image-amd64 2>/dev/null |
		sed -n 's/.*Depends: linux-image-\(6[^ ]*-amd64\)$/\1/p' | head -1)
	[ -n "$kver" ] || kver=$(ls "$QB_CACHE"/k 2>/dev/null | sed -n 's/^vmlinuz-//p' | head -1)
	[ -n "$kver" ] || { qb_log "no linux-image-amd64 candidate"; return 77; }
	QB_KERNEL=$QB_CACHE/k/vmlinuz-$kver
	QB_MODS=$QB_CACHE/k/mods-$kver
	[ -f "$QB_KERNEL" ] && [ -f "$QB_MODS/virtio_blk.ko" ] && return 0
	mkdir -p "$QB_CACHE/debs" "$QB_CACHE/k" "$QB_MODS"
	deb=$(ls "$QB_CACHE"/debs/linux-image-"$kver"_*.deb 2>/dev/null | head -1)
	if [ -z "$deb" ]; then
		(cd "$QB_CACHE/debs" && apt-get download "linux-image-$kver" \
			>"$QB_CACHE/download.log" 2>&1) || {
			qb_log "apt-get download linux-image-$kver failed ($QB_CACHE/download.log)"
			return 77
		}
		deb=$(ls "$QB_CACHE"/debs/linux-image-"$kver"_*.deb | head -1)
	fi
	rm -rf "$QB_CACHE/x" && mkdir -p "$QB_CACHE/x"
	dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$QB_CACHE/x" --wildcards \
		"./boot/vmlinuz-$kver" "./lib/modules/$kver/kernel/drivers/virtio/*" \
		"./lib/modules/$kver/kernel/drivers/block/virtio_blk.ko" \
		"./lib/modules/$kver/kernel/drivers/net/ethernet/intel/e1000/e1000.ko" || return 1
	for m in virtio virtio_ring virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci; do
		cp "$QB_CACHE/x/lib/modules/$kver/kernel/drivers/virtio/$m.ko" "$QB_MODS/" || return 1
	done
	cp "$QB_CACHE/x/lib/modules/$kver/kernel/drivers/block/virtio_blk.ko" \
		"$QB_CACHE/x/lib/modules/$kver/kernel/drivers/net/ethernet/intel/e1000/e1000.ko" \
		"$QB_MODS/" || return 1
	cp "$QB_CACHE/x/boot/vmlinuz-$kver" "$QB_KERNEL"
	rm -rf "$QB_CACHE/x"
}

# The initramfs: busybox, the modules, smgguest (static), /init.
qb_build_guest() {
	local root=$QB_CACHE/root
	QB_INITRD=$QB_CACHE/initrd-$(cat "$SMG_SRC/test/qemu/guest-init.sh" \
		"$SMG_SRC/test/qemu/guest_helper.c" | md5sum | cut -c1-12).gz
	[ -f "$QB_INITRD" ] && return 0
	rm -rf "$root" && mkdir -p "$root"/{bin,dev,proc,sys,tmp,state,lib/modules}
	cp /bin/busybox "$root/bin/busybox"
	cp "$QB_MODS"/*.ko "$root/lib/modules/"
	cc -static -O2 -Wall -Wextra -Werror -o "$root/bin/smgguest" \
		"$SMG_SRC/test/qemu/guest_helper.c" || return 1
	cp "$SMG_SRC/test/qemu/guest-init.sh" "$root/init"
	chmod +x "$root/init"
	(cd "$root" && find . | cpio -o -H newc 2>/dev/null | gzip -1) >"$QB_INITRD.tmp" &&
		mv "$QB_INITRD.tmp" "$QB_INITRD"
}

qb_init() {
	local t
	for t in qemu-system-x86_64 swtpm cpio cc qemu-nbd dpkg-deb; do
		command -v "$t" >/dev/null || { qb_log "$t missing (scripts/setup.sh)"; exit 77; }
	done
	[ -x /bin/busybox ] || { qb_log "busybox-static missing"; exit 77; }
	[ -c /dev/net/tun ] || { qb_log "no /dev/net/tun"; exit 77; }
	nb_init
	qb_cache
	# ctest runs the qemu tests in parallel: one fetches and builds, the
	# other waits for the cache.
	exec 9>"$QB_CACHE/.lock"
	flock 9
	qb_fetch_kernel || exit $?
	qb_build_guest || { qb_log "guest build failed"; exit 1; }
	flock -u 9
	exec 9>&-
	trap 'qb_down' EXIT
	trap 'qb_down; exit 130' INT
	trap 'qb_down; exit 143' TERM HUP
	nb_up || { qb_log "network bed failed"; exit 1; }
	T=$NB_TMP
	QB_SHM=/dev/shm/$NB_P
	mkdir -p "$QB_SHM"
	# The VM's disk: an export of each host's disk service (secmig disk
	# serve), which migrates with the VM; QB_DISK=shared: shared storage,
	# one image behind qemu-nbd for both QEMUs.
	if [ "${QB_DISK:-service}" != shared ]; then
		QB_DISK=service
		for h in src dst; do
			qb_defs "$h"
			nb_bg "$h" "$T/disk-$h.log" "$SECMIG" disk serve --state-dir "$T/$h" \
				--defs "$T/$h/defs"
			wait_file "$T/$h/disk.sock" 200 || { qb_log "disk service in $h"; exit 1; }
		done
		"$SECMIG" -q disk --state-dir "$T/src" create "$QB_NAME.0" "${QB_DISK_MB}M" ||
			{ qb_log "disk create"; exit 1; }
	else
		QB_DISK=shared
		truncate -s "${QB_DISK_MB}M" "$T/disk.img"
		qemu-nbd --persistent --shared=4 --format=raw --export-name="$QB_NAME.0" \
			--socket="$T/nbd.sock" "$T/disk.img" >"$T/qemu-nbd.log" 2>&1 &
		NB_PIDS+=("$!")
		wait_file "$T/nbd.sock" 200 || { qb_log "qemu-nbd did not start"; exit 1; }
	fi
	[ "$QB_DISK" = shared ] && for h in src dst; do qb_defs "$h"; done
	qb_log "disk: $QB_DISK"
}

# HOST's own host definitions (docs/hostdef.md): which VM the other host
# may bring, its NIC on hbr, its disk's size, a vTPM, and what this host
# boots it with (the destination's .vm file has no boot lines: they come
# from here, never from the sender).
qb_defs() { # host
	local d=$T/$1 from=src
	[ "$1" = src ] && from=dst
	mkdir -p "$d/disks" && chmod 700 "$d" "$d/disks"
	cat >"$d/defs" <<EOF
storage $d/disks
bridge hbr
vm $QB_NAME
  from $from
  memory $QB_MEM
  vcpus 1
  disks 1
  disk-size ${QB_DISK_MB}M
  nic bridge=hbr mac=$NB_VM_MAC ip=$NB_VM4/32
  type hvm
  kernel $QB_KERNEL
  ramdisk $QB_INITRD
  cmdline $(qb_cmdline)
  vtpm yes
EOF
	chmod 600 "$d/defs"
}

qb_cmdline() {
	echo "console=ttyS0 quiet smg.ip=$NB_VM4/24 smg.peer=$NB_PEER4${QB_CMDLINE_EXTRA:+ $QB_CMDLINE_EXTRA}"
}

qb_disk_line() { # host
	if [ "$QB_DISK" = service ]; then
		echo "disk = export=$QB_NAME.0,nbd=$T/$1/nbd.sock"
	else
		echo "disk = export=$QB_NAME.0,nbd=$T/nbd.sock,shared=yes"
	fi
}

qb_dir() { echo "$T/$1"; }

# Boot lines for the host that starts the VM itself (secmig qemu start);
# a secmig destination boots it from its host definitions (qb_defs).
# QB_BOOT_ALL=1: every host (bench/qemu.sh starts QEMU's own incoming
# QEMU with `secmig qemu --incoming start`, which reads only the .vm file).
qb_boot_lines() { # host
	[ "$1" = src ] || [ "${QB_BOOT_ALL:-0}" = 1 ] || return 0
	printf 'kernel = %s\ninitrd = %s\ncmdline = %s\n' "$QB_KERNEL" "$QB_INITRD" "$(qb_cmdline)"
}

qb_define() { # host
	local d=$T/$1
	mkdir -p "$d/qemu"
	chmod 700 "$d"
	cat >"$d/qemu/$QB_NAME.vm" <<EOF
name = $QB_NAME
memory = $QB_MEM
vcpus = 1
machine = pc
accel = tcg
$(qb_boot_lines "$1")
ram = $QB_SHM/$1-$QB_NAME.ram
serial = $d/serial.log
nic = mac=$NB_VM_MAC,tap=qt0,bridge=hbr,model=e1000,ipv4=$NB_VM4/24
$(qb_disk_line "$1")
vtpm = yes
EOF
	chmod 600 "$d/qemu/$QB_NAME.vm"
}

qb_status() { # host
	nb_exec "$1" "$SECMIG" --quiet qemu --state-dir "$T/$1" status "$QB_NAME" 2>/dev/null ||
		echo "absent -1"
}

qb_note_pid() { # host: remember the QEMU we (through secmig) started there
	local s pid
	s=$(qb_status "$1")
	pid=${s#* }
	[ "$pid" -gt 0 ] 2>/dev/null && QB_PIDS_QEMU+=("$pid")
	return 0
}

qb_start() { # host
	nb_exec "$1" "$SECMIG" --quiet qemu --state-dir "$T/$1" start "$QB_NAME" || return 1
	qb_note_pid "$1"
}

qb_ticks() { # host -> tick lines of its serial log
	grep -a '^tick ' "$T/$1/serial.log" 2>/dev/null
}

qb_last_tick() { # host -> N of its last tick (0 if none)
	local n
	n=$(qb_ticks "$1" | tail -1 | awk '{print $2}')
	echo "${n:-0}"
}

qb_wait_tick() { # host N [tries x 0.5 s]
	for _ in $(seq "${3:-240}"); do
		[ "$(qb_last_tick "$1")" -ge "$2" ] 2>/dev/null && return 0
		sleep 0.5
	done
	return 1
}

qb_down() {
	local p
	trap - EXIT INT TERM HUP
	for h in src dst; do
		[ -n "${T:-}" ] && [ -d "$T/$h" ] && qb_note_pid "$h"
	done
	for p in "${QB_PIDS_QEMU[@]}"; do
		kill -KILL "$p" 2>/dev/null
	done
	[ -n "${QB_SHM:-}" ] && rm -rf "$QB_SHM"
	if [ "${SMG_QEMU_KEEP:-0}" = 1 ] && [ -n "${NB_TMP:-}" ]; then
		cp -r "$NB_TMP" "/tmp/$NB_P.kept" 2>/dev/null && qb_log "kept /tmp/$NB_P.kept"
	fi
	nb_down
}

# Software-mode identities: each host enrols the other by name.
qb_keys() {
	"$SECMIG" keygen "$T/src/host.key" >/dev/null && "$SECMIG" keygen "$T/dst/host.key" >/dev/null ||
		return 1
	echo "dst $(cat "$T/dst/host.key.pub")" >"$T/src/peers"
	echo "src $(cat "$T/src/host.key.pub")" >"$T/dst/peers"
	chmod 600 "$T/src/peers" "$T/dst/peers"
}

qb_addr() { [ "$1" = src ] && echo "$NB_SRC4" || echo "$NB_DST4"; }

# qb_stamp TS RAW [RAW_ERR]: stdin's lines to RAW (with RAW_ERR: JSON lines
# to RAW, the others there) and each, stamped "REALTIME_NS line" on arrival,
# to TS. Bash builtins only: a stamper that takes CPU or seconds to start
# (python under load) would skew or late-stamp what it measures.
qb_stamp() {
	local l t
	{
		while IFS= read -r l; do
			t=$EPOCHREALTIME
			printf '%s000 %s\n' "${t/./}" "$l" >&3
			if [ $# -ge 3 ] && [ "${l:0:1}" != "{" ]; then
				printf '%s\n' "$l" >&5
			else
				printf '%s\n' "$l" >&4
			fi
		done
	} 3>>"$1" 4>>"$2" 5>>"${3:-/dev/null}"
}
export -f qb_stamp

# qb_recv HOST [env...] -- [recv flags]: a --once receiver; QB_RECV_PID, QB_PORT.
qb_recv() {
	local h=$1 envs=() port
	shift
	while [ $# -gt 0 ] && [ "$1" != -- ]; do envs+=("$1"); shift; done
	[ "${1:-}" = -- ] && shift
	rm -f "$T/recv-$h.out" "$T/recv-$h.ts"
	local cmd=(env ${envs[@]+"${envs[@]}"} "$SECMIG" -v recv \
		--listen "$(qb_addr "$h"):0" --once --json --state-dir "$T/$h" --name "$h" \
		--backend qemu --insecure-software-mode --defs "$T/$h/defs" "$@")
	if [ -n "${QB_STAMP:-}" ]; then # every line also stamped on arrival
		nb_bg "$h" "$T/recv-$h.stamp" bash -c \
			'"$@" 2>&1 | $QB_STAMP "$0.ts" "$0.out"' "$T/recv-$h" "${cmd[@]}"
	else
		nb_bg "$h" "$T/recv-$h.out" "${cmd[@]}"
	fi
	QB_RECV_PID=$NB_PID
	QB_PORT=
	for _ in $(seq 200); do
		port=$(sed -n 's/.*"event":"listening".*"port":\([0-9]*\).*/\1/p' "$T/recv-$h.out" 2>/dev/null)
		[ -n "$port" ] && { QB_PORT=$port; return 0; }
		sleep 0.05
	done
	qb_log "receiver in $h did not start: $(cat "$T/recv-$h.out")"
	return 1
}

# qb_send FROM TO [env...] -- [send flags]: QB_RC; JSON in $T/send.out.
qb_send() {
	local from=$1 to=$2 envs=()
	shift 2
	while [ $# -gt 0 ] && [ "$1" != -- ]; do envs+=("$1"); shift; done
	[ "${1:-}" = -- ] && shift
	local cmd=(env ${envs[@]+"${envs[@]}"} "$SECMIG" -v send \
		--to "${QB_TO:-$(qb_addr "$to"):$QB_PORT}" --peer "$to" --on-no-converge extend \
		--domain "$QB_NAME" --json \
		--state-dir "$T/$from" --name "$from" --backend qemu "$@")
	if [ -n "${QB_STAMP:-}" ]; then # JSON to send.out, the log to send.err, both stamped
		rm -f "$T/send.out" "$T/send.err" "$T/send.ts"
		nb_exec "$from" "${cmd[@]}" 2>&1 | $QB_STAMP "$T/send.ts" "$T/send.out" "$T/send.err"
		QB_RC=${PIPESTATUS[0]}
	else
		nb_exec "$from" "${cmd[@]}" >"$T/send.out" 2>"$T/send.err"
		QB_RC=$?
	fi
}

# The VM's disk in HOST's disk service: "STATE CLIENTS", or "absent".
qb_disk() { # host
	local l
	l=$("$SECMIG" -q disk --state-dir "$T/$1" list 2>/dev/null | awk -v n="$QB_NAME.0" '$1 == n')
	[ -n "$l" ] && echo "$l" | awk '{print $3, $4}' || echo absent
}

# With the disk service: HOST's service serves the VM's disk (idle: no
# migration holds it) to its QEMU, and the other host's holds nothing of it.
qb_disk_expect_on() { # host what
	local other=dst d o
	[ "$QB_DISK" = service ] || return 0
	[ "$1" = dst ] && other=src
	for _ in $(seq 100); do
		d=$(qb_disk "$1")
		o=$(qb_disk "$other")
		[ "${d%% *}" = idle ] && [ "${d#* }" -ge 1 ] && [ "$o" = absent ] && break
		sleep 0.1
	done
	[ "${d%% *}" = idle ] && [ "${d#* }" -ge 1 ] ||
		{ echo "FAIL: $2: disk $QB_NAME.0 on $1 is '$d' (want idle, served)"; return 1; }
	[ "$o" = absent ] || { echo "FAIL: $2: disk $QB_NAME.0 left on $other: '$o'"; return 1; }
	echo "  disk $QB_NAME.0: $1 $d, $other $o"
	return 0
}

# Exactly one QEMU runs the VM, on HOST, and it runs (not paused); its
# disk is HOST's disk service's alone.
qb_expect_on() { # host what
	local other=dst s o
	[ "$1" = dst ] && other=src
	for _ in $(seq 100); do
		s=$(qb_status "$1")
		o=$(qb_status "$other")
		[ "${s%% *}" = running ] && [ "${o%% *}" = absent ] && break
		sleep 0.1
	done
	[ "${s%% *}" = running ] || { echo "FAIL: $2: the VM is '$s' on $1"; return 1; }
	[ "${o%% *}" = absent ] || { echo "FAIL: $2: a copy is '$o' on $other"; return 1; }
	qb_note_pid "$1"
	qb_disk_expect_on "$1" "$2"
}
