#!/usr/bin/env python3
"""Helpers for bench/qemu.sh.

  qemu_tool.py ticks PORT OUT
      receive the guest's UDP ticks (one datagram "SEQ" every 10 ms) and
      append "REALTIME_NS SEQ" per datagram to OUT: the host clock, because
      the guest's own clock stops while the VM is paused.
  qemu_tool.py gap OUT T0_NS T1_NS
      the longest gap between ticks received in [T0, T1] (ms) and how many
      sequence numbers never arrived there, as JSON.
  qemu_tool.py native SRC_QMP DST_QMP DST_ADDR PORT [TLS_DIR]
      QEMU's own migration, src -> dst over TCP (TLS with tls-creds-x509
      when TLS_DIR is given); prints query-migrate's figures as JSON.
  qemu_tool.py timeline SEND_TS RECV_TS [T0_NS]
      both sides' logs, stamped on arrival (test/qemu/qemubed.sh qb_stamp),
      merged on one clock, as a phase breakdown
      (ms from the start of `secmig send`): setup, each round, the pause.
"""
import json
import os
import socket
import sys
import time


class Qmp:
    """A small QMP client: one command at a time, events skipped."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.buf = b""
        self.next_id = 1
        self.read_msg()  # greeting
        self.call("qmp_capabilities")

    def read_msg(self):
        while b"\n" not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                raise EOFError("QMP closed")
            self.buf += data
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def call(self, cmd, **args):
        req = {"execute": cmd, "id": self.next_id}
        self.next_id += 1
        if args:
            req["arguments"] = args
        self.sock.sendall(json.dumps(req).encode() + b"\n")
        while True:
            msg = self.read_msg()
            if msg.get("id") == req["id"]:
                if "error" in msg:
                    raise RuntimeError("%s: %s" % (cmd, msg["error"]))
                return msg.get("return")


def ticks(port, out):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", int(port)))
    with open(out, "a", buffering=1) as f:
        while True:
            data = s.recv(64)
            try:
                f.write("%d %d\n" % (time.time_ns(), int(data)))
            except ValueError:
                pass


def gap(out, t0, t1):
    t0, t1 = int(t0), int(t1)
    rows = []
    with open(out) as f:
        for line in f:
            parts = line.split()
            if len(parts) == 2:
                rows.append((int(parts[0]), int(parts[1])))
    rows = [r for r in rows if t0 <= r[0] <= t1]
    if len(rows) < 2:
        print(json.dumps({"gap_ms": -1, "lost": -1}))
        return
    biggest = max(b[0] - a[0] for a, b in zip(rows, rows[1:]))
    seqs = sorted(r[1] for r in rows)
    lost = (seqs[-1] - seqs[0] + 1) - len(set(seqs))
    print(json.dumps({"gap_ms": round(biggest / 1e6, 1), "lost": lost}))


def tls_creds(q, tls_dir, endpoint):
    q.call("object-add", **{"qom-type": "tls-creds-x509", "id": "tls0", "dir": tls_dir,
                            "endpoint": endpoint, "verify-peer": True})


def native(src_qmp, dst_qmp, addr, port, tls_dir=None):
    src, dst = Qmp(src_qmp), Qmp(dst_qmp)
    if tls_dir:
        tls_creds(dst, tls_dir, "server")
        dst.call("migrate-set-parameters", **{"tls-creds": "tls0"})
        tls_creds(src, tls_dir, "client")
        src.call("migrate-set-parameters", **{"tls-creds": "tls0", "tls-hostname": addr})
    dst.call("migrate-incoming", uri="tcp:%s:%s" % (addr, port))
    t0 = time.time_ns()
    src.call("migrate", uri="tcp:%s:%s" % (addr, port))
    while True:
        st = src.call("query-migrate")
        if st.get("status") in ("completed", "failed", "cancelled"):
            break
        time.sleep(0.005)
    t1 = time.time_ns()
    ram = st.get("ram", {})
    print(json.dumps({"status": st.get("status"), "total_ms": st.get("total-time"),
                      "downtime_ms": st.get("downtime"), "setup_ms": st.get("setup-time"),
                      "ram_transferred": ram.get("transferred"), "wall_ms": (t1 - t0) // 1000000,
                      "t0_ns": t0, "t1_ns": t1}))
    return 0 if st.get("status") == "completed" else 1


def read_ts(path):
    rows = []
    try:
        with open(path, "rb") as f:
            for line in f:
                ns, _, text = line.decode("utf-8", "replace").rstrip("\n").partition(" ")
                if ns.isdigit():
                    rows.append((int(ns), text))
    except OSError:
        pass
    return rows


def timeline(send_ts, recv_ts, t0=None):
    import qemu_timeline  # next to this file
    return qemu_timeline.report(read_ts(send_ts), read_ts(recv_ts), t0=t0)


def main(argv):
    if len(argv) == 4 and argv[1] == "ticks":
        return ticks(argv[2], argv[3])
    if len(argv) == 5 and argv[1] == "gap":
        return gap(argv[2], argv[3], argv[4])
    if len(argv) in (6, 7) and argv[1] == "native":
        return native(*argv[2:])
    if len(argv) in (4, 5) and argv[1] == "timeline":
        return timeline(*argv[2:])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
