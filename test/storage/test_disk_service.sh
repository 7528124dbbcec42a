#!/usr/bin/env bash
# The per-host disk service on its own: sockets and files locked down, only
# root (or its own uid) served even where an operator loosened the
# directory, names never paths, capacity enforced, a hostile control client
# refused without harming the service, leases undone when their connection
# ends, holes kept on import, and a restart that re-exports the images,
# drops uncommitted incoming ones and refuses a disk whose WAIO surrogate
# was left behind.
command -v qemu-io >/dev/null && command -v python3 >/dev/null ||
	{ echo "qemu-utils or python3 not installed: skip"; exit 77; }
set -u
T=$(mktemp -d /tmp/smg-dsvc.XXXXXX)
S=$T/st
SVC=
fail=0
cleanup() {
	[ -n "$SVC" ] && kill "$SVC" 2>/dev/null && wait "$SVC" 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT
err() { echo "FAIL: $*"; fail=1; }
start() { # [flags...]
	"$SECMIG" disk serve --state-dir "$S" "$@" 2>>"$T/svc.err" &
	SVC=$!
	for i in $(seq 100); do [ -S "$S/disk.sock" ] && return 0; sleep 0.05; done
	err "service did not start"; cat "$T/svc.err"
}
stop() {
	kill "$SVC"; wait "$SVC"; local rc=$?
	SVC=
	[ "$rc" = 0 ] || err "service exit $rc on SIGTERM"
}
d() { "$SECMIG" disk --state-dir "$S" "$@"; }
# Raw control client: one length-prefixed request per argument (\n escapes),
# prints each reply's first line, or EOF when the service hung up.
raw() {
	python3 - "$S/disk.sock" "$@" <<'EOF'
import socket, struct, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
def recvn(n):
    b = b""
    while len(b) < n:
        try:
            k = s.recv(n - len(b))
        except ConnectionResetError:
            return None
        if not k:
            return None
        b += k
    return b
for a in sys.argv[2:]:
    if a.startswith("SLEEP:"):
        import time
        time.sleep(int(a[6:]) / 1000)
        continue
    if a.startswith("RAWLEN:"):
        s.sendall(struct.pack(">I", int(a[7:])) + b"x" * 16)
    else:
        body = a.encode().decode("unicode_escape").encode("latin-1")
        s.sendall(struct.pack(">I", len(body)) + body)
    h = recvn(4)
    if h is None:
        print("EOF", flush=True); break
    rep = recvn(struct.unpack(">I", h)[0])
    print(rep.split(b"\n")[0].decode(), flush=True)
EOF
}

start --capacity 96M --max-disk 64M
# Sockets and directories: nobody else's.
[ "$(stat -c %a "$S")" = 700 ] || err "state dir mode $(stat -c %a "$S")"
[ "$(stat -c %a "$S/disks")" = 700 ] || err "storage dir mode $(stat -c %a "$S/disks")"
for f in disk.sock nbd.sock; do # bound under umask 077: no group or other bits
	case $(stat -c %a "$S/$f") in ?00) ;; *) err "$f mode $(stat -c %a "$S/$f")" ;; esac
done

# Create, import (holes kept), capacity and size caps, names.
d create vm1.0 32M >/dev/null || err "create"
truncate -s 16M "$T/src.img"
qemu-io -f raw "$T/src.img" -c "write -P 0x5a 1M 64k" -c "write -P 0x5b 9M 4k" >/dev/null
d import vm2.0 "$T/src.img" >/dev/null || err "import"
cmp -s "$T/src.img" "$S/disks/vm2.0.img" || err "import: bytes differ"
[ "$(du -k "$S/disks/vm2.0.img" | cut -f1)" -lt 1024 ] || err "import: holes not kept"
d create big.0 80M >/dev/null 2>&1; [ $? = 5 ] || err "a disk over --max-disk accepted"
d create vm3.0 64M >/dev/null 2>&1; [ $? = 5 ] || err "a disk past --capacity accepted"
d create ../x 1M >/dev/null 2>&1; [ $? = 2 ] || err "a path accepted as a name"
d create vm1.0 1M >/dev/null 2>&1 && err "a second vm1.0 accepted"
d list >"$T/list"
grep -q "^vm1.0 33554432 idle 0$" "$T/list" && grep -q "^vm2.0 16777216 idle 0$" "$T/list" ||
	{ err "list"; cat "$T/list"; }
qemu-io -f raw "nbd+unix:///vm2.0?socket=$S/nbd.sock" -c "read -P 0x5a 1M 64k" \
	-c "write -P 0x77 0 4k" >/dev/null || err "NBD I/O on vm2.0"
qemu-io -f raw "nbd+unix:///nope?socket=$S/nbd.sock" -c "read 0 4k" >/dev/null 2>&1 &&
	err "an unknown export served"

# A hostile control client: each bad request gets ERR, the connection and
# the service live on; a length past the cap hangs up.
raw "FORMAT vm1.0\n" "INFO ../../etc/passwd\n" "CREATE vm9.0 0100\n" \
	"LIST\ntrailing" "NEXT bulk\n" "APPLY\nxx" "RESUME\n" "DELETE vm1.0 now\n" \
	"INFO vm1.0\n" "RAWLEN:4294967295" "LIST\n" >"$T/raw.out"
expect=("ERR -13" "ERR -11" "ERR -11" "ERR -7" "ERR -12" "ERR -12" "ERR -12" "ERR -11"
	"OK 33554432 65536 idle" "EOF")
