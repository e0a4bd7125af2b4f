#!/usr/bin/python3
"""pref_reference.py: DPO (with and without cDPO label smoothing), IPO and
ORPO fine-tuning of a LoRA on tests/models/tiny-llama, step by step in
PyTorch, for test-pref.c.

Written from the papers and TRL's documented losses, for their semantics:
  - a sequence's log-probability is the sum of log p(token) over its
    response tokens (the answer and the EOS after it), the prompt masked;
  - DPO (Rafailov et al. 2023; cDPO's label smoothing e, TRL's "sigmoid"):
    h = (pc - rc) - (pr - rr), loss = -(1-e) log s(b h) - e log s(-b h),
    rewards b (p - r); the reference is the model with the adapter off;
  - IPO (Azar et al. 2023, as TRL computes it on log-probs averaged over each
    answer's tokens): loss = (h - 1/(2b))^2, rewards b (p - r) averaged;
  - ORPO (Hong et al. 2024, TRL's ORPOTrainer): with a the averaged
    log-probs, log_odds = (ac - ar) - (log(1 - e^ac) - log(1 - e^ar)),
    loss = mean NLL over the chosen answers' tokens - b mean log s(log_odds),
    rewards b a; no reference;
  - losses and rewards are means over the pairs of the optimizer step,
    accuracy the fraction of pairs whose chosen reward is the higher, margin
    the mean of chosen minus rejected reward.
Each sequence runs through the model alone (cria packs a pair into one row
with segment ids; the numbers must not differ). LoRA: y + (x A^T B^T) alpha/r
with A drawn as cria's lora draws it (GLib's GRand, PEFT's kaiming-uniform
bound 1/sqrt(in)) and B = 0, so the first DPO loss is ln 2. AdamW (torch),
constant learning rate, no clipping, no weight decay.

Per step the golden file holds the loss and the metrics cria logs, and each
adapter gradient of the step (which test-pref.c recovers from the AdamW
moments in the step's checkpoint). Writes tests/train/pref-golden.json; run
from anywhere:
    /usr/bin/python3 tests/train/pref_reference.py
"""
import json
import math
import os
import sys

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "reference"))
sys.path.insert(0, HERE)
import hf_models  # noqa: E402
from adalora_train_reference import GRand  # noqa: E402

SEED = 42
STEPS = 3
LR = 0.01
R, ALPHA = 4, 8.0
TARGETS = ("q_proj", "v_proj")
# prompt, chosen, rejected; the prompt format of the test: "Q: {instruction}\nA: "
PAIRS = [("Say hi", "hi there", "go away"), ("Add 2 and 3", "5", "23"), ("Capital of France?", "Paris", "Rome"),
         ("Color of sky?", "blue", "green")]
FORMAT = {"name": "qa", "kind": "single", "prompt": "Q: {instruction} {input}\nA: ",
          "prompt_no_input": "Q: {instruction}\nA: ", "response": "{output}"}
CASES = [("dpo", 0.1, 0.0), ("dpo", 0.1, 0.2), ("ipo", 0.1, 0.0), ("orpo", 0.1, 0.0)]


def options(objective, beta, smoothing):
    """The command line test-pref.c runs, besides --model/--data/--out/--format."""
    return ["--objective", objective, "--beta", repr(beta), "--dpo-label-smoothing", repr(smoothing),
            "--max-length", "32", "--batch-size", "2", "--grad-accum", "2", "--max-steps", str(STEPS), "--lr",
            repr(LR), "--schedule", "constant", "--max-grad-norm", "0", "--seed", str(SEED), "--threads", "1",
            "--save-every", "1", "--adapter", "lora r=%d alpha=%g target-modules=%s" % (R, ALPHA, ",".join(TARGETS))]


def make_lora(cfg, w):
    rand = GRand([SEED & 0xFFFFFFFF, SEED >> 32])
    mods = {}
    for l in range(cfg["num_hidden_layers"]):
        for lin in ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj",
                    "mlp.up_proj", "mlp.down_proj"):
            mod = "model.layers.%d.%s" % (l, lin)
            if not mod.endswith(TARGETS):
                continue
            out_f, in_f = w[mod + ".weight"].shape
            bound = 1.0 / math.sqrt(in_f)
            vals = []
            for _ in range(R * in_f):
                r = rand.double()
                vals.append(r * bound - (r - 1) * -bound)  # g_rand_double_range
            a = torch.tensor(vals, dtype=torch.float32).reshape(R, in_f)
            mods[mod] = {"lora_A": a.requires_grad_(True), "lora_B": torch.zeros(out_f, R, requires_grad=True)}
    return mods


