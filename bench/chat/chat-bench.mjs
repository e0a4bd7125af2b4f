// chat-bench.mjs: the reference side of chat.sh: the same renders as
// chat-bench.c with @huggingface/jinja (what @huggingface/transformers'
// apply_chat_template uses), the template compiled once; prints
// "node RENDERS_PER_SECOND BYTES".
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";

const require = createRequire(process.env.NODE_PATH + "/");
const { Template } = require("@huggingface/jinja");
const [dir, convPath, roundsArg] = process.argv.slice(2);
const config = JSON.parse(readFileSync(dir + "/tokenizer_config.json", "utf8"));
const token = (v) => (v && typeof v === "object" ? v.content : v);
const specials = {};
for (const k of ["bos_token", "eos_token", "unk_token", "pad_token"]) if (token(config[k])) specials[k] = token(config[k]);
const template = new Template(config.chat_template);
const convs = JSON.parse(readFileSync(convPath, "utf8"));
const rounds = Number(roundsArg ?? 2000);
let bytes = 0, renders = 0;
const start = process.hrtime.bigint();
for (let r = 0; r < rounds; r++)
  for (const c of convs) {
    const out = template.render({ messages: c.messages, add_generation_prompt: true, tools: c.tools ?? null, ...specials });
    bytes += Buffer.byteLength(out);
    renders++;
  }
const s = Number(process.hrtime.bigint() - start) / 1e9;
console.log(`node ${Math.round(renders / s)} ${bytes}`);
