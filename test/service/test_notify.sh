#!/usr/bin/env bash
# Readiness for systemd's Type=notify: `secmig recv`, `secmig sim host` and
# `secmig disk serve` send READY=1 on $NOTIFY_SOCKET (a unix datagram socket
# this test owns) only once their socket accepts connections, then WATCHDOG=1
# heartbeats when WATCHDOG_USEC is set; a receiver that cannot listen,
# whose host definitions do not load, or whose backend does not answer (no
# sim host: exit 12) never says READY.
set -u
T=$(mktemp -d /tmp/smg-notify.XXXXXX)
trap 'rm -rf "$T"' EXIT
mkdir -p "$T/a" "$T/b"
"$SECMIG" keygen "$T/b/host.key" >/dev/null || exit 1
"$SECMIG" keygen "$T/a/host.key" >/dev/null || exit 1
echo "src $(cat "$T/a/host.key.pub")" >"$T/b/peers"
chmod 600 "$T/b/peers"
printf 'storage %s/b/disks\nvm *\n' "$T" >"$T/b/defs"
printf 'storage %s/b/disks\nlimit vm bogus=1\n' "$T" >"$T/b/bad.defs"
chmod 600 "$T/b/defs" "$T/b/bad.defs"

exec python3 - "$SECMIG" "$T" <<'PY'
import os, re, select, signal, socket, subprocess, sys

secmig, T = sys.argv[1], sys.argv[2]
fail = 0


def bad(msg):
    global fail
    print("FAIL:", msg)
    fail = 1


def notify_socket(name):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(os.path.join(T, name))
    return s


def next_msg(sock, proc):
    """The next datagram, or None once proc has exited without sending one
    (or after a hang guard of 120 s: never a figure, only against a hang)."""
    for _ in range(120):
        r, _, _ = select.select([sock], [], [], 1.0)
        if r:
            return sock.recv(4096).decode()
        if proc.poll() is not None:
            r, _, _ = select.select([sock], [], [], 0)
            return sock.recv(4096).decode() if r else None
    return None


