#!/usr/bin/env python3
"""Writes the seeds of tests/fuzz/corpus/serve: requests to cria serve as a
client sends them, small ones for each check and big ones (256 KiB and more)
that reach the body limit of the fuzz target (256 KiB) by Content-Length and
by chunks. Run from the top of the tree."""
import json, os

d = "tests/fuzz/corpus/serve"
os.makedirs(d, exist_ok=True)
H = "Host: 127.0.0.1\r\n"


def req(path, body, method="POST", extra="", length=True):
    head = f"{method} {path} HTTP/1.1\r\n{H}{extra}"
    if body is None:
        return (head + "\r\n").encode()
    b = body.encode() if isinstance(body, str) else body
    if length:
        head += f"Content-Length: {len(b)}\r\n"
    return head.encode() + b"\r\n" + b


def chunked(path, body, size):
    b = body.encode()
    out = f"POST {path} HTTP/1.1\r\n{H}Transfer-Encoding: chunked\r\n\r\n".encode()
    for i in range(0, len(b), size):
        c = b[i:i + size]
        out += b"%x\r\n" % len(c) + c + b"\r\n"
    return out + b"0\r\n\r\n"


def padded(obj, size):
    """obj as JSON of exactly `size` bytes, by a "user" field (which servers ignore)."""
    obj["user"] = ""
    obj["user"] = "u" * (size - len(json.dumps(obj)))
    return json.dumps(obj)


# Bodies just under the target's limit, so that the requests pass 256 KiB.
UNDER = 262144 - 40
chat = json.dumps({"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4, "stream": True})
seeds = {
    "models": req("/v1/models", None, "GET"),
    "chat": req("/v1/chat/completions", chat),
    "completion": req("/v1/completions", '{"prompt": ["a", "b"], "stop": "x", "temperature": 0.5}'),
    "parts": req("/v1/chat/completions",
                 '{"messages": [{"role": "system", "content": [{"type": "text", "text": "s"}]}]}'),
    "chunked": chunked("/v1/completions", '{"prompt": "Once upon a time", "max_tokens": 3}', 7),
    "two-lengths": req("/v1/completions", "{}", extra="Content-Length: 9\r\n"),
    "length-list": req("/v1/completions", "{}", extra="Content-Length: 2, 2\r\n", length=False),
    "te-and-length": req("/v1/completions", "0\r\n\r\n", extra="Transfer-Encoding: chunked\r\n"),
    "too-long": req("/v1/completions", None, extra="Content-Length: 400000000\r\n"),
    "expect": req("/v1/completions", None, extra="Expect: 100-continue\r\nContent-Length: 400000000\r\n"),
    "nul": req("/v1/chat/completions", '{"messages": [{"role": "user", "content": "a\\u0000b"}]}'),
    "nul-key": req("/v1/completions", '{"prompt": "x", "a\\u0000": 1}'),
    "bad-json": req("/v1/completions", '{"prompt": [1, 2'),
    "nested": req("/v1/completions", '{"prompt": "x", "user": ' + "[" * 100 + "]" * 100 + "}"),
    "no-route": req("/v2/x?y=%2e%2e", None, "DELETE"),
    "http10": b"GET /v1/models HTTP/1.0\r\n\r\n",
    "pipelined": req("/v1/models", None, "GET") * 3,
    # 256 KiB and more
    "big-prompt": req("/v1/completions", padded({"prompt": "cat " * 65000, "max_tokens": 1}, UNDER)),
    "big-chat-chunked": chunked("/v1/chat/completions", padded(
        {"messages": [{"role": "user" if i % 2 == 0 else "assistant", "content": "word " * 50}
                      for i in range(900)]}, UNDER), 4096),
    "over-limit-chunked": chunked("/v1/completions", json.dumps({"prompt": "x" * 300000}), 65536),
}
for name, data in seeds.items():
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)
