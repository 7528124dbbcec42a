#!/usr/bin/env python3
"""One TCP connection kept open through a migration (test/qemu).

usage: tcp_probe.py HOST PORT STOPFILE

Connects once, then every 50 ms sends "seq N" and expects the guest's echo.
Prints one JSON line per second and, once STOPFILE exists, a final one:
{"final": true, "open": bool, "sent": N, "echoed": N, "max_gap_ms": F}
where max_gap_ms is the longest time without an echo. The connection is
never re-opened: if it breaks, "open" is false.
"""
import json
import os
import socket
import sys
import time


def main():
    host, port, stop = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    s = None
    for _ in range(600):
        try:
            s = socket.create_connection((host, port), timeout=1)
            break
        except OSError:
            time.sleep(0.1)
    if s is None:
        print(json.dumps({"final": True, "open": False, "error": "connect"}), flush=True)
        return 1
    s.settimeout(0.05)
    sent = echoed = 0
    buf = b""
    is_open = True
    last_echo = time.monotonic()
    max_gap = 0.0
    last_report = time.monotonic()
    while not os.path.exists(stop):
        try:
            sent += 1
            s.sendall(b"seq %d\n" % sent)
        except OSError:
            is_open = False
            break
        end = time.monotonic() + 0.05
        while time.monotonic() < end:
            try:
                d = s.recv(4096)
                if not d:
                    is_open = False
                    break
                buf += d
            except socket.timeout:
                pass
            except OSError:
                is_open = False
                break
        if not is_open:
            break
        lines = buf.split(b"\n")
        buf = lines[-1]
        now = time.monotonic()
        got = sum(1 for line in lines[:-1] if line.startswith(b"seq "))
        if got:
            max_gap = max(max_gap, now - last_echo)
            last_echo = now
            echoed += got
        if now - last_report >= 1:
            last_report = now
            print(json.dumps({"sent": sent, "echoed": echoed}), flush=True)
    max_gap = max(max_gap, time.monotonic() - last_echo) if is_open else max_gap
    print(json.dumps({"final": True, "open": is_open, "sent": sent, "echoed": echoed,
                      "max_gap_ms": round(max_gap * 1000, 1)}), flush=True)
    return 0 if is_open else 1


if __name__ == "__main__":
    sys.exit(main())