for i in "${!expect[@]}"; do
	line=$(sed -n "$((i + 1))p" "$T/raw.out")
	case "$line" in "${expect[$i]}"*) ;; *) err "raw request $i: '$line', want '${expect[$i]}'" ;; esac
done
d list >/dev/null || err "service gone after a hostile client"

# Peer credentials: with the directory and sockets loosened by hand, a
# process of another user still gets nothing from either socket.
chmod 711 "$T"; chmod 755 "$S"; chmod 666 "$S/disk.sock" "$S/nbd.sock"
python3 - "$S" <<'EOF' >"$T/nobody.out" 2>&1
import os, socket, struct, sys
os.setgid(65534); os.setuid(65534)
for name, probe in (("disk.sock", struct.pack(">I", 5) + b"LIST\n"), ("nbd.sock", b"")):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(sys.argv[1] + "/" + name)
    s.settimeout(5)
    try:
        s.sendall(probe) if probe else None
        print(name, "got", len(s.recv(100)))
    except (ConnectionResetError, BrokenPipeError):
        print(name, "got 0")  # hung up on: refused
    except Exception as e:
        print(name, "error", type(e).__name__)
EOF
chmod 700 "$T" "$S"; chmod 600 "$S/disk.sock" "$S/nbd.sock"
grep -q "disk.sock got 0" "$T/nobody.out" && grep -q "nbd.sock got 0" "$T/nobody.out" ||
	{ err "another uid was served"; cat "$T/nobody.out"; }

# Leases: an incoming disk whose receiver's connection ends is removed; a
# sending disk whose sender's connection ends is released for I/O again.
raw "RECV in.0 1048576 65536 0\n" >"$T/raw.out"
grep -q "^OK" "$T/raw.out" || { err "RECV"; cat "$T/raw.out"; }
sleep 0.2
d list | grep -q "^in.0 " && err "incoming disk kept after its receiver left"
ls -a "$S/disks" | grep -q incoming && err "incoming file kept after its receiver left"
raw "SEND vm1.0 waio 0\n" "PAUSE\n" "NEXT bulk\n" >"$T/raw.out"
grep -c "^OK" "$T/raw.out" | grep -q 3 || { err "SEND/PAUSE/NEXT"; cat "$T/raw.out"; }
sleep 0.2
d list | grep -q "^vm1.0 .* idle" || err "vm1.0 not idle after its sender left"
timeout 20 qemu-io -f raw "nbd+unix:///vm1.0?socket=$S/nbd.sock" -c "write -P 0x11 0 4k" \
	-c "read -P 0x11 0 4k" >/dev/null || err "vm1.0 I/O still held after its sender left"
ls -a "$S/disks" | grep -q surrogate && err "surrogate left after the sender left"
d delete vm1.0 >/dev/null || err "delete"
[ -e "$S/disks/vm1.0.img" ] && err "delete kept the image"

# A write the guest issues while its disk is paused for stop-and-copy is
# held; when the disk is then handed over and released here, it fails (EIO)
# instead of being acknowledged and lost.
d import held.0 "$T/src.img" >/dev/null || err "import held.0"
raw "SEND held.0 waio 0\n" "PAUSE\n" "SLEEP:3000" "COMMIT\n" "RELEASE\n" >"$T/raw.out" &
RAWPID=$!
for i in $(seq 400); do [ "$(grep -c '^OK' "$T/raw.out")" -ge 2 ] && break; sleep 0.05; done
timeout 30 qemu-io -f raw "nbd+unix:///held.0?socket=$S/nbd.sock" -c "write -P 0x99 0 4k" \
	>"$T/held.out" 2>&1 && err "a write held in the pause was acknowledged after release"
wait "$RAWPID"
grep -c "^OK" "$T/raw.out" | grep -q 4 || { err "SEND/PAUSE/COMMIT/RELEASE"; cat "$T/raw.out"; }
grep -qi "input/output error" "$T/held.out" || { err "the held write did not fail with EIO"; cat "$T/held.out"; }
d list | grep -q "^held.0 " && err "held.0 still listed after RELEASE"
[ -e "$S/disks/held.0.img" ] && err "held.0's image kept after RELEASE"

# The sim VM's disk I/O, inside the service.
d create wl.0 8M >/dev/null || err "create wl.0"
d workload wl.0 mixed >/dev/null || err "workload start"
d workload wl.0 mixed >/dev/null 2>&1 && err "a second workload on wl.0 accepted"
d workload wl.0 trace:relative.csv >/dev/null 2>&1 && err "a relative trace path accepted"
d workload wl.0 stop >/dev/null || err "workload stop"
d delete wl.0 >/dev/null || err "delete wl.0"

# Restart: images come back, an uncommitted incoming file is removed, a
# disk with a leftover surrogate (the service died mid-WAIO) is not served.
stop
cp "$S/disks/vm2.0.img" "$S/disks/w.0.img"
touch "$S/disks/.w.0.surrogate" "$S/disks/.gone.0.incoming"
start
d list >"$T/list"
grep -q "^vm2.0 16777216 idle" "$T/list" || { err "vm2.0 not back after restart"; cat "$T/list"; }
grep -q "^w.0 " "$T/list" && err "w.0 served despite its leftover surrogate"
grep -q "surrogate left" "$T/svc.err" || err "no word about w.0's surrogate"
[ -e "$S/disks/.gone.0.incoming" ] && err "uncommitted incoming file kept across restart"
qemu-io -f raw "nbd+unix:///vm2.0?socket=$S/nbd.sock" -c "read -P 0x77 0 4k" >/dev/null ||
	err "vm2.0 lost a write across restart"
stop

[ $fail = 0 ] && echo "disk service: all checks passed"
exit $fail
