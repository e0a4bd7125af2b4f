// make-chat-golden.mjs: renders conversations of tests/chat-template/
// conversations.json through the chat template of the tiny test models
// (tiny-chat-template.jinja, with bos_token "<s>" and eos_token "</s>" as
// test-chat-prompt and test-openai write them into the model's
// tokenizer_config.json) with @huggingface/transformers' apply_chat_template,
// and writes chat-golden.json, which test-chat-prompt compares byte for byte
// with what cria serve, generate and chat feed the model.
//
//   mkdir -p /work/npm-ref-api && cd /work/npm-ref-api &&
//     npm install @huggingface/transformers@4.3.1 @huggingface/jinja@0.5.11
//   NODE_PATH=/work/npm-ref-api/node_modules node tests/serve/make-chat-golden.mjs \
//     ../shared/tokenizers/gpt2-hf tests
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import path from "node:path";

const require = createRequire(process.env.NODE_PATH + "/");
const { AutoTokenizer, env } = require("@huggingface/transformers");

const [tokenizer_json_dir, tests] = process.argv.slice(2);
// Any tokenizer.json does: the template and the special tokens are what render.
const dir = mkdtempSync(path.join(tmpdir(), "tiny-chat-"));
copyFileSync(path.join(tokenizer_json_dir, "tokenizer.json"), path.join(dir, "tokenizer.json"));
const chat_template = readFileSync(path.join(tests, "serve", "tiny-chat-template.jinja"), "utf8");
writeFileSync(path.join(dir, "tokenizer_config.json"),
              JSON.stringify({ bos_token: "<s>", eos_token: "</s>", chat_template }));
env.allowRemoteModels = false;
env.localModelPath = path.dirname(dir) + "/";
const tok = await AutoTokenizer.from_pretrained(path.basename(dir));

const wanted = ["single", "system", "multi-turn", "chinese", "system-multi-turn-answered", "whitespace"];
const conversations = JSON.parse(readFileSync(path.join(tests, "chat-template", "conversations.json"), "utf8"));
const golden = { tiny: {} };
for (const c of conversations.filter((c) => wanted.includes(c.name))) {
  golden.tiny[c.name] = {};
  for (const gen of [true, false])
    golden.tiny[c.name][gen ? "generation" : "no-generation"] =
      tok.apply_chat_template(c.messages, { tokenize: false, add_generation_prompt: gen });
}
writeFileSync(path.join(tests, "serve", "chat-golden.json"), JSON.stringify(golden, null, 1) + "\n");
