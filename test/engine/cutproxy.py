#!/usr/bin/env python3
"""A loopback TCP forwarder that cuts every connection when told to: the
link cut of the engine's fault tests. Usage: cutproxy.py TARGET_PORT CUTFILE.
Prints its own port on the first line; once CUTFILE exists, it shuts down
every forwarded connection (both directions) and accepts no more."""
import os, socket, sys, threading, time

target = int(sys.argv[1])
cutfile = sys.argv[2]
lsock = socket.socket()
lsock.bind(("127.0.0.1", 0))
lsock.listen(64)
print(lsock.getsockname()[1], flush=True)
conns = []
lock = threading.Lock()

def pump(a, b):
    try:
        while True:
            d = a.recv(65536)
            if not d:
                break
            b.sendall(d)
    except OSError:
        pass
    for s in (a, b):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

def watch():
    while not os.path.exists(cutfile):
        time.sleep(0.02)
    with lock:
        for s in conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
    lsock.close()

threading.Thread(target=watch, daemon=True).start()
while True:
    try:
        c, _ = lsock.accept()
    except OSError:
        break
    u = socket.create_connection(("127.0.0.1", target))
    with lock:
        conns.extend([c, u])
    threading.Thread(target=pump, args=(c, u), daemon=True).start()
    threading.Thread(target=pump, args=(u, c), daemon=True).start()
time.sleep(5)
