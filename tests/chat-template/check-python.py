#!/usr/bin/env python3
"""check-python.py: renders conversations.json with Python's jinja2, set up as
Hugging Face transformers sets it up for apply_chat_template (sandboxed,
trim_blocks, lstrip_blocks, tojson without ASCII escaping, raise_exception),
and reports every case where it differs from golden.json (made with the
JavaScript reference by make-goldens.mjs): the two references must agree.

    python3 tests/chat-template/check-python.py   # needs jinja2 (Debian: python3-jinja2) ../shared/tokenizers tests/chat-template
"""
import json
import os
import sys

from jinja2.exceptions import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

shared, here = sys.argv[1:3]


def raise_exception(message):
    raise TemplateError(message)


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"])
env.filters["tojson"] = tojson
env.globals["raise_exception"] = raise_exception

TEMPLATES = {
    "qwen2.5": ("qwen2.5", None),
    "qwen3": ("qwen3", None),
    "llama3": ("llama3", None),
    "conformance-qwen2.5": ("qwen2.5", "conformance/Qwen-Qwen2.5-7B-Instruct.jinja"),
    "conformance-qwen3": ("qwen3", "conformance/Qwen-Qwen3-0.6B.jinja"),
}


def token(config, key):
    v = config.get(key)
    return v.get("content") if isinstance(v, dict) else v


golden = json.load(open(os.path.join(here, "golden.json"), encoding="utf-8"))
conversations = json.load(open(os.path.join(here, "conversations.json"), encoding="utf-8"))
bad = 0
for name, (folder, jinja) in TEMPLATES.items():
    config = json.load(open(os.path.join(shared, folder, "tokenizer_config.json"), encoding="utf-8"))
    source = open(os.path.join(shared, jinja), encoding="utf-8").read() if jinja else config["chat_template"]
    template = env.from_string(source)
    specials = {k: token(config, k) for k in ("bos_token", "eos_token", "unk_token", "pad_token")}
    for c in conversations:
        for gen in (True, False):
            try:
                text = template.render(messages=c["messages"], tools=c.get("tools"), add_generation_prompt=gen,
                                       **specials, **c.get("extra", {}))
            except TemplateError as e:
                text = {"error": str(e)}
            want = golden[name][c["name"]]["generation" if gen else "no-generation"]
            if text != want:
                bad += 1
                print(f"{name} {c['name']} generation={gen}: python {text!r}\n  golden {want!r}")
print(f"{bad} differences")
sys.exit(1 if bad else 0)
