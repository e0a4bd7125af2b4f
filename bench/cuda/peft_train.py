#!/usr/bin/python3
"""The peer of bench/cuda/cuda-bench.py: training steps of a Hugging Face
checkpoint on the GPU with transformers (SDPA attention) and, for LoRA, peft.

  peft_train.py MODELDIR BATCH SEQ STEPS (lora R | full) (bf16 | f32)

lora R: peft's LoRA, rank R, alpha 2R, no dropout, on every linear layer
(target_modules="all-linear": the lm-head excepted), the base frozen.
bf16: mixed precision as the Trainer's bf16=True runs it, under
torch.autocast(bfloat16); LoRA loads the frozen base in bf16, full fine-tuning
keeps f32 master weights. f32: f32 weights, no autocast, TF32 off (cria's
cuda backend uses no TF32 unless asked). Dropout is off (eval mode), as in
cria's run. Each step: forward on random ids with labels = ids (the mean
cross-entropy of every next token), backward, fused AdamW. One warm-up step,
then STEPS timed steps. Prints one JSON line: tokens/s over the timed steps,
torch.cuda.max_memory_allocated over the whole run (weights included) and the
last loss.
"""
import json
import sys
import time

import torch
import transformers
from transformers import AutoModelForCausalLM


def main():
    d, B, T, steps, mode, dtype = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], \
        sys.argv[-1]
    if dtype not in ("bf16", "f32") or mode not in ("lora", "full"):
        sys.exit("usage: peft_train.py MODELDIR BATCH SEQ STEPS (lora R | full) (bf16 | f32)")
    if not torch.cuda.is_available():
        sys.exit("peft_train.py: PyTorch sees no CUDA device")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.manual_seed(0)
    torch.cuda.reset_peak_memory_stats()
    load = torch.bfloat16 if dtype == "bf16" and mode == "lora" else torch.float32
    # transformers 4.56 renamed torch_dtype to dtype; an unknown keyword
    # would only land in the config, leaving the weights f32
    version = tuple(int(x) for x in transformers.__version__.split(".")[:2])
    kw = {"dtype" if version >= (4, 56) else "torch_dtype": load}
    model = AutoModelForCausalLM.from_pretrained(d, attn_implementation="sdpa", **kw).cuda()
    if next(model.parameters()).dtype != load:
        sys.exit("peft_train.py: the weights loaded as %s, not %s" % (next(model.parameters()).dtype, load))
    if mode == "lora":
        from peft import LoraConfig, get_peft_model
        r = int(sys.argv[6])
        model = get_peft_model(model, LoraConfig(r=r, lora_alpha=2 * r, lora_dropout=0.0,
                                                 target_modules="all-linear"))
    model.eval()
    trainable = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trainable, lr=1e-4, fused=True)
    ids = torch.randint(0, model.config.vocab_size, (B, T), device="cuda")
    for step in range(steps + 1):
        if step == 1:  # the first step warms up cuBLAS, the allocator and AdamW's state
            torch.cuda.synchronize()
            t0 = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=dtype == "bf16"):
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    torch.cuda.synchronize()
    span = time.perf_counter() - t0
    print(json.dumps({"tokens_per_s": B * T * steps / span, "peak_mib": torch.cuda.max_memory_allocated() / 2**20,
                      "loss": loss.item(), "versions": "torch %s, transformers %s" % (torch.__version__,
                                                                                     transformers.__version__)}))


if __name__ == "__main__":
    main()
