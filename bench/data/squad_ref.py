"""The peer of `cria data 'squad ... ! jsonl'`: SQuAD v2.0 -> records in Python."""
import json
import sys

REFUSAL = "The context does not contain the answer to this question."

with open(sys.argv[1], encoding="utf-8") as f:
    doc = json.load(f)
with open(sys.argv[2], "w", encoding="utf-8") as out:
    for article in doc["data"]:
        for para in article["paragraphs"]:
            for qa in para["qas"]:
                answers = [a["text"] for a in qa["answers"]]
                impossible = qa.get("is_impossible", False) or not answers
                rec = {"instruction": qa["question"], "input": para["context"],
                       "output": REFUSAL if impossible else answers[0], "source": "squad",
                       "id": qa["id"], "title": article.get("title"), "answers": answers,
                       "unanswerable": impossible}
                out.write(json.dumps(rec, ensure_ascii=False, separators=(",", ":")) + "\n")
