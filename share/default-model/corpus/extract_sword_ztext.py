#!/usr/bin/env python3
"""Dump a SWORD zText module (e.g. Debian sword-text-web) to plain text.

usage: extract_sword_ztext.py MODULE_DATA_DIR OUT.txt
  MODULE_DATA_DIR e.g. usr/share/sword/modules/texts/ztext/engWEB2015eb
Format (little-endian): {ot,nt}.bzs = blocks of (u32 offset, u32 zsize, u32 size)
into {ot,nt}.bzz (zlib); {ot,nt}.bzv = per-verse (u32 block, u32 start, u16 size).
OSIS markup is stripped; notes (<note>..</note>) dropped; one verse per line,
a blank line between chapters/books (entries with empty text).
Pure stdlib, deterministic.
"""
import html, re, struct, sys, zlib, os


def dump(d, testament, out):
    bzs = open(os.path.join(d, testament + ".bzs"), "rb").read()
    bzz = open(os.path.join(d, testament + ".bzz"), "rb").read()
    bzv = open(os.path.join(d, testament + ".bzv"), "rb").read()
    blocks = []
    for i in range(0, len(bzs), 12):
        off, zs, us = struct.unpack_from("<III", bzs, i)
        blocks.append(zlib.decompress(bzz[off:off + zs]))
    prev_empty = True
    for i in range(0, len(bzv), 10):
        b, start, size = struct.unpack_from("<IIH", bzv, i)
        raw = blocks[b][start:start + size].decode("utf-8", "replace") if size else ""
        # a footnote often sits between two words with no space: keep a space there
        t = re.sub(r"(?s)<note\b.*?</note>", "\x00", raw)
        t = re.sub(r"<title\b[^>]*>", "\n", t)
        t = re.sub(r"</title>", "\n", t)
        t = re.sub(r"<[^>]+>", "", t)
        t = re.sub(r"(\w)\x00+(?=\w)", r"\1 ", t).replace("\x00", "")
        t = html.unescape(t)
        t = re.sub(r"[ \t]+", " ", t)
        lines = [l.strip() for l in t.split("\n") if l.strip() and not l.strip().isdigit()]
        if lines:
            out.extend(lines)
            prev_empty = False
        elif not prev_empty:
            out.append("")
            prev_empty = True


def main(d, outpath):
    out = []
    for t in ("ot", "nt"):
        if os.path.exists(os.path.join(d, t + ".bzs")):
            dump(d, t, out)
    txt = "\n".join(out).strip() + "\n"
    open(outpath, "w", encoding="utf-8").write(txt)
    print(outpath, len(txt.encode()), "bytes")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
