// make-goldens.mjs: renders every conversation of conversations.json through
// every chat template cria ships tests for, with @huggingface/transformers'
// apply_chat_template (its Jinja is @huggingface/jinja), and writes
// golden.json, which test-chat-template compares byte for byte.
//
//   mkdir -p /work/npm-ref-chat && cd /work/npm-ref-chat &&
//     npm install @huggingface/transformers@4.3.1 @huggingface/jinja@0.5.11
//   NODE_PATH=/work/npm-ref-chat/node_modules node tests/chat-template/make-goldens.mjs \
//     ../shared/tokenizers tests/chat-template
import { readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";

const require = createRequire(process.env.NODE_PATH + "/");
const { AutoTokenizer, env } = require("@huggingface/transformers");

const [shared, here] = process.argv.slice(2);
env.allowRemoteModels = false;
env.localModelPath = shared + "/";

// name -> tokenizer folder, and the .jinja file when the template is not the
// tokenizer_config.json one.
const templates = [
  { name: "qwen2.5", dir: "qwen2.5" },
  { name: "qwen3", dir: "qwen3" },
  { name: "llama3", dir: "llama3" },
  { name: "conformance-qwen2.5", dir: "qwen2.5", jinja: "conformance/Qwen-Qwen2.5-7B-Instruct.jinja" },
  { name: "conformance-qwen3", dir: "qwen3", jinja: "conformance/Qwen-Qwen3-0.6B.jinja" },
];
const conversations = JSON.parse(readFileSync(path.join(here, "conversations.json"), "utf8"));

const golden = {};
for (const t of templates) {
  const tok = await AutoTokenizer.from_pretrained(t.dir);
  const chat_template = t.jinja ? readFileSync(path.join(shared, t.jinja), "utf8") : null;
  golden[t.name] = {};
  for (const c of conversations) {
    const out = {};
    for (const gen of [true, false]) {
      let r;
      try {
        r = tok.apply_chat_template(c.messages, {
          tokenize: false,
          add_generation_prompt: gen,
          tools: c.tools ?? null,
          chat_template,
          ...(c.extra ?? {}),
        });
      } catch (e) {
        r = { error: String(e.message ?? e) };
      }
      out[gen ? "generation" : "no-generation"] = r;
    }
    golden[t.name][c.name] = out;
  }
}
writeFileSync(path.join(here, "golden.json"), JSON.stringify(golden, null, 1) + "\n");
