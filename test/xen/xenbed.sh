#!/usr/bin/env bash
# The nested-Xen test bed: a real Xen 4.17 host with a Linux PV dom0 booted
# under qemu-system-x86_64 -accel tcg (no KVM needed), a PVH domU whose
# workload dirties memory and prints a counter, and the freshly built secmig
# inside dom0. Sourced by test/xen/test_*.sh; see docs/xen.md.
#
# Everything downloaded is cached outside the repository in $SMG_XEN_CACHE
# (default /var/cache/secmig-xen, else $SMG_BUILD/xen-cache).
#
# Functions return 77 when a needed package cannot be obtained (ctest: skip).

# What dom0-test.sh runs unless XB_PHASES says otherwise: secmig send/recv
# --backend xen with the sender stopped in stop-and-copy (SIGTERM; SIGKILL
# then resolve), the receiver killed mid-pre-copy, then the migration.
# live-abort and live-migrate (the backend driven in-process by
# test_xen_live) are opt-in: they add ~2.5 minutes under TCG.
XB_DEFAULT_PHASES="secmig-stop secmig-kill secmig-migrate"

XB_PKGS=(xen-hypervisor-4.17-amd64 xen-utils-4.17 xen-utils-common
	xenstore-utils libyajl2)

xb_log() { echo "xenbed: $*" >&2; }

xb_cache_dir() {
	local c=${SMG_XEN_CACHE:-/var/cache/secmig-xen}
	if ! mkdir -p "$c" 2>/dev/null || [ ! -w "$c" ]; then
		c=${SMG_BUILD:-/tmp}/xen-cache
		mkdir -p "$c" || return 1
	fi
	XB_CACHE=$c
}

# Xen's own stream checker (python, from xen-utils): sets XB_VERIFY.
xb_fetch_verify() {
	xb_cache_dir || return 1
	local c=$XB_CACHE v=$XB_CACHE/x/usr/lib/xen-4.17/bin/verify-stream-v2
	command -v python3 >/dev/null || { xb_log "python3 missing"; return 77; }
	if [ ! -f "$v" ]; then
		mkdir -p "$c/debs" "$c/x" && (cd "$c/debs" &&
			apt-get download xen-utils-4.17 >"$c/download.log" 2>&1) || {
			xb_log "apt-get download xen-utils-4.17 failed (see $c/download.log)"
			return 77
		}
		dpkg -x "$c"/debs/xen-utils-4.17_*.deb "$c/x" || return 1
	fi
	XB_VERIFY="env PYTHONPATH=$c/x/usr/lib/xen-4.17/lib/python python3 $v"
}

