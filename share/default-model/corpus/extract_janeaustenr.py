#!/usr/bin/env python3
"""Extract Jane Austen's six novels from Debian r-cran-janeaustenr (MIT) without R.

usage: extract_janeaustenr.py PATH/TO/janeaustenr/data/Rdata.rdb OUT_DIR
Rdata.rdb = concatenated records: u32be length + zlib stream of an R XDR
serialization (format v3) of a character vector (one element per text line).
Writes OUT_DIR/austen-<n>.txt, named after the book's first line.
Pure stdlib, deterministic.
"""
import os, re, struct, sys, zlib


def parse_strsxp(buf):
    assert buf[:2] == b"X\n", "not XDR serialization"
    p = 2
    ver, _, _ = struct.unpack_from(">iii", buf, p); p += 12
    if ver == 3:
        n = struct.unpack_from(">i", buf, p)[0]; p += 4 + n  # native encoding
    flags, length = struct.unpack_from(">ii", buf, p); p += 8
    assert flags & 0xFF == 16, "expected STRSXP"
    out = []
    for _ in range(length):
        cflags, clen = struct.unpack_from(">ii", buf, p); p += 8
        assert cflags & 0xFF == 9, "expected CHARSXP"
        if clen == -1:
            out.append("")
        else:
            out.append(buf[p:p + clen].decode("utf-8", "replace")); p += clen
    return out


def main(rdb, outdir):
    os.makedirs(outdir, exist_ok=True)
    b = open(rdb, "rb").read()
    p = 0
    while p < len(b):
        d = zlib.decompressobj()
        raw = d.decompress(b[p + 4:])
        p = len(b) - len(d.unused_data)
        lines = parse_strsxp(raw)
        title = next(l for l in lines if l.strip()).strip()
        name = re.sub(r"[^a-z]+", "-", title.lower()).strip("-")
        txt = "\n".join(l.rstrip() for l in lines).strip() + "\n"
        path = os.path.join(outdir, "austen-%s.txt" % name)
        open(path, "w", encoding="utf-8").write(txt)
        print(path, len(txt.encode()), "bytes")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