def lora_hook(mods, on=True):
    def hook(name, x, y):
        m = mods.get(name)
        if m is None or not on:
            return y
        return y + (x @ m["lora_A"].T @ m["lora_B"].T) * (ALPHA / R)
    return hook


def sequences(cfg):
    """(ids, first learned position) of each pair's chosen and rejected."""
    out = []
    for prompt, chosen, rejected in PAIRS:
        p = list(FORMAT["prompt_no_input"].replace("{instruction}", prompt).encode())
        out.append([(p + list(ans.encode()) + [cfg["eos_token_id"]], len(p)) for ans in (chosen, rejected)])
    return out


def logp(cfg, w, seq, hook):
    ids, start = seq
    logits = hf_models.llama_forward(cfg, w, ids, hook).double()
    lp = logits.log_softmax(-1)
    tgt = torch.tensor(ids[start:])
    return lp[start - 1:len(ids) - 1].gather(1, tgt[:, None]).sum(), len(ids) - start


def log1m_exp(a):
    return torch.log(-torch.expm1(a))


def run(objective, beta, smoothing):
    cfg, w = hf_models.load_dir(os.path.join(HERE, "..", "models", "tiny-llama"))
    mods = make_lora(cfg, w)
    params = [p for m in mods.values() for p in (m["lora_A"], m["lora_B"])]
    names = ["base_model.model.%s.%s.weight" % (mod, k) for mod in mods for k in ("lora_A", "lora_B")]
    opt = torch.optim.AdamW(params, lr=LR, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    seqs = sequences(cfg)
    with torch.no_grad():
        ref = [[logp(cfg, w, s, lora_hook(mods, False))[0] for s in pair] for pair in seqs]
    steps = []
    for step in range(STEPS):
        losses, rc, rr, lo, nll_sum, nll_tok = [], [], [], [], 0, 0
        for pair, (refc, refr) in zip(seqs, ref):
            (pc, nc), (pr, nr) = (logp(cfg, w, s, lora_hook(mods)) for s in pair)
            if objective == "dpo":
                h = (pc - refc) - (pr - refr)
                losses.append(-(1 - smoothing) * F.logsigmoid(beta * h) - smoothing * F.logsigmoid(-beta * h))
                rc.append(beta * (pc - refc))
                rr.append(beta * (pr - refr))
            elif objective == "ipo":
                h = (pc - refc) / nc - (pr - refr) / nr
                losses.append((h - 1 / (2 * beta)) ** 2)
                rc.append(beta * (pc - refc) / nc)
                rr.append(beta * (pr - refr) / nr)
            else:
                ac, ar = pc / nc, pr / nr
                log_odds = (ac - ar) - (log1m_exp(ac) - log1m_exp(ar))
                losses.append(-beta * F.logsigmoid(log_odds))
                lo.append(log_odds)
                rc.append(beta * ac)
                rr.append(beta * ar)
                nll_sum, nll_tok = nll_sum - pc, nll_tok + nc
        loss = torch.stack(losses).mean()
        if objective == "orpo":
            loss = loss + nll_sum / nll_tok
        opt.zero_grad()
        loss.backward()
        rc_t, rr_t = torch.stack(rc).detach(), torch.stack(rr).detach()
        record = {"step": step + 1, "loss": float(loss), "rewards/chosen": float(rc_t.mean()),
                  "rewards/rejected": float(rr_t.mean()), "rewards/accuracies": float((rc_t > rr_t).double().mean()),
                  "rewards/margins": float((rc_t - rr_t).mean()),
                  "grads": {n: [float(v) for v in p.grad.reshape(-1).tolist()] for n, p in zip(names, params)}}
        if objective == "orpo":
            record["nll_loss"] = float(nll_sum / nll_tok)
        steps.append(record)
        opt.step()
    return {"objective": objective, "beta": beta, "smoothing": smoothing, "options": options(objective, beta,
                                                                                              smoothing),
            "steps": steps}


def main():
    torch.manual_seed(0)
    golden = {"producer": "tests/train/pref_reference.py", "model": "tiny-llama", "format": FORMAT,
              "pairs": [{"prompt": p, "chosen": c, "rejected": r} for p, c, r in PAIRS],
              "cases": [run(*c) for c in CASES]}
    with open(os.path.join(HERE, "pref-golden.json"), "w") as f:
        json.dump(golden, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
