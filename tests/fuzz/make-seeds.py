#!/usr/bin/env python3
"""Writes the seed inputs of the csv, tokenizer, story and torchfile fuzz
targets into tests/fuzz/corpus/. Tokenizer seeds are the real tokenizers of
/work/shared/tokenizers (or $CRIA_SHARED/tokenizers) cut to their first few
hundred tokens, so each stays a few KiB; a few seeds are 256 KiB or more on
purpose, to reach the depth and length limits.

    python3 tests/fuzz/make-seeds.py [SHARED_DIR]
"""
import io, json, os, sys, tarfile, zipfile

top = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
corpus = os.path.join(top, "tests", "fuzz", "corpus")
shared = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("CRIA_SHARED", "/work/shared")
tok_dir = os.path.join(shared, "tokenizers")
BIG = 300 * 1024


def put(target, name, data):
    d = os.path.join(corpus, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ---- csv ------------------------------------------------------------------
csv = {
    "plain": "instruction,input,output\nSay hi,,hi\nAdd,1 2,3\n",
    "crlf": "instruction,output\r\nA,B\r\nC,D\r\n",
    "quoted": 'a,b\n"x, y","say ""hi"""\n"multi\nline",z\n',
    "quoted-crlf": 'a,b\r\n"one\r\ntwo",3\r\n',
    "bom": "\ufeffinstruction,output\nq,a\n",
    "blank-lines": "a,b\n\n1,2\n\n\n3,4\n",
    "cr-only": "instruction,output\rA,B\rC,D\r",
    "dup-header": "instruction,output,output\nq,a1,a2\n",
    "nul": "instruction,output\nq,a\0b\n",
    "unbalanced": 'a,b\n"open,1\n2,3\n',
    "after-quote": 'a,b\n"x"y,1\n',
    "short-row": "a,b,c\n1,2\n",
    "empty-field-row": 'a\n""\n\n',
    "bad-utf8": "a,b\n\xff\xfe,1\n".encode("latin-1"),
    "header-only": "instruction,output\n",
    "empty-header-name": "instruction,,output\n1,2,3\n",
    "long-line": "instruction,output\n" + "x" * BIG + ",y\n",
    "many-columns": ",".join("c%d" % i for i in range(40000)) + "\n" + "," * 39999 + "\n",
    "long-quoted": 'a\n"' + "line\n" * (BIG // 5) + '"\n',
}
for name, text in csv.items():
    put("csv", name, text)


# ---- tokenizer ------------------------------------------------------------
# The first byte picks the files (fuzz-tokenizer.c): 0 tokenizer.json,
# 1 vocab.txt, 2 encoder.json NUL vocab.bpe, 3 tokenizer.json NUL config.
def cut_tokenizer_json(path, keep=300):
    t = json.load(open(path, encoding="utf-8"))
    m = t["model"]
    vocab = m["vocab"]
    if isinstance(vocab, dict):
        items = sorted(vocab.items(), key=lambda kv: kv[1])[:keep]
        kept = dict(items)
        m["vocab"] = kept
        if "merges" in m:
            ok = []
            for mg in m["merges"]:
                a, b = mg.split(" ", 1) if isinstance(mg, str) else mg
                if a in kept and b in kept and a + b in kept:
                    ok.append(mg)
            m["merges"] = ok
        ids = set(kept.values())
    else:  # Unigram: a list
        m["vocab"] = vocab[:keep]
        ids = set(range(keep))
    t["added_tokens"] = [a for a in t.get("added_tokens", []) if a["id"] in ids][:20]
    pp = t.get("post_processor")
    if pp and pp.get("type") == "TemplateProcessing":
        for st in pp.get("special_tokens", {}).values():
            st["ids"] = [i for i in st["ids"] if i in ids] or [0]
    return json.dumps(t, ensure_ascii=False, indent=1)


def maybe(path):
    return os.path.exists(path)


for name in ["bert-base-uncased", "gpt2-hf", "llama2", "llama3", "qwen2.5", "qwen3"]:
    p = os.path.join(tok_dir, name, "tokenizer.json")
    if not maybe(p):
        continue
    text = cut_tokenizer_json(p).encode()
    put("tokenizer", name + ".json", b"\0" + text)
    cfg = os.path.join(tok_dir, name, "tokenizer_config.json")
    if maybe(cfg):
        c = json.load(open(cfg, encoding="utf-8"))
        c.pop("chat_template", None)
        c.pop("added_tokens_decoder", None)
        put("tokenizer", name + "-config.json", b"\3" + text + b"\0" + json.dumps(c).encode())

for name in ["bert-base-uncased", "bert-base-chinese"]:
    p = os.path.join(tok_dir, name, "vocab.txt")
    if maybe(p):
        lines = open(p, encoding="utf-8").read().split("\n")
        put("tokenizer", name + "-vocab.txt", b"\1" + "\n".join(lines[:120] + lines[1000:1300]).encode())

p = os.path.join(tok_dir, "gpt2")
if maybe(os.path.join(p, "encoder.json")):
    enc = json.load(open(os.path.join(p, "encoder.json"), encoding="utf-8"))
    kept = dict(sorted(enc.items(), key=lambda kv: kv[1])[:400])
    merges = open(os.path.join(p, "vocab.bpe"), encoding="utf-8").read().split("\n")
    ok = [merges[0]] + [m for m in merges[1:5000] if m and all(x in kept for x in m.split(" ")) and m.replace(" ", "") in kept]
    put("tokenizer", "gpt2-merges", b"\2" + json.dumps(kept, ensure_ascii=False).encode() + b"\0" + "\n".join(ok).encode())

tiny = {"model": {"type": "BPE", "unk_token": "<unk>", "vocab": {"<unk>": 0, "a": 1, "b": 2, "ab": 3, "\u2581": 4},
                  "merges": ["a b"]},
        "added_tokens": [{"id": 0, "content": "<unk>", "special": True}],
        "normalizer": {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"},
        "decoder": {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "}}
put("tokenizer", "tiny-bpe.json", b"\0" + json.dumps(tiny).encode())
wp = {"model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
                "max_input_chars_per_word": 100, "vocab": {"[UNK]": 0, "[CLS]": 1, "[SEP]": 2, "he": 3, "##llo": 4, "hello": 5}},
      "normalizer": {"type": "BertNormalizer", "lowercase": True}, "pre_tokenizer": {"type": "BertPreTokenizer"}}
put("tokenizer", "tiny-wordpiece.json", b"\0" + json.dumps(wp).encode())
dup = json.loads(json.dumps(wp))
dup["model"]["vocab"]["hello"] = 4
put("tokenizer", "dup-id.json", b"\0" + json.dumps(dup).encode())
neg = json.loads(json.dumps(wp))
neg["model"]["max_input_chars_per_word"] = -1
put("tokenizer", "max-chars-negative.json", b"\0" + json.dumps(neg).encode())
put("tokenizer", "vocab-list.json", b"\0" + json.dumps(["[UNK]", "[PAD]", "a", "##b"]).encode())
# Limits: nesting deeper than the JSON reader allows, and one very long token.
put("tokenizer", "deep-nesting.json", b"\0" + b'{"model":' + b"[" * (BIG // 2) + b"]" * (BIG // 2) + b"}")
put("tokenizer", "long-token-vocab.txt", b"\1[UNK]\n" + b"a" * BIG + b"\nb\n")
put("tokenizer", "long-merge", b"\2" + json.dumps({"a": 0, "b": 1}).encode() + b"\0#version: 0.2\n" + b"a " * (BIG // 2) + b"\n")


# ---- story ----------------------------------------------------------------
story = "(CNN) -- First paragraph.\n\nSecond paragraph.\n\n@highlight\n\nPoint one\n\n@highlight\n\nPoint two\n"
def tar_bytes(members, mode="w"):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode, format=tarfile.USTAR_FORMAT) as t:
        for name, data in members:
            if isinstance(data, str):
                data = data.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 0
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def zip_bytes(members, method=zipfile.ZIP_STORED):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as z:
        for name, data in members:
            z.writestr(zipfile.ZipInfo(name, (1980, 1, 1, 0, 0, 0)), data, method)
    return buf.getvalue()


one = [("cnn/stories/README.txt", "not a story"), ("cnn/stories/0001d1afc246a7964130f43ae940af6bc6c57f01.story", story)]
put("story", "plain.tar", tar_bytes(one))
put("story", "gzip.tgz", tar_bytes(one, "w:gz"))
put("story", "stored.zip", zip_bytes(one))
put("story", "deflated.zip", zip_bytes(one, zipfile.ZIP_DEFLATED))
put("story", "two.tar", tar_bytes([("a.story", story), ("b.story", "@highlight\n\nonly a highlight\n")]))
put("story", "no-highlight.tar", tar_bytes([("c.story", "just an article\n")]))
put("story", "empty.tar", tar_bytes([("d.story", "")]))
put("story", "bad-utf8.tar", tar_bytes([("e.story", b"bad \xff\xfe\n\n@highlight\n\nx\n")]))
put("story", "nul.tar", tar_bytes([("f.story", b"a\0b\n\n@highlight\n\nx\n")]))
put("story", "odd-names.tar", tar_bytes([(".story", story), ("x/.story", story), ("dir.story/", story)]))
put("story", "long-line.tar", tar_bytes([("g.story", "w" * BIG + "\n\n@highlight\n\nx\n")]))
put("story", "many-paragraphs.tar", tar_bytes([("h.story", "p\n\n" * (BIG // 3) + "@highlight\n\nx\n")]))


# ---- torchfile ------------------------------------------------------------
fx = os.path.join(top, "tests", "fixtures", "torch")
for name in ["misc.bin", "truncated.bin", "missing-storage.bin", "evil-out-of-bounds.bin", "not-a-dict.bin",
             "evil-reduce-dict.bin", "not-a-zip.bin"]:
    put("torchfile", name, open(os.path.join(fx, name), "rb").read())
# The same members stored (torch.save stores them): easier to mutate.
with zipfile.ZipFile(os.path.join(fx, "misc.bin")) as z:
    members = [(i.filename, z.read(i)) for i in z.infolist()]
put("torchfile", "misc-stored.bin", zip_bytes(members))
put("torchfile", "misc-deflated.bin", zip_bytes(members, zipfile.ZIP_DEFLATED))
big = [(n, d + (b"\0" * BIG if "/data/" in n else b"")) for n, d in members]
put("torchfile", "misc-big-storage.bin", zip_bytes(big, zipfile.ZIP_DEFLATED))
