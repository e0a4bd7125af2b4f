// tok-bench.mjs: encode throughput of @huggingface/tokenizers on the same
// corpus as cria-tok-bench (one document per line). Prints "node MBPS TOKENS".
import { createRequire } from "node:module";
import fs from "node:fs";
import path from "node:path";

const require = createRequire(path.join(process.env.NODE_PATH || ".", "x.js"));
const { Tokenizer } = require("@huggingface/tokenizers");
const [dir, corpus] = process.argv.slice(2);
const file = fs.statSync(dir).isDirectory() ? path.join(dir, "tokenizer.json") : dir;
const cfgPath = path.join(path.dirname(file), "tokenizer_config.json");
const cfg = fs.existsSync(cfgPath) ? JSON.parse(fs.readFileSync(cfgPath, "utf8")) : {};
const tok = new Tokenizer(JSON.parse(fs.readFileSync(file, "utf8")), cfg);
const buf = fs.readFileSync(corpus);
const lines = buf.toString("utf8").split("\n");
const t0 = process.hrtime.bigint();
let tokens = 0;
for (const l of lines) tokens += tok.encode(l, { add_special_tokens: false }).ids.length;
const s = Number(process.hrtime.bigint() - t0) / 1e9;
console.log(`node ${(buf.length / 1e6 / s).toFixed(2)} ${tokens}`);