# Pick the cache and the kernel package; download and unpack once.
xb_fetch() {
	xb_cache_dir || return 1
	local c=$XB_CACHE
	command -v qemu-system-x86_64 >/dev/null || {
		xb_log "qemu-system-x86_64 missing (apt-get install qemu-system-x86)"
		return 77
	}
	command -v cpio >/dev/null || { xb_log "cpio missing"; return 77; }
	[ -x /bin/busybox ] || { xb_log "busybox missing (apt-get install busybox-static)"; return 77; }
	if [ -z "${XB_KVER:-}" ]; then
		XB_KVER=$(apt-cache depends linux-image-amd64 2>/dev/null |
			sed -n 's/.*Depends: linux-image-\(6[^ ]*-amd64\)$/\1/p' | head -1)
		[ -n "$XB_KVER" ] || XB_KVER=$(ls "$c/x/lib/modules" 2>/dev/null | head -1)
		[ -n "$XB_KVER" ] || { xb_log "no linux-image-amd64 candidate"; return 77; }
	fi
	if [ ! -f "$c/x/boot/vmlinuz-$XB_KVER" ] || [ ! -x "$c/x/usr/lib/xen-4.17/bin/xl" ]; then
		mkdir -p "$c/debs" && (cd "$c/debs" &&
			apt-get download "${XB_PKGS[@]}" "linux-image-$XB_KVER" >"$c/download.log" 2>&1) || {
			xb_log "apt-get download failed (see $c/download.log)"
			return 77
		}
		rm -rf "$c/x" && mkdir -p "$c/x"
		for f in "$c"/debs/*.deb; do dpkg -x "$f" "$c/x" || return 1; done
	fi
	[ -f "$c/xen-4.17" ] || zcat "$c/x/boot/xen-4.17-amd64.gz" >"$c/xen-4.17" || return 1
	XB_X=$c/x
	XB_XEN=$c/xen-4.17
	XB_KERNEL=$c/x/boot/vmlinuz-$XB_KVER
	return 0
}

# Copy a binary and every shared library ldd resolves for it into root $1.
# Libraries come from the host (Debian 12, like dom0) or the unpacked debs.
xb_add_bin() {
	local root=$1 bin=$2 dest=${3:-}
	[ -n "$dest" ] || dest=$bin
	mkdir -p "$root/$(dirname "$dest")"
	cp -L "$bin" "$root/$dest"
	LD_LIBRARY_PATH=$XB_X/usr/lib/x86_64-linux-gnu ldd "$bin" 2>/dev/null |
		awk '/=> \//{print $3} /^\t\/lib/{print $1}' | while read -r l; do
		local to=/lib/x86_64-linux-gnu/$(basename "$l")
		case $l in /lib64/*) to=$l ;; esac
		[ -e "$root/$to" ] || { mkdir -p "$root/$(dirname "$to")" && cp -L "$l" "$root/$to"; }
	done
}

xb_busybox_root() {
	local root=$1
	rm -rf "$root" && mkdir -p "$root"/{bin,sbin,etc,proc,sys,dev,tmp,run,var/log,boot}
	ln -s /run "$root/var/run" # xenstored binds /var/run/xenstored/socket
	cp /bin/busybox "$root/bin/busybox"
}

xb_cpio() { (cd "$1" && find . | cpio -o -H newc 2>/dev/null | gzip -1) >"$2"; }

# The domU: busybox only; /init dirties ~2 MB per tick and prints a counter
# with its uptime, so continuity across a migration is visible in its log.
xb_build_domu() {
	local root=$XB_WORK/domu-root
	xb_busybox_root "$root"
	cat >"$root/init" <<'EOF'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev; mount -t tmpfs tmp /tmp
echo "DOMU-UP uptime=$(cut -d' ' -f1 /proc/uptime) cpu: $(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -x -E 'xsave|avx|avx2|pku' | tr '\n' ' ')"
i=0
while true; do
	i=$((i+1))
	dd if=/dev/urandom of=/tmp/blob bs=64k count=32 2>/dev/null
	echo "domU tick $i $(cut -d' ' -f1 /proc/uptime)"
	rm -f /tmp/blob
	sleep 1
done
EOF
	chmod +x "$root/init"
	xb_cpio "$root" "$XB_WORK/domU-initrd.gz"
}

# dom0: busybox, the Xen modules and tools, secmig and any extra programs
# ($XB_EXTRA_BINS), the domU kernel/initrd/config and the test script $1
# (run by /init between the "tools up" and "poweroff" steps).
xb_build_dom0() {
	local test_script=$1 root=$XB_WORK/dom0-root b
	xb_busybox_root "$root"
	mkdir -p "$root/lib/modules" "$root/etc/xen" "$root/usr/lib/xen-4.17/bin" "$root/var/lib/xen"
	for m in xen-evtchn xen-privcmd xen-gntdev xen-gntalloc xenfs; do
		find "$XB_X/lib/modules/$XB_KVER" -name "$m.ko*" -exec cp {} "$root/lib/modules/" \;
	done
	for b in xl xenstored xenconsoled xen-init-dom0 libxl-save-helper; do
		xb_add_bin "$root" "$XB_X/usr/lib/xen-4.17/bin/$b" "/usr/lib/xen-4.17/bin/$b"
	done
	for b in "$XB_X"/usr/bin/xenstore*; do
		[ -L "$b" ] && continue
		xb_add_bin "$root" "$b" "/usr/bin/$(basename "$b")"
	done
	for b in read write ls rm exists list; do
		[ -e "$root/usr/bin/xenstore-$b" ] || ln -s xenstore "$root/usr/bin/xenstore-$b"
	done
	cp -L /lib/x86_64-linux-gnu/libgcc_s.so.1 "$root/lib/x86_64-linux-gnu/" # xl aborts without it
	[ -d "$XB_X/etc/xen" ] && cp -r "$XB_X/etc/xen/." "$root/etc/xen/" 2>/dev/null
	xb_add_bin "$root" "$SECMIG" /usr/bin/secmig
	for b in ${XB_EXTRA_BINS:-}; do xb_add_bin "$root" "$b" "/usr/bin/$(basename "$b")"; done
	# ASan builds of secmig need their runtime options in dom0 too.
	cp "$XB_KERNEL" "$root/boot/vmlinuz"
	cp "$XB_WORK/domU-initrd.gz" "$root/boot/domU-initrd.gz"
	cat >"$root/etc/xen/domu.cfg" <<EOF
name = "domu"
type = "pvh"
kernel = "/boot/vmlinuz"
ramdisk = "/boot/domU-initrd.gz"
extra = "${XB_DOMU_EXTRA:-console=hvc0 quiet}"
memory = 128
vcpus = 1
on_crash = "preserve"
EOF
	cp "$test_script" "$root/test.sh"
	echo "${XB_PHASES:-$XB_DEFAULT_PHASES}" >"$root/etc/xb-phases"
	echo "${XB_BOOT_LOOPS:-6}" >"$root/etc/xb-boot-loops"
	cat >"$root/init" <<EOF
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/usr/lib/xen-4.17/bin:/usr/bin:/bin:/sbin
# dom0 has 512 MiB for a sender and a receiver: ASan's quarantine of
# freed memory (256 MiB a process by default) must not fill it.
export ASAN_OPTIONS=detect_leaks=0:quarantine_size_mb=16
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp; mount -t tmpfs run /run
mkdir -p /dev/pts /dev/shm /run/xen /run/xenstored /run/lock /var/lib/xenstored /var/log/xen/console
mount -t devpts devpts /dev/pts; mount -t tmpfs shm /dev/shm
ip link set lo up
echo "XB-STEP dom0-init"
for m in xen-evtchn xen-privcmd xen-gntdev xen-gntalloc xenfs; do
	echo "XB-STEP insmod \$m"; insmod /lib/modules/\$m.ko || echo "XB-WARN insmod \$m failed"
done
mount -t xenfs xenfs /proc/xen
echo "XB-STEP xenfs-mounted"
xenstored --pid-file /run/xenstored.pid >/var/log/xen/xenstored.out 2>&1 &
echo "XB-STEP xenstored-started"
sleep 1
pidof xenstored >/dev/null || { echo "XB-WARN xenstored died:"; cat /var/log/xen/xenstored.out; ls -la /dev/xen /proc/xen; }
timeout 30 xenstore-write /local/domain/0/name Domain-0 || echo "XB-WARN xenstore-write rc=\$?"
xen-init-dom0 >/dev/null 2>&1 || echo "XB-WARN xen-init-dom0 failed"
xenconsoled --pid-file=/run/xenconsoled.pid --log=guest --log-dir=/var/log/xen/console &
echo "XB-STEP tools-up uptime=\$(cut -d' ' -f1 /proc/uptime)"
sh /test.sh
echo "XB-RESULT rc=\$?"
echo "XB-DONE"
poweroff -f
EOF
	chmod +x "$root/init"
	xb_cpio "$root" "$XB_WORK/dom0-initrd.gz"
}

# Boot; the serial log goes to $XB_WORK/serial.log. QEMU is killed by PID
# if it outlives $1 seconds (default 600). Returns QEMU's exit status.
xb_boot() {
	local limit=${1:-600} qpid rc t=0
	# -cpu max,rdtscp=off: QEMU reports an RDTSCP trap as RDTSC and Xen loops
	# on PVH guests. xsave=off: with XSAVE (and so AVX) the domU crashed
	# about one boot in eight (XRSTOR #GP, then #UD on a VEX instruction):
	# QEMU 7.2's emulated AVX/XSAVE state does not survive nested SVM (see
	# docs/xen.md). smap=0: dom0 crashes in create_bounce_frame under TCG.
	# dom0_mem=1024M: the two secmig processes in dom0 are ASan builds (each
	# ~160 MB resident during the migrate phase); with 512M the OOM killer took
	# the sender in a CI run.
	qemu-system-x86_64 -accel tcg -cpu "${XB_CPU:-max,rdtscp=off,xsave=off}" -m 2048 -smp "${XB_SMP:-2}" \
		-display none -monitor "unix:$XB_WORK/mon.sock,server,nowait" -serial "file:$XB_WORK/serial.log" -no-reboot \
		-kernel "$XB_XEN" \
		-append "dom0_mem=1024M,max:1024M dom0_max_vcpus=1 console=com1 com1=115200,8n1 loglvl=all guest_loglvl=all noreboot smap=0 smep=0 ${XB_XEN_ARGS:-sync_console}" \
		-initrd "$XB_KERNEL console=hvc0 earlyprintk=xen,$XB_WORK/dom0-initrd.gz" \
		</dev/null >"$XB_WORK/qemu.out" 2>&1 &
	qpid=$!
	echo "$qpid" >"$XB_WORK/qemu.pid"
	while kill -0 "$qpid" 2>/dev/null; do
		if [ "$t" -ge "$limit" ]; then
			xb_log "qemu still running after ${limit}s: killing pid $qpid"
			kill "$qpid" 2>/dev/null
			sleep 1
			kill -9 "$qpid" 2>/dev/null
			break
		fi
		if grep -q '^XB-DONE' "$XB_WORK/serial.log" 2>/dev/null; then
			sleep 5 # poweroff -f follows at once
		fi
		sleep 2
		t=$((t + 2))
	done
	wait "$qpid"
	rc=$?
	rm -f "$XB_WORK/qemu.pid"
	return $rc
}
