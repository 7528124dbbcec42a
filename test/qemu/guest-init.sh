#!/bin/busybox sh
# /init of the test guest (test/qemu/qemubed.sh): a zdtm-style workload
# that writes memory and disk, extends a PCR and re-checks all of it every
# tick, so a migration that loses or stales anything shows in its output.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs -o size=96m tmpfs /state
for m in e1000 virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev \
	virtio_pci virtio_blk; do
	insmod /lib/modules/$m.ko 2>/dev/null
done
arg() { tr ' ' '\n' </proc/cmdline | sed -n "s/^$1=//p"; }
ip=$(arg smg.ip)
mode=$(arg smg.mode)
echo "GUEST-UP boot_id=$(cat /proc/sys/kernel/random/boot_id) up=$(cut -d' ' -f1 /proc/uptime)"
ip link set lo up
for _ in 1 2 3 4 5 6 7 8 9 10; do [ -e /sys/class/net/eth0 ] && break; sleep 0.2; done
ip link set eth0 up && ip addr add "$ip" dev eth0 && echo "GUEST-NET $ip"
# TCP echo on 7000 for the connection the test keeps open.
nc -ll -p 7000 -e /bin/cat &
if [ "$mode" = bench ]; then
	# The benchmark's guest: a fixed dirty rate, and a UDP tick every 10 ms
	# that the host timestamps (the guest's own clock stops while paused).
	smgguest dirty "$(arg smg.dirty_mib)" "$(arg smg.dirty_rate)" &
	smgguest ticker "$(arg smg.peer)" 7001 10 &
	echo "GUEST-BENCH"
	while true; do sleep 10; done
fi

# vTPM: a secret sealed at boot into a persistent object (it lives in the
# TPM's NV, which must travel with the VM), PCR 16 extended every tick.
H=0x81000010
secret=$(head -c 16 /dev/urandom | md5sum | cut -c1-32)
smgguest seal $H "$secret" && echo "GUEST-SEALED"
pcr=$(smgguest read 16)
[ -b /dev/vda ] && echo "GUEST-DISK $(blockdev --getsize64 /dev/vda)"
i=0
bad=0
dbad=0
while true; do
	i=$((i + 1))
	s=$((i % 64))
	v=$(((i + 32) % 64))
	# memory: 256 KiB of fresh random data per tick, re-check one from 32 ago
	dd if=/dev/urandom of=/state/chunk.$s bs=64k count=4 2>/dev/null
	md5sum /state/chunk.$s | cut -d' ' -f1 >/state/sum.$s
	echo $i >>/state/log
	if [ -f /state/sum.$v ] && [ "$(md5sum </state/chunk.$v | cut -d' ' -f1)" != "$(cat /state/sum.$v)" ]; then
		bad=$((bad + 1))
		echo "CORRUPT memory chunk.$v"
	fi
	[ "$(wc -l </state/log)" = "$i" ] || { bad=$((bad + 1)); echo "CORRUPT log"; }
	# disk: a 64 KiB block per tick, O_DIRECT both ways
	if [ -b /dev/vda ]; then
		dd if=/state/chunk.$s of=/dev/vda bs=64k count=1 seek=$s oflag=direct conv=notrunc 2>/dev/null
		head -c 65536 /state/chunk.$s | md5sum | cut -d' ' -f1 >/state/dsum.$s
		if [ -f /state/dsum.$v ] &&
			[ "$(dd if=/dev/vda bs=64k count=1 skip=$v iflag=direct 2>/dev/null | md5sum | cut -d' ' -f1)" != "$(cat /state/dsum.$v)" ]; then
			dbad=$((dbad + 1))
			echo "CORRUPT disk block $v"
		fi
	fi
	# PCR 16: extend with sha256("tick N"), compare with our own chain
	d=$(echo -n "tick $i" | sha256sum | cut -c1-64)
	smgguest extend 16 "$d"
	pcr=$({ smgguest unhex "$pcr"; smgguest unhex "$d"; } | sha256sum | cut -c1-64)
	p=ok
	[ "$(smgguest read 16)" = "$pcr" ] || p=BAD
	sl=ok
	if [ $((i % 4)) = 0 ] && [ "$(smgguest unseal $H)" != "$secret" ]; then sl=BAD; fi
	m=ok
	[ $bad = 0 ] || m=BAD
	dk=ok
	[ $dbad = 0 ] || dk=BAD
	echo "tick $i up=$(cut -d' ' -f1 /proc/uptime) mem=$m disk=$dk pcr=$p seal=$sl pcr16=$(echo $pcr | cut -c1-16)"
	sleep 0.5
done