def start(name, args, wd_usec=None):
    sock = notify_socket(name + ".sock")
    env = dict(os.environ, NOTIFY_SOCKET=os.path.join(T, name + ".sock"))
    env.pop("WATCHDOG_USEC", None)
    env.pop("WATCHDOG_PID", None)
    if wd_usec:
        env["WATCHDOG_USEC"] = str(wd_usec)
    p = subprocess.Popen([secmig, "--quiet"] + args, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return sock, p


def stop(p):
    p.kill()
    p.wait()


def heartbeats(sock, p, what):
    n = 0
    while n < 2:
        m = next_msg(sock, p)
        if m is None:
            bad(f"{what}: exited before two WATCHDOG=1 heartbeats")
            return
        if "WATCHDOG=1" in m.split("\n"):
            n += 1


# --- recv: READY=1 only when the TCP port accepts --------------------------
RECV = ["recv", "--state-dir", T + "/b", "--name", "dst",
        "--insecure-software-mode", "--defs", T + "/b/defs"]
# --- recv without its backend (no sim host yet): exit 12, no READY --------
sock, p = start("recvnobe", RECV + ["--listen", "127.0.0.1:0"])
m = next_msg(sock, p)
if m is not None:
    bad(f"recv without its backend sent {m!r}")
elif p.returncode != 12 or "backend 'sim' does not answer" not in p.stderr.read():
    bad(f"recv without its backend: exit {p.returncode}, want 12 with the reason")
else:
    print("recv without its backend: exit 12, no notification")
sock.close()
simb = subprocess.Popen([secmig, "--quiet", "sim", "host", "--state-dir", T + "/b"])
for _ in range(200):  # hang guard only
    if os.path.exists(T + "/b/sim.sock"):
        break
    select.select([], [], [], 0.05)

sock, p = start("recv", RECV + ["--listen", "127.0.0.1:0"], wd_usec=200000)
m = next_msg(sock, p)
if m is None or "READY=1" not in m.split("\n"):
    bad(f"recv: first notification {m!r}, not READY=1 ({p.stderr.read() if p.poll() is not None else ''})")
else:
    line = p.stdout.readline()  # printed and flushed before READY
    port = int(re.search(r" port (\d+)", line).group(1))
    c = socket.socket()
    try:
        c.connect(("127.0.0.1", port))
        print(f"recv: READY=1 ({m.strip()!r}), port {port} accepts")
    except OSError as e:
        bad(f"recv: READY=1 but port {port} refuses: {e}")
    c.close()
    heartbeats(sock, p, "recv")
    # ExecReload: SIGHUP -> RELOADING=1, then READY=1 once reloaded
    p.send_signal(signal.SIGHUP)
    seen = []
    while "READY=1" not in seen:
        m = next_msg(sock, p)
        if m is None:
            break
        seen += [x for x in m.split("\n") if x != "WATCHDOG=1"]
    if "RELOADING=1" in seen and "READY=1" in seen and \
            seen.index("RELOADING=1") < seen.index("READY=1"):
        print(f"recv: SIGHUP -> {[x for x in seen if x.startswith(('RELOADING', 'READY', 'STATUS'))]}")
    else:
        bad(f"recv: SIGHUP gave {seen!r}, want RELOADING=1 then READY=1")
    if p.poll() is not None:
        bad(f"recv exited on SIGHUP: {p.returncode}")
stop(p)
sock.close()

# --- recv that cannot listen: no READY ------------------------------------
busy = socket.socket()
busy.bind(("127.0.0.1", 0))
busy.listen(1)
bport = busy.getsockname()[1]
sock, p = start("recvbusy", RECV + ["--listen", f"127.0.0.1:{bport}"])
m = next_msg(sock, p)
if m is not None:
    bad(f"recv on a busy port sent {m!r}")
elif p.returncode == 0:
    bad("recv on a busy port exited 0")
else:
    print(f"recv on a busy port: exit {p.returncode}, no notification")
busy.close()
sock.close()

# --- recv whose host definitions do not load: no READY, exit 11 ------------
badargs = [a if a != T + "/b/defs" else T + "/b/bad.defs" for a in RECV]
sock, p = start("recvbad", badargs + ["--listen", "127.0.0.1:0"])
m = next_msg(sock, p)
if m is not None:
    bad(f"recv with bad host definitions sent {m!r}")
elif p.returncode != 11:
    bad(f"recv with bad host definitions: exit {p.returncode}, want 11")
else:
    print("recv with bad host definitions: exit 11, no notification")
sock.close()

# --- sim host: READY=1 only when sim.sock accepts -------------------------
sock, p = start("sim", ["sim", "host", "--state-dir", T + "/a"], wd_usec=200000)
m = next_msg(sock, p)
if m is None or "READY=1" not in m.split("\n"):
    bad(f"sim host: first notification {m!r}, not READY=1")
else:
    c = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        c.connect(os.path.join(T, "a", "sim.sock"))
        print(f"sim host: READY=1 ({m.strip()!r}), sim.sock accepts")
    except OSError as e:
        bad(f"sim host: READY=1 but sim.sock refuses: {e}")
    c.close()
    heartbeats(sock, p, "sim host")
stop(p)
sock.close()

# --- disk service: READY=1 only when disk.sock accepts ----------------------
sock, p = start("disk", ["disk", "--state-dir", T + "/b", "serve", "--defs",
                         T + "/b/defs"], wd_usec=200000)
m = next_msg(sock, p)
if m is None or "READY=1" not in m.split("\n"):
    bad(f"disk service: first notification {m!r}, not READY=1 "
        f"({p.stderr.read() if p.poll() is not None else ''})")
else:
    c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        c.connect(os.path.join(T, "b", "disk.sock"))
        print(f"disk service: READY=1 ({m.strip()!r}), disk.sock accepts")
    except OSError as e:
        bad(f"disk service: READY=1 but disk.sock refuses: {e}")
    c.close()
    heartbeats(sock, p, "disk service")
stop(p)
sock.close()
stop(simb)
sys.exit(fail)
PY
