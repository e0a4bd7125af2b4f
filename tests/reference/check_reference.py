#!/usr/bin/python3
"""Proves hf_models.py right before its logits are trusted: its greedy output
must equal the goldens other implementations produced for the real
checkpoints in ../shared/models (llama2.c for stories260K, candle for
tiny-random-llama). Not run by make check (it needs python3-torch).

  /usr/bin/python3 tests/reference/check_reference.py [SHARED_DIR]
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hf_models  # noqa: E402

shared = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "../../../shared")
models = os.path.join(shared, "models")
ok = True

d = os.path.join(models, "stories260K")
cfg, w = hf_models.load_dir(d)
want = [int(t) for t in open(os.path.join(d, "golden_greedy_from_bos_60.ids")).read().split()]
got = hf_models.greedy(cfg, w, [cfg["bos_token_id"]], len(want))
print("stories260K greedy from BOS, 60 tokens (llama2.c):", "OK" if got == want else "DIFFERENT")
if got != want:
    ok = False
    print(" want", want, "\n got ", got)

d = os.path.join(models, "tiny-random-llama")
cfg, w = hf_models.load_dir(d)
want = [18568, 1727, 8705, 3598, 27426, 4496, 998, 16911]  # golden_greedy.txt
got = hf_models.greedy(cfg, w, [1, 2, 3], 8)
print("tiny-random-llama greedy from [1, 2, 3] (candle):", "OK" if got == want else "DIFFERENT")
ok = ok and got == want
sys.exit(0 if ok else 1)
