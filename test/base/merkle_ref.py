#!/usr/bin/env python3
"""Reference for the Merkle construction of base/merkle.c, written from its
specification (docs/engine.md, "Integrity") with Python's hashlib alone. It
printed the known answers that test_merkle_kat.c and test_records.c hold;
run it to re-derive them:

    leaf = SHA-256(0x00 || data)
    node = SHA-256(0x01 || left || right)   an odd last node moves up as is
    root = SHA-256(0x02 || be64 bytes || be32 leaf size || top)
    top of empty content = 32 zero bytes
"""
import hashlib
import struct


def h(*parts):
    return hashlib.sha256(b"".join(parts)).digest()


def leaf(data):
    return h(b"\x00", data)


def node(left, right):
    return h(b"\x01", left, right)


def root_of(top, nbytes, leaf_size):
    return h(b"\x02", struct.pack(">QI", nbytes, leaf_size), top)


def tree_root(content, leaf_size):
    level = [leaf(content[i:i + leaf_size]) for i in range(0, len(content), leaf_size)]
    while len(level) > 1:
        nxt = [node(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    top = level[0] if level else bytes(32)
    return root_of(top, len(content), leaf_size)


def pat(n, seed, base=0):
    """Byte i (absolute offset base + i) = ((base + i) * 31 + seed) % 251."""
    return bytes(((base + i) * 31 + seed) % 251 for i in range(n))


def main():
    out = []
    p1, p2 = leaf(b""), leaf(b"abc")
    p3 = node(p1, p2)
    out.append(("leaf('')", p1))
    out.append(("leaf('abc')", p2))
    out.append(("node(leaf(''), leaf('abc'))", p3))
    out.append(("root(top=that node, bytes=0x0102030405060708, leaf=0x0a0b0c0d)",
                root_of(p3, 0x0102030405060708, 0x0A0B0C0D)))
    out.append(("tree: 0 bytes, leaf 65536", tree_root(b"", 65536)))
    out.append(("tree: pat(100, 1), leaf 4096", tree_root(pat(100, 1), 4096)))
    out.append(("tree: pat(3*4096, 2), leaf 4096", tree_root(pat(3 * 4096, 2), 4096)))
    t4 = pat(5 * 4096 + 1808, 3)
    out.append(("tree: pat(5*4096+1808, 3), leaf 4096", tree_root(t4, 4096)))
    t7 = t4[:2 * 4096] + bytes(4096) + t4[3 * 4096:]
    out.append(("tree: same, leaf 2 zeroed", tree_root(t7, 4096)))
    out.append(("tree: 7*4096 zeros, leaf 4096", tree_root(bytes(7 * 4096), 4096)))
    out.append(("tree: 2*65536+512 zeros, leaf 65536",
                tree_root(bytes(2 * 65536 + 512), 65536)))
    # A disk image: data in [0, 64K), [128K, 132K), [192K, 196K); the rest
    # a hole; 196 KiB in 64 KiB chunks (the last one 4 KiB).
    img = bytearray(3 * 65536 + 4096)
    for a, b in ((0, 65536), (131072, 135168), (196608, 200704)):
        img[a:b] = pat(b - a, 5, a)
    out.append(("image: 3*65536+4096, chunk 65536", tree_root(bytes(img), 65536)))
    for name, d in out:
        print(f"{d.hex()}  {name}")


if __name__ == "__main__":
    main()
