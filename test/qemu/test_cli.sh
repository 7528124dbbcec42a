#!/usr/bin/env bash
# `secmig qemu check` and `secmig qemu cmdline`: the CLI reaches the QEMU
# backend through engine/engine.h only (smg_qemu_def_check,
# smg_qemu_cmdline); no QEMU is started.
set -u
T=$(mktemp -d /tmp/smg-qemucli.XXXXXX)
trap 'rm -rf "$T"' EXIT
fail=0
err() { echo "FAIL: $*"; fail=1; }
mkdir -m 700 "$T/qemu"
cat >"$T/qemu/vm1.vm" <<VM
name = vm1
memory = 64M
vcpus = 2
accel = tcg
kernel = /srv/k/vmlinuz
ram = /dev/shm/smg-qemucli-vm1.ram
nic = mac=52:54:00:12:34:56,tap=qt0,bridge=br0
vtpm = yes
VM
chmod 600 "$T/qemu/vm1.vm"

out=$("$SECMIG" qemu check "$T/qemu/vm1.vm") || err "check of a good file: exit $?"
[ "$out" = "$T/qemu/vm1.vm: 'vm1', 64 MiB, 2 vCPUs, 1 NICs, 0 disks, vtpm yes" ] ||
	err "check prints: $out"
printf 'name = vm2\nmemory = 64M\nvcpus = lots\n' >"$T/bad.vm"
"$SECMIG" qemu check "$T/bad.vm" 2>"$T/e"
rc=$?
[ $rc = 11 ] || err "check of a bad file: exit $rc, want 11 (config)"
grep -q "line 3" "$T/e" || err "check names no line: $(cat "$T/e")"

line=$("$SECMIG" qemu --state-dir "$T" cmdline vm1) || err "cmdline: exit $?"
for want in "-name guest=vm1" "-m 64M" "-smp 2" "-kernel /srv/k/vmlinuz" \
	"mem-path=/dev/shm/smg-qemucli-vm1.ram,share=on" \
	"-qmp unix:$T/qemu/vm1.qmp" "mac=52:54:00:12:34:56" "-tpmdev emulator"; do
	case "$line" in
	*"$want"*) ;;
	*) err "cmdline lacks '$want': $line" ;;
	esac
done
[ "$(printf '%s' "$line" | wc -l)" = 0 ] || err "cmdline is more than one line"
"$SECMIG" qemu --state-dir "$T" cmdline nope 2>"$T/e" && err "cmdline of an unknown VM succeeded"
grep -q "no definition of 'nope'" "$T/e" || err "unknown VM: $(cat "$T/e")"
"$SECMIG" qemu --state-dir "$T" cmdline ../x 2>/dev/null && err "a bad name was accepted"

[ $fail = 0 ] && echo "test_qemu_cli: ok"
exit $fail
