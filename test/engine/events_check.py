#!/usr/bin/env python3
"""Validate JSON event lines against docs/events.md.

The document is the schema: every event is a `### \`name\`` heading
(optionally followed by "(roles a, b)") and a table whose rows are
| field | type | required | meaning |. Types: string, integer, number,
boolean, number|null, array, object. Every line of every file given must be
a JSON object whose "event" (and "role", when the heading names roles)
selects exactly one schema, with every required field present, no field the
schema does not list, and each value of its type.

usage: events_check.py docs/events.md FILE... (exit 0 valid, 1 not)
"""
import json
import re
import sys

TYPES = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "array": lambda v: isinstance(v, list),
    "object": lambda v: isinstance(v, dict),
}


def type_ok(spec, v):
    return any(t == "null" and v is None or t in TYPES and TYPES[t](v)
               for t in spec.split("|"))


def load(path):
    schemas, cur = [], None
    for line in open(path, encoding="utf-8"):
        m = re.match(r"^### `([a-z_]+)`(?: \(roles? ([a-z_, ]+)\))?\s*$", line)
        if m:
            roles = [r.strip() for r in m.group(2).split(",")] if m.group(2) else None
            cur = {"event": m.group(1), "roles": roles, "fields": {}}
            schemas.append(cur)
            continue
        if line.startswith("## "):
            cur = None
            continue
        m = re.match(r"^\| `([a-zA-Z_]+)` \| ([a-z|]+) \| (yes|no) \|", line)
        if cur is not None and m:
            cur["fields"][m.group(1)] = (m.group(2), m.group(3) == "yes")
    for s in schemas:
        for t in (x for f in s["fields"].values() for x in f[0].split("|")):
            if t != "null" and t not in TYPES:
                sys.exit(f"events.md: {s['event']}: unknown type {t}")
    return schemas


def check(schemas, obj, name=None):
    """name: check against that schema (objects nested in an event)."""
    if name is None and (not isinstance(obj, dict) or
                         not isinstance(obj.get("event"), str)):
        return "not an object with an event"
    if not isinstance(obj, dict):
        return f"{name}: not an object"
    cands = [s for s in schemas if s["event"] == (name or obj["event"]) and
             (name or s["roles"] is None or obj.get("role") in s["roles"])]
    if len(cands) != 1:
        return f"no single schema for event {obj.get('event')} role {obj.get('role')}"
    s = cands[0]
    label = name or obj["event"]
    for k, (t, req) in s["fields"].items():
        if req and k not in obj:
            return f"{label}: missing {k}"
        if k in obj and not type_ok(t, obj[k]):
            return f"{label}: {k}={obj[k]!r} is not {t}"
    extra = set(obj) - set(s["fields"])
    if extra:
        return f"{label}: undocumented {sorted(extra)}"
    # status: each element against status_migration
    for el in obj.get("migrations", []) if label == "status" else []:
        why = check(schemas, el, "status_migration")
        if why:
            return why
    return None


def main():
    schemas = load(sys.argv[1])
    bad = seen = 0
    kinds = set()
    for path in sys.argv[2:]:
        for n, line in enumerate(open(path, encoding="utf-8"), 1):
            if not line.strip():
                continue
            seen += 1
            try:
                obj = json.loads(line)
            except ValueError as e:
                print(f"{path}:{n}: not JSON ({e}): {line.strip()[:120]}")
                bad += 1
                continue
            why = check(schemas, obj)
            if why:
                print(f"{path}:{n}: {why}")
                bad += 1
            else:
                kinds.add(f"{obj['event']}/{obj.get('role', '-')}")
    print(f"events_check: {seen} lines, {bad} invalid; kinds: {' '.join(sorted(kinds))}")
    sys.exit(1 if bad or seen == 0 else 0)


main()
