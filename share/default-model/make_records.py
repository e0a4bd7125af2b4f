#!/usr/bin/python3
"""Cuts the pretraining corpus (fetch_corpus.sh) into JSONL records of plain
text for `cria train --format text`: paragraphs joined up to about CHARS
characters, English and Chinese chunks interleaved in a fixed order, so the
same corpus always gives the same file.

  make_records.py CORPUS_DIR OUT.jsonl [CHARS]
"""
import json
import os
import sys


def chunks(path, limit):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    paras = [" ".join(p.split()) if not any("\u4e00" <= c <= "\u9fff" for c in p[:50]) else "".join(p.split())
             for p in text.split("\n\n")]
    cur = ""
    for p in paras:
        if not p:
            continue
        if cur and len(cur) + len(p) + 1 > limit:
            yield cur
            cur = ""
        cur = (cur + "\n" + p) if cur else p[:limit * 4]
    if cur:
        yield cur


def main():
    corpus, out = sys.argv[1], sys.argv[2]
    limit = int(sys.argv[3]) if len(sys.argv) > 3 else 800
    langs = []
    for lang in ("en", "zh"):
        d = os.path.join(corpus, lang)
        items = []
        for name in sorted(os.listdir(d)):
            items.extend(chunks(os.path.join(d, name), limit))
        langs.append(items)
    en, zh = langs
    with open(out + ".tmp", "w", encoding="utf-8") as f:
        i = j = 0
        # Interleave in proportion to the sizes, so every stretch of the file mixes both.
        while i < len(en) or j < len(zh):
            if j >= len(zh) or (i < len(en) and i * len(zh) <= j * len(en)):
                f.write(json.dumps({"output": en[i]}, ensure_ascii=False) + "\n")
                i += 1
            else:
                f.write(json.dumps({"output": zh[j]}, ensure_ascii=False) + "\n")
                j += 1
    os.replace(out + ".tmp", out)
    print("%d English and %d Chinese records" % (len(en), len(zh)))


if __name__ == "__main__":
    main()
