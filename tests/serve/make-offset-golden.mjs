// make-offset-golden.mjs: the text_offset of each token of cria serve's
// completions on stories260K (a SentencePiece tokenizer), computed by
// @huggingface/tokenizers: the answer's text is encoded, and each token's
// offset is the length of the decoded text of the tokens before it (the
// package has no offsets of its own; this is how OpenAI-compatible servers
// count text_offset). Writes offset-golden.json, which test-serve compares
// with the served text_offset.
//
//   mkdir -p /work/npm-ref-ux18 && cd /work/npm-ref-ux18 && npm install @huggingface/tokenizers@0.2.0
//   NODE_PATH=/work/npm-ref-ux18/node_modules node tests/serve/make-offset-golden.mjs \
//     ../shared/models/stories260K tests/serve
import { readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";

const require = createRequire(process.env.NODE_PATH + "/");
const { Tokenizer } = require("@huggingface/tokenizers");

const [model, out] = process.argv.slice(2);
const json = JSON.parse(readFileSync(path.join(model, "tokenizer.json"), "utf8"));
const config = JSON.parse(readFileSync(path.join(model, "tokenizer_config.json"), "utf8"));
const tok = new Tokenizer(json, config);
// Greedy answers of stories260K to these prompts (max_tokens 12), as cria
// serve gives them; their first token opens with "▁".
const cases = [
  { prompt: "Once upon a", text: "time, there was a little girl named Lily." },
  { prompt: "One day, Lily", text: "and Ben were playing in the park" },
];
const decoded = (ids) => (ids.length ? tok.decode(ids) : "");
for (const c of cases) {
  const ids = tok.encode(c.text, { add_special_tokens: false }).ids;
  c.tokens = ids.map((_, i) => decoded(ids.slice(0, i + 1)).slice(decoded(ids.slice(0, i)).length));
  c.text_offset = ids.map((_, i) => decoded(ids.slice(0, i)).length);
}
writeFileSync(path.join(out, "offset-golden.json"), JSON.stringify(cases, null, 1) + "\n");
