"""bench/qemu.sh's timeline: the stamped output of `secmig send` and `secmig
recv` (qemu_tool.py stamp: "REALTIME_NS line" per line, both on the same
host clock) merged into one list of what happened when, in ms from the
start of `send`, then a per-phase summary:

  setup      send's start to the first round (attach, handshake, PLAN on
             the destination: definitions, RAM file, taps, swtpm, guard)
  round N    pages sent, dirty pages found, the scan's ms, the round's ms
  pause      stop to DONE: stop, final scan, final round, device state,
             manifest, the destination's load, verify, READY, COMMIT, cont
  after      DONE to the end of send (the source copy torn down)
"""
import json
import re

SCAN = re.compile(r"qemu: scan (\d+): (\d+) dirty pages, ([0-9.]+) ms")
SKIP = ("progress",)


def describe(text):
    """A line as one short string, or None to leave it out."""
    if text.startswith("{"):
        try:
            ev = json.loads(text)
        except ValueError:
            return None
        kind = ev.get("event")
        if kind in SKIP:
            return None
        if kind == "phase":
            return "phase %s%s" % (ev.get("phase"),
                                   ": " + ev["detail"] if ev.get("detail") else "")
        if kind == "round":
            return ("round %s %s: %s pages sent, %s dirty after, est %s ms, "
                    "bw %s MB/s" % (ev.get("round"), ev.get("phase"), ev.get("pages"),
                                    ev.get("dirty_pages"), ev.get("est_downtime_ms"),
                                    ev.get("bandwidth_MBps")))
        if kind == "result":
            keep = ("exit_code", "downtime_ms", "total_ms", "rounds", "pages_sent",
                    "zero_pages", "est_downtime_ms", "bandwidth_MBps")
            return "result " + ", ".join("%s %s" % (k, ev[k]) for k in keep if k in ev)
        return "%s %s" % (kind, ev.get("phase", ""))
    text = re.sub(r"^secmig: (?:info|debug|warn): ", "", text)
    return text[:160]


def merged(send, recv):
    rows = [(ns, "send", describe(t)) for ns, t in send]
    rows += [(ns, "recv", describe(t)) for ns, t in recv]
    return sorted((r for r in rows if r[2]), key=lambda r: r[0])


def first(rows, side, needle):
    for ns, s, text in rows:
        if s == side and needle in text:
            return ns
    return None


def summary(rows, t0):
    def ms(a, b):
        return "%8.1f" % ((b - a) / 1e6) if a is not None and b is not None else "       ?"

    out = []
    pre = first(rows, "send", "phase precopy")
    stop = first(rows, "send", "phase stopcopy")
    done = first(rows, "send", "phase done")
    sends = [r[0] for r in rows if r[1] == "send"]
    end = sends[-1] if sends else None
    out.append("setup   %s ms  (send start -> first round)" % ms(t0, pre))
    prev = pre
    scans = {}
    for ns, side, text in rows:
        m = SCAN.search(text) if side == "send" else None
        if m:
            scans[int(m.group(1))] = float(m.group(3))
    n = 0
    for ns, side, text in rows:
        if side != "send" or not text.startswith("round ") or " precopy:" not in text:
            continue
        n += 1
        out.append("round   %s ms  %s; scan %s ms" % (ms(prev, ns), text[6:],
                                                      scans.get(n, "?")))
        prev = ns
    out.append("pause   %s ms  (stop-and-copy phase -> DONE)" % ms(stop, done))
    out.append("after   %s ms  (DONE -> send's last line)" % ms(done, end))
    return out


def report(send, recv, t0=None):
    rows = merged(send, recv)
    if not rows:
        print("timeline: no stamped output")
        return 1
    base = int(t0) if t0 else min(r[0] for r in rows)
    print("timeline (ms from the start of send; both sides on one clock):")
    for ns, side, text in rows:
        print("%9.1f  %s  %s" % ((ns - base) / 1e6, side, text))
    print("phases:")
    for line in summary(rows, base):
        print("  " + line)
    return 0
