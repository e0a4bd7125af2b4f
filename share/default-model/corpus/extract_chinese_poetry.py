#!/usr/bin/env python3
"""Extract plain text from the npm package chinese-poetry@2.0.1 (MIT).

usage: extract_chinese_poetry.py PACKAGE_DIR OUT_DIR
  PACKAGE_DIR = the 'package/' dir from `tar xzf chinese-poetry-2.0.1.tgz`
Writes one UTF-8 .txt per collection into OUT_DIR. Each work = optional
title line, then its lines/paragraphs, then a blank line. Deterministic
(files and JSON items processed in sorted/array order).
Skipped: dist/strains (tone patterns), dist/rank (search-hit counts),
quantangshi/error (duplicates flagged bad), quantangshi/表面结构字.json (glyph table).
"""
import json, os, re, sys

TEXT_LIST_KEYS = ("paragraphs", "para", "content")
PROSE_KEYS = ("prologue", "abstract", "desc", "description")


def lines_of(v):
    if isinstance(v, str):
        return [v] if v.strip() and v.strip() != "--" else []
    if isinstance(v, list) and all(isinstance(x, str) for x in v):
        return [x for x in v if x.strip() and x.strip() != "--"]
    return None


def walk(node, out):
    if isinstance(node, list):
        for x in node:
            walk(x, out)
        return
    if not isinstance(node, dict):
        return
    head = []
    for k in ("title", "chapter", "rhythmic", "section"):
        v = node.get(k)
        if isinstance(v, str) and v.strip():
            head.append(v.strip())
            break
    body = []
    for k in PROSE_KEYS + TEXT_LIST_KEYS:
        if k in node:
            ls = lines_of(node[k])
            if ls is not None:
                body.extend(s.strip() for s in ls)
    if body:
        if head:
            out.append(head[0])
        out.extend(body)
        out.append("")
    # recurse into nested structures (e.g. content: [ {chapter, paragraphs} ])
    for k, v in node.items():
        if isinstance(v, (list, dict)) and lines_of(v) is None:
            walk(v, out)


def main(pkg, outdir):
    dist = os.path.join(pkg, "dist")
    os.makedirs(outdir, exist_ok=True)
    skip_dirs = {"strains", "rank"}
    for coll in sorted(os.listdir(dist)):
        if coll in skip_dirs:
            continue
        files = []
        for root, dirs, fs in os.walk(os.path.join(dist, coll)):
            dirs[:] = sorted(d for d in dirs if d != "error")
            for f in sorted(fs):
                if f.endswith(".json") and f != "表面结构字.json":
                    files.append(os.path.join(root, f))
        out = []
        for f in sorted(files):
            with open(f, encoding="utf-8") as fh:
                walk(json.load(fh), out)
        txt = "\n".join(out)
        txt = re.sub(r"\n{3,}", "\n\n", txt).strip() + "\n"
        with open(os.path.join(outdir, coll + ".txt"), "w", encoding="utf-8") as fh:
            fh.write(txt)
        print(f"{coll}\t{len(files)} files\t{len(txt.encode())} bytes")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
