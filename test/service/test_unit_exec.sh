#!/usr/bin/env bash
# The units' command lines work with this binary: each unit's ExecStart
# (its Environment= defaults expanded as systemd does, $VAR split into
# words) reads the shipped secmig.conf; it is run with the state directory,
# /etc/secmig and the listen address moved into a temp dir, under a
# NOTIFY_SOCKET this test owns; it must reach READY=1. This catches a unit
# left behind by a change of the CLI's options or a shipped skeleton that
# does not load. The units run in systemd's order (sim host, disk service,
# receiver), the sim host left running: recv needs its backend to start.
# The shipped policy says 'mode tpm': its TPM is an swtpm
# this test starts (the skeleton's tcti line pointed at it).
set -u
command -v swtpm >/dev/null || { echo "FAIL: swtpm missing (scripts/setup.sh)"; exit 1; }
T=$(mktemp -d /tmp/smg-unitexec.XXXXXX)
SWPID=
trap '[ -n "$SWPID" ] && kill "$SWPID" 2>/dev/null; rm -rf "$T"' EXIT
mkdir -p "$T/state" "$T/etc" "$T/tpm"
cp "$SMG_SRC"/dist/etc/* "$T/etc/"
for _ in $(seq 20); do
	port=$((20000 + RANDOM % 40000))
	if swtpm socket --tpm2 --server type=tcp,port=$port,bindaddr=127.0.0.1 \
		--ctrl type=tcp,port=$((port + 1)),bindaddr=127.0.0.1 --tpmstate dir="$T/tpm" \
		--flags startup-clear --pid file="$T/tpm/pid" -d 2>/dev/null; then
		SWPID=$(cat "$T/tpm/pid")
		break
	fi
done
[ -n "$SWPID" ] || { echo "FAIL: cannot start swtpm"; exit 1; }
grep -q '^tcti device:/dev/tpmrm0$' "$T/etc/policy" || { echo "FAIL: the policy skeleton's tcti line changed"; exit 1; }
sed -i -e "s|^tcti .*|tcti swtpm:host=127.0.0.1,port=$port|" -e "s|/var/lib/secmig|$T/state|g" \
	-e "s|/etc/secmig|$T/etc|g" -e "s|^listen 0.0.0.0:4849$|listen 127.0.0.1:0|" "$T"/etc/*
grep -q "^listen 127.0.0.1:0$" "$T/etc/secmig.conf" || { echo "FAIL: the shipped secmig.conf has no 'listen 0.0.0.0:4849' in [recv]"; exit 1; }
"$SECMIG" keygen "$T/state/host.key" >/dev/null || exit 1
"$SECMIG" keygen "$T/peer.key" >/dev/null || exit 1
echo "src $(cat "$T/peer.key.pub")" >>"$T/etc/peers"

exec python3 - "$SECMIG" "$T" "$SMG_SRC" <<'PY'
import os, re, select, socket, subprocess, sys

secmig, T, src = sys.argv[1:4]
fail = 0


def command(unit):
    env, argv = {}, None
    for line in open(unit):
        line = line.strip()
        if line.startswith("Environment="):
            k, v = line[len("Environment="):].split("=", 1)
            env[k] = v
        elif line.startswith("ExecStart="):
            argv = line[len("ExecStart="):].split()
    out = []
    for w in argv:
        m = re.fullmatch(r"\$(\w+)", w)
        out += env.get(m.group(1), "").split() if m else [w]
    fix = {"@SMG_BINDIR@/secmig": secmig, "/var/lib/secmig": T + "/state",
           "@SMG_SYSCONFDIR@/secmig": T + "/etc", "/etc/secmig": T + "/etc"}
    pat = re.compile("|".join(map(re.escape, fix)))
    return [pat.sub(lambda m: fix[m.group(0)], w) for w in out]


keep = []  # the sim host runs on: recv refuses to start without its backend


def ready(name, argv):
    path = os.path.join(T, name + ".notify")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    p = subprocess.Popen(argv, env=dict(os.environ, NOTIFY_SOCKET=path),
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    msg = None
    for _ in range(120):  # hang guard only
        r, _, _ = select.select([s], [], [], 1.0)
        if r:
            msg = s.recv(4096).decode()
            break
        if p.poll() is not None:
            break
    err = ""
    if name == "secmig-sim-host" and p.poll() is None:
        keep.append(p)
    else:
        p.kill()
        _, err = p.communicate()
    s.close()
    return msg, err


# systemd's order: the sim host and the disk service before the receiver
order = {"secmig-sim-host.service.in": 0, "secmig-disk.service.in": 1}
units = sorted(os.listdir(os.path.join(src, "dist", "systemd")),
               key=lambda u: (order.get(u, 2), u))
for unit in units:
    argv = command(os.path.join(src, "dist", "systemd", unit))
    name = unit.split(".")[0]
    if argv[2] not in ("recv", "sim") and subprocess.run(
            [secmig, "help", argv[2]], capture_output=True).returncode != 0:
        print(f"{name}: 'secmig {argv[2]}' is not in this binary yet; not run")
        continue
    msg, err = ready(name, argv)
    shown = " ".join(argv).replace(T, "$T")
    if msg is not None and "READY=1" in msg.split("\n"):
        print(f"{name}: READY=1 from: {shown}")
    else:
        print(f"FAIL: {name}: no READY=1 from: {shown}\n{err.strip()[-600:]}")
        fail = 1
for p in keep:
    p.kill()
    p.communicate()
sys.exit(fail)
PY
