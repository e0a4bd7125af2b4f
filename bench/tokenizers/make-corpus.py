#!/usr/bin/python3
"""make-corpus.py: a multi-MB text corpus for the tokenizer benchmark, one
document per line (newlines inside a document become spaces), from the JSON
datasets in ../shared/data (English and Chinese), cut at MAX_BYTES (default
4 MB: the JavaScript reference runs at well under 1 MB/s).

    make-corpus.py SHARED OUT [MAX_BYTES]"""
import json, os, random, sys

shared = sys.argv[1]
out = sys.argv[2]
max_bytes = int(sys.argv[3]) if len(sys.argv) > 3 else 4_000_000
texts = []

def walk(node):
    if isinstance(node, str):
        if len(node) > 40:
            texts.append(node.replace("\n", " "))
    elif isinstance(node, list):
        for x in node:
            walk(x)
    elif isinstance(node, dict):
        for x in node.values():
            walk(x)

for root, _, files in os.walk(os.path.join(shared, "data")):
    for f in sorted(files):
        p = os.path.join(root, f)
        try:
            if f.endswith(".jsonl"):
                for line in open(p, encoding="utf-8"):
                    walk(json.loads(line))
            elif f.endswith(".json"):
                walk(json.load(open(p, encoding="utf-8")))
        except (ValueError, UnicodeDecodeError):
            pass
# Interleave the sources so that a cut corpus still mixes the languages.
random.Random(0).shuffle(texts)
size = 0
with open(out, "w", encoding="utf-8") as f:
    for t in texts:
        size += len(t.encode("utf-8")) + 1
        if size > max_bytes:
            break
        f.write(t + "\n")
