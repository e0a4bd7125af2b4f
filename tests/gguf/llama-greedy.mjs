// llama-greedy.mjs: greedy continuations of token ids by llama.cpp (the
// prebuilt library node-llama-cpp ships), for tests/gguf/test-gguf.c.
// Reads one job a line on stdin, "MODEL.gguf LORA.gguf|- N ID...", and
// prints for each the N ids llama.cpp picks after ID..., space-separated;
// or "tok MODEL.gguf TEXTS", and prints the ids llama.cpp's tokenizer gives
// (no special tokens added) for each text of TEXTS (separated as in ggml's
// vocabulary tests by "\n__ggml_vocab_test__\n"), texts separated by ";".
// Exits 77 when node-llama-cpp is not found (under CRIA_NODE_MODULES).
import { createRequire } from "node:module";
import path from "node:path";
import { readFileSync } from "node:fs";

let lib;
try {
  const require = createRequire(path.join(process.env.CRIA_NODE_MODULES || process.cwd(), "x.js"));
  lib = await import(require.resolve("node-llama-cpp"));
} catch (e) {
  console.error(`llama-greedy: node-llama-cpp not found: ${e.message}`);
  process.exit(77);
}
const llama = await lib.getLlama({ gpu: false, build: "never", logLevel: "error", progressLogs: false });
for (const line of readFileSync(0, "utf8").split("\n")) {
  const [model, lora, n, ...ids] = line.trim().split(/\s+/);
  if (!model) continue;
  if (model === "tok") {
    const m = await llama.loadModel({ modelPath: lora, vocabOnly: true });
    const texts = readFileSync(n, "utf8").split("\n__ggml_vocab_test__\n");
    if (texts.at(-1) === "") texts.pop();
    console.log(texts.map((t) => m.tokenize(t, false).join(" ")).join(";"));
    await m.dispose();
    continue;
  }
  const m = await llama.loadModel({ modelPath: model, gpuLayers: 0 });
  const options = { contextSize: 128, batchSize: 128, threads: 1 };
  if (lora !== "-") options.lora = { adapters: [{ filePath: lora, scale: 1 }] };
  const ctx = await m.createContext(options);
  const out = [];
  for await (const t of ctx.getSequence().evaluate(ids.map(Number), { temperature: 0, yieldEogToken: true })) {
    out.push(t);
    if (out.length >= Number(n)) break;
  }
  console.log(out.join(" "));
  await ctx.dispose();
  await m.dispose();
}
await llama.dispose();
