#!/usr/bin/env python3
"""A strict reader of the Prometheus text exposition format (0.0.4), for the
metrics test: Debian's promtool comes only with the whole prometheus package
(96 MB installed), so this checks what promtool's `check metrics` parser
would reject.

  prom_check.py FILE        exit 0 and print "name{labels} value" lines
                            (sorted labels) if FILE is well-formed, else
                            exit 1 with the first error and its line.

Rules: '# HELP name text' and '# TYPE name type' at most once per family,
TYPE before the family's samples; a family's samples contiguous; metric and
label names by the grammar; label values quoted with only \\\\, \\" and \\n
escapes; no label twice in a sample, no series twice; values are floats
(+Inf, -Inf, NaN allowed), an optional integer timestamp; a histogram's
buckets carry le, ascend, are cumulative, end at +Inf equal to _count, and
come with _sum; a counter is never negative; the text ends with a newline.
"""
import math
import re
import sys

NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}


class Bad(Exception):
    pass


def parse_value(s):
    if s in ("+Inf", "Inf"):
        return math.inf
    if s == "-Inf":
        return -math.inf
    if s == "NaN":
        return math.nan
    if not re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?", s):
        raise Bad("bad value %r" % s)
    return float(s)


def parse_labels(s, i):
    """s[i] == '{'; returns (dict, index after '}')."""
    labels = {}
    i += 1
    while True:
        if s[i:i + 1] == "}":
            return labels, i + 1
        m = LABEL.match(s, i)
        if not m:
            raise Bad("bad label name at column %d" % i)
        name = m.group(0)
        i = m.end()
        if s[i:i + 2] != '="':
            raise Bad("label %s: expected =\"" % name)
        i += 2
        val = []
        while True:
            if i >= len(s):
                raise Bad("unterminated label value")
            c = s[i]
            if c == "\\":
                nxt = s[i + 1:i + 2]
                if nxt not in ("\\", '"', "n"):
                    raise Bad("bad escape \\%s" % nxt)
                val.append("\n" if nxt == "n" else nxt)
                i += 2
            elif c == '"':
                i += 1
                break
            elif c == "\n":
                raise Bad("newline in label value")
            else:
                val.append(c)
                i += 1
        if name in labels:
            raise Bad("label %s twice" % name)
        labels[name] = "".join(val)
        if s[i:i + 1] == ",":
            i += 1
        elif s[i:i + 1] != "}":
            raise Bad("expected , or } after label %s" % name)


def family_of(name, types):
    for suffix in ("_bucket", "_sum", "_count"):
        base = name[: -len(suffix)] if name.endswith(suffix) else None
        if base and types.get(base) in ("histogram", "summary"):
            return base
    return name


def check(text):
    if not text.endswith("\n"):
        raise Bad("does not end with a newline")
    types, helps, seen_series, done = {}, set(), set(), set()
    current = None
    samples = []
    for no, line in enumerate(text[:-1].split("\n"), 1):
        try:
            if line.startswith("#"):
                parts = line.split(" ", 3)
                if len(parts) >= 3 and parts[1] in ("HELP", "TYPE"):
                    name = parts[2]
                    if not NAME.fullmatch(name):
                        raise Bad("bad metric name %r" % name)
                    if parts[1] == "HELP":
                        if name in helps:
                            raise Bad("HELP %s twice" % name)
                        helps.add(name)
                    else:
                        if len(parts) != 4 or parts[3] not in TYPES:
                            raise Bad("bad TYPE line")
                        if name in types:
                            raise Bad("TYPE %s twice" % name)
                        if name in done or name == current:
                            raise Bad("TYPE %s after its samples" % name)
                        types[name] = parts[3]
                continue
            if line.strip() == "":
                raise Bad("empty line")
            m = NAME.match(line)
            if not m:
                raise Bad("bad metric name")
            name, i = m.group(0), m.end()
            labels = {}
            if line[i:i + 1] == "{":
                labels, i = parse_labels(line, i)
            rest = line[i:]
            if not rest.startswith(" "):
                raise Bad("expected a space before the value")
            fields = rest[1:].split(" ")
            if len(fields) not in (1, 2) or "" in fields:
                raise Bad("expected VALUE [TIMESTAMP]")
            value = parse_value(fields[0])
            if len(fields) == 2 and not re.fullmatch(r"-?\d+", fields[1]):
                raise Bad("bad timestamp")
            fam = family_of(name, types)
            if fam != current:
                if fam in done:
                    raise Bad("samples of %s not together" % fam)
                if current is not None:
                    done.add(current)
                current = fam
            key = (name, tuple(sorted(labels.items())))
            if key in seen_series:
                raise Bad("series twice")
            seen_series.add(key)
            t = types.get(fam, "untyped")
            if t == "counter" and not value >= 0:
                raise Bad("negative counter")
            if t == "histogram" and name == fam:
                raise Bad("histogram sample without _bucket/_sum/_count")
            if name.endswith("_bucket") and t == "histogram" and "le" not in labels:
                raise Bad("bucket without le")
            samples.append((fam, t, name, labels, value))
        except Bad as e:
            raise Bad("line %d: %s: %s" % (no, e, line))
    check_histograms(samples)
    return samples


def check_histograms(samples):
    groups = {}
    for fam, t, name, labels, value in samples:
        if t != "histogram":
            continue
        rest = tuple(sorted((k, v) for k, v in labels.items() if k != "le"))
        g = groups.setdefault((fam, rest), {"buckets": [], "sum": None, "count": None})
        if name.endswith("_bucket"):
            g["buckets"].append((parse_value(labels["le"]), value))
        elif name.endswith("_sum"):
            g["sum"] = value
        else:
            g["count"] = value
    for (fam, rest), g in groups.items():
        b = g["buckets"]
        where = "%s%s" % (fam, dict(rest))
        if not b or b[-1][0] != math.inf:
            raise Bad("%s: no +Inf bucket last" % where)
        for (l1, c1), (l2, c2) in zip(b, b[1:]):
            if not l1 < l2:
                raise Bad("%s: le not ascending" % where)
            if not c1 <= c2:
                raise Bad("%s: buckets not cumulative" % where)
        if g["count"] is None or g["sum"] is None:
            raise Bad("%s: no _count or _sum" % where)
        if g["count"] != b[-1][1]:
            raise Bad("%s: _count != +Inf bucket" % where)


def main():
    text = open(sys.argv[1], encoding="utf-8").read()
    try:
        samples = check(text)
    except Bad as e:
        print("prom_check: %s" % e, file=sys.stderr)
        return 1
    for _, _, name, labels, value in samples:
        lab = ",".join('%s="%s"' % kv for kv in sorted(labels.items()))
        whole = math.isfinite(value) and value == int(value)
        print("%s{%s} %s" % (name, lab, int(value) if whole else repr(value)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
