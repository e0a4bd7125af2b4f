// gen-golden.mjs: the expected ids of corpus.json for each tokenizer in
// ../shared/tokenizers, produced by @huggingface/tokenizers (the reference).
//
//   cd /work/npm-ref && npm install @huggingface/tokenizers
//   NODE_PATH=/work/npm-ref/node_modules node tests/text/gen-golden.mjs ../shared/tokenizers > tests/text/golden.json
import { createRequire } from "node:module";
import fs from "node:fs";
import path from "node:path";

const require = createRequire(path.join(process.env.NODE_PATH || ".", "x.js"));
const { Tokenizer } = require("@huggingface/tokenizers");
const here = path.dirname(new URL(import.meta.url).pathname);
const shared = process.argv[2];
const corpus = JSON.parse(fs.readFileSync(path.join(here, "corpus.json"), "utf8"));
const families = ["gpt2-hf", "qwen2.5", "llama3", "llama2", "bert-base-uncased"];
const out = {};
for (const f of families) {
  const dir = path.join(shared, f);
  const json = JSON.parse(fs.readFileSync(path.join(dir, "tokenizer.json"), "utf8"));
  const cfgPath = path.join(dir, "tokenizer_config.json");
  const cfg = fs.existsSync(cfgPath) ? JSON.parse(fs.readFileSync(cfgPath, "utf8")) : {};
  const tok = new Tokenizer(json, cfg);
  out[f] = {
    plain: corpus.map((t) => tok.encode(t, { add_special_tokens: false }).ids),
    special: corpus.map((t) => tok.encode(t, { add_special_tokens: true }).ids),
  };
}
// One array of ids per line keeps the file small and diffable.
const lines = ["{"];
families.forEach((f, i) => {
  lines.push(`"${f}": {`);
  for (const k of ["plain", "special"]) {
    lines.push(`"${k}": [`);
    lines.push(out[f][k].map((ids) => JSON.stringify(ids)).join(",\n"));
    lines.push(k === "plain" ? "]," : "]");
  }
  lines.push(i + 1 < families.length ? "}," : "}");
});
lines.push("}");
console.log(lines.join("\n"));
