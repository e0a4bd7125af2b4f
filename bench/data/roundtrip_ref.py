"""The peer of `cria data 'file ... ! jsonl'`: read JSON lines, write them back."""
import json
import sys

with open(sys.argv[1], encoding="utf-8") as f, open(sys.argv[2], "w", encoding="utf-8") as out:
    for line in f:
        if line.strip():
            out.write(json.dumps(json.loads(line), ensure_ascii=False, separators=(",", ":")) + "\n")
