#!/bin/sh
# bench/dist/dist.sh [BUILDDIR]: data-parallel training on MPI against one
# process, on a GPT-2 124M-shaped model (random weights, made here with
# cria model init; the GPT-2 tokenizer from ../shared), LoRA r=8 on c_attn:
#   one process of 2 threads, batch 2B  vs  mpirun -np 2, 1 thread each, batch B
# Prints tokens/s of each, the ratio, and the share of rank 0's step time
# spent in the all-reduce (report.json's communication_seconds).
# With NETNS=1 (root, ip(8) and veth allowed) the two ranks also run as two
# "hosts": two network namespaces joined by a veth pair, mpirun reaching the
# second through an rsh agent that enters its namespace.
# STEPS (default 6), B (default 2) and T (max-length, default 128) size it;
# BIND (default core) is what mpirun binds each rank to.
set -eu
B_DIR=$(cd "${1:-.}" && pwd)
SRC=$(cd "$(dirname "$0")/../.." && pwd)
CRIA=$B_DIR/cria
SHARED=${CRIA_SHARED:-$SRC/../shared}
STEPS=${STEPS:-6}
B=${B:-2}
T=${T:-128}
BIND=${BIND:-core} # mpirun --bind-to
export CRIA_MODULE_DIR="$B_DIR/core/modules/.libs"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
tmp=$(mktemp -d /tmp/cria-dist-bench.XXXXXX)
cleanup () {
  ip netns del cria-bench-a 2>/dev/null || true
  ip netns del cria-bench-b 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

cat > "$tmp/config.json" <<JSON
{"architectures":["GPT2LMHeadModel"],"model_type":"gpt2","vocab_size":50257,"n_positions":1024,
 "n_embd":768,"n_layer":12,"n_head":12,"n_inner":null,"activation_function":"gelu_new",
 "layer_norm_epsilon":1e-5,"initializer_range":0.02,"bos_token_id":50256,"eos_token_id":50256,
 "tie_word_embeddings":true}
JSON
"$CRIA" model init "$tmp/config.json" "$tmp/model" >/dev/null
cp "$SHARED/tokenizers/gpt2-hf/tokenizer.json" "$tmp/model/"
python3 - "$tmp/data.jsonl" <<'PY'
import json, random, sys
random.seed(1)
words = "the a cat dog runs jumps over under quick brown lazy fox river stone tree light".split()
with open(sys.argv[1], "w") as f:
    for i in range(400):
        text = " ".join(random.choice(words) for _ in range(150))
        f.write(json.dumps({"instruction": "Go on.", "output": text}) + "\n")
PY

run_one () { # out threads batch [launcher args...]
  out=$1 threads=$2 batch=$3
  shift 3
  "$@" "$CRIA" train --model "$tmp/model" --data "$tmp/data.jsonl" \
    --adapter 'lora r=8 alpha=16 target-modules=c_attn' --max-length "$T" --max-steps "$STEPS" --lr 1e-4 \
    --progress never --on-long truncate --threads "$threads" --batch-size "$batch" --out "$out" \
    $(if [ $# -gt 0 ]; then echo --distributed; fi) >"$out.log" 2>&1 || { cat "$out.log"; exit 1; }
}
field () { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$1/report.json" "$2"; }

run_one "$tmp/one" 2 $((2 * B))
run_one "$tmp/two" 1 "$B" mpirun -np 2 --bind-to "$BIND" --mca btl self,tcp --mca btl_tcp_if_include lo -x CRIA_MODULE_DIR
ONE=$(field "$tmp/one" tokens_per_second)
TWO=$(field "$tmp/two" tokens_per_second)
COMM=$(field "$tmp/two" communication_seconds)
SECS=$(field "$tmp/two" seconds_this_run)
echo "GPT-2 124M shape, LoRA r=8 c_attn, $STEPS steps of $((2 * B)) x $T tokens"
printf '  1 process x 2 threads, batch %d:        %8.1f tokens/s\n' $((2 * B)) "$ONE"
printf '  2 ranks x 1 thread (loopback), batch %d: %8.1f tokens/s  (%.2f x; %.1f%% of the time in all-reduce)\n' \
  "$B" "$TWO" "$(echo "$TWO / $ONE" | bc -l)" "$(echo "100 * $COMM / $SECS" | bc -l)"

[ "${NETNS:-0}" = 1 ] || exit 0
# Two "hosts": network namespaces a (10.99.0.1, mpirun and rank 0) and b
# (10.99.0.2, rank 1), one veth pair between them.
ip netns add cria-bench-a && ip netns add cria-bench-b || { echo "  netns: not allowed here (ip netns add failed)"; exit 0; }
ip link add cria-bva type veth peer name cria-bvb
ip link set cria-bva netns cria-bench-a
ip link set cria-bvb netns cria-bench-b
ip -n cria-bench-a addr add 10.99.0.1/24 dev cria-bva
ip -n cria-bench-b addr add 10.99.0.2/24 dev cria-bvb
for ns in a b; do
  ip -n cria-bench-$ns link set lo up
  ip -n cria-bench-$ns link set cria-bv$ns up
done
cat > "$tmp/agent" <<'SH'
#!/bin/sh
# mpirun's "ssh": HOST COMMAND... run in HOST's namespace
host=$1; shift
case $host in 10.99.0.1) ns=cria-bench-a ;; *) ns=cria-bench-b ;; esac
exec ip netns exec $ns sh -c "$*"
SH
chmod +x "$tmp/agent"
printf '10.99.0.1 slots=1\n10.99.0.2 slots=1\n' > "$tmp/hosts"
run_one "$tmp/net" 1 "$B" ip netns exec cria-bench-a mpirun -np 2 --hostfile "$tmp/hosts" --bind-to "$BIND" \
  --mca plm_rsh_agent "$tmp/agent" --mca btl self,tcp --mca btl_tcp_if_include 10.99.0.0/24 \
  --mca oob_tcp_if_include 10.99.0.0/24 -x CRIA_MODULE_DIR -x LD_LIBRARY_PATH -x PATH
NET=$(field "$tmp/net" tokens_per_second)
COMM=$(field "$tmp/net" communication_seconds)
SECS=$(field "$tmp/net" seconds_this_run)
printf '  2 ranks on 2 netns "hosts" over veth:   %8.1f tokens/s  (%.2f x; %.1f%% of the time in all-reduce)\n' \
  "$NET" "$(echo "$NET / $ONE" | bc -l)" "$(echo "100 * $COMM / $SECS" | bc -l)"
