// openai-client.mjs: drives `cria serve` with the official `openai` npm
// client (v6), non-streaming and streaming, for what issue 18 lists:
// models (list and one), n > 1, logprobs and top_logprobs, response_format
// text / json_object / json_schema, stop as a string or a list, seed,
// presence and frequency penalties, usage, /health, CORS, the API key,
// refused tools and embeddings, an empty prompt. Run by test-openai:
//
//   CRIA_NODE_MODULES=.node/node_modules node tests/serve/openai-client.mjs URL KEY MODEL PROMPT_BYTES
//
// PROMPT_BYTES is the length of the golden prompt (chat-golden.json, tiny,
// chinese): the tiny model's tokenizer has one token per byte, so that the
// usage says whether the server used the model's own chat template.
import assert from "node:assert/strict";
import { createRequire } from "node:module";

const require = createRequire(process.env.CRIA_NODE_MODULES + "/");
const { OpenAI } = require("openai");

const [baseURL, apiKey, model, promptBytes] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey, maxRetries: 0, timeout: 60000 });
const root = baseURL.replace(/\/v1$/, "");
let checks = 0;
const ok = (what) => { checks++; if (process.env.VERBOSE) console.log("ok", what); };

const conversation = [
  { role: "system", content: "你是一个乐于助人的助手。" },
  { role: "user", content: "请用一句话介绍长城。" },
  { role: "assistant", content: "长城是中国古代修建的军事防御工程，绵延万里。" },
  { role: "user", content: "它有多长？😀" },
];

async function stream(params) {
  const s = await client.chat.completions.create({ ...params, stream: true, stream_options: { include_usage: true } });
  const text = {}, finish = {}, logprobs = {};
  let usage = null;
  for await (const chunk of s) {
    if (chunk.usage) usage = chunk.usage;
    for (const c of chunk.choices) {
      text[c.index] = (text[c.index] ?? "") + (c.delta.content ?? "");
      if (c.finish_reason) finish[c.index] = c.finish_reason;
      if (c.logprobs?.content) logprobs[c.index] = [...(logprobs[c.index] ?? []), ...c.logprobs.content];
    }
  }
  return { text, finish, logprobs, usage };
}

async function expectError(promise, status, param, what) {
  try {
    await promise;
  } catch (e) {
    assert.ok(e instanceof OpenAI.APIError, `${what}: ${e}`);
    assert.equal(e.status, status, what);
    if (param !== undefined) assert.equal(e.param, param, what);
    assert.equal(typeof e.error?.message, "string", what);
    return e;
  }
  assert.fail(`${what}: no error`);
}

// /health needs no key; CORS preflight and headers.
let r = await fetch(root + "/health");
assert.equal(r.status, 200);
assert.deepEqual(await r.json(), { status: "ok" });
r = await fetch(baseURL + "/models", { method: "OPTIONS",
  headers: { Origin: "http://allowed.test", "Access-Control-Request-Method": "POST",
             "Access-Control-Request-Headers": "authorization, content-type" } });
assert.equal(r.status, 204);
assert.equal(r.headers.get("access-control-allow-origin"), "http://allowed.test");
assert.match(r.headers.get("access-control-allow-headers"), /authorization/);
r = await fetch(baseURL + "/models", { headers: { Origin: "http://other.test", Authorization: `Bearer ${apiKey}` } });
assert.equal(r.status, 200);
assert.equal(r.headers.get("access-control-allow-origin"), null);
ok("health and CORS");

// The key: a wrong one and none get 401 in OpenAI's shape.
for (const key of ["wrong-key", ""]) {
  const bad = new OpenAI({ baseURL, apiKey: key || "x", maxRetries: 0,
                           defaultHeaders: key ? {} : { Authorization: null } });
  const e = await expectError(bad.models.list(), 401, null, "bad key");
  assert.ok(e instanceof OpenAI.AuthenticationError);
  assert.equal(e.code, "invalid_api_key");
}
ok("api key");

// Models.
const list = await client.models.list();
assert.deepEqual(list.data.map((m) => m.id), [model]);
const one = await client.models.retrieve(model);
assert.equal(one.id, model);
assert.equal(one.object, "model");
await expectError(client.models.retrieve("no-such-model"), 404, "model", "unknown model");
ok("models");

// Chat, greedy: the model's own template (usage counts the golden prompt),
// logprobs with the chosen token the most likely one, usage.
const greedy = { model, messages: conversation, max_tokens: 6, temperature: 0, logprobs: true, top_logprobs: 3 };
const c0 = await client.chat.completions.create(greedy);
assert.equal(c0.object, "chat.completion");
assert.equal(c0.usage.prompt_tokens, Number(promptBytes));
assert.equal(c0.usage.total_tokens, c0.usage.prompt_tokens + c0.usage.completion_tokens);
const lp = c0.choices[0].logprobs.content;
assert.equal(lp.length, c0.usage.completion_tokens);
for (const t of lp) {
  assert.equal(t.top_logprobs.length, 3);
  assert.ok(t.logprob <= 0);
  assert.equal(t.logprob, t.top_logprobs[0].logprob);
  assert.ok(t.top_logprobs[0].logprob >= t.top_logprobs[1].logprob);
}
const s0 = await stream(greedy);
assert.equal(s0.text[0], c0.choices[0].message.content);
assert.equal(s0.finish[0], c0.choices[0].finish_reason);
assert.deepEqual(s0.usage, c0.usage);
assert.deepEqual(s0.logprobs[0].map((t) => t.token), lp.map((t) => t.token));
ok("chat template, logprobs, usage (stream too)");

// n > 1 with a seed: choices differ, the same seed gives the same choices.
const sampled = { model, messages: conversation, max_tokens: 8, temperature: 1.5, n: 3, seed: 11 };
const n1 = await client.chat.completions.create(sampled);
const n2 = await client.chat.completions.create(sampled);
assert.deepEqual(n1.choices.map((c) => c.index), [0, 1, 2]);
assert.deepEqual(n1.choices.map((c) => c.message.content), n2.choices.map((c) => c.message.content));
assert.ok(new Set(n1.choices.map((c) => c.message.content)).size > 1, "n choices all alike");
assert.equal(n1.usage.prompt_tokens, Number(promptBytes));
const ns = await stream(sampled);
assert.deepEqual([0, 1, 2].map((i) => ns.text[i]), n1.choices.map((c) => c.message.content));
ok("n and seed (stream too)");

// Penalties change what is drawn; stop as a string and as a list.
const plain = { model, messages: conversation, max_tokens: 24, temperature: 0 };
const base = (await client.chat.completions.create(plain)).choices[0].message.content;
const pen = await client.chat.completions.create({ ...plain, presence_penalty: 2, frequency_penalty: 2 });
assert.notEqual(pen.choices[0].message.content, base);
assert.ok(base.length > 2);
const cut = base.slice(2, 3);
for (const stop of [cut, [cut, "\u0001never"]]) {
  const c = await client.chat.completions.create({ ...plain, stop });
  assert.equal(c.choices[0].finish_reason, "stop");
  assert.ok(!c.choices[0].message.content.includes(cut));
  assert.ok(base.startsWith(c.choices[0].message.content));
}
ok("penalties and stop");

// response_format: text; json_object; json_schema, whole and streamed.
const text = await client.chat.completions.create({ ...plain, max_tokens: 4, response_format: { type: "text" } });
assert.equal(typeof text.choices[0].message.content, "string");
const obj = await client.chat.completions.create({ ...plain, max_tokens: 60, response_format: { type: "json_object" } });
assert.equal(obj.choices[0].finish_reason, "stop");
const parsed = JSON.parse(obj.choices[0].message.content);
assert.equal(typeof parsed, "object");
assert.ok(!Array.isArray(parsed) && parsed !== null);
const schema = {
  type: "object",
  properties: { answer: { type: "string", enum: ["yes", "no"] }, count: { type: "integer" },
                ok: { type: "boolean" } },
  required: ["answer", "count", "ok"], additionalProperties: false,
};
const rf = { type: "json_schema", json_schema: { name: "reply", schema, strict: true } };
for (const temperature of [0, 1.2]) {
  const j = await client.chat.completions.create({ ...plain, temperature, seed: 3, max_tokens: 60, response_format: rf });
  assert.equal(j.choices[0].finish_reason, "stop");
  const v = JSON.parse(j.choices[0].message.content);
  assert.deepEqual(Object.keys(v).sort(), ["answer", "count", "ok"]);
  assert.ok(["yes", "no"].includes(v.answer));
  assert.ok(Number.isInteger(v.count));
  assert.equal(typeof v.ok, "boolean");
  const js = await stream({ ...plain, temperature, seed: 3, max_tokens: 60, response_format: rf });
  assert.equal(js.text[0], j.choices[0].message.content);
}
await expectError(client.chat.completions.create({ ...plain, response_format:
  { type: "json_schema", json_schema: { name: "x", schema: { type: "string", pattern: "^a" } } } }),
  400, "response_format.json_schema.schema", "unsupported schema keyword");
ok("response_format");

// Completions: logprobs, stop list, n, usage; streamed the same.
const comp = { model, prompt: "Hello", max_tokens: 6, temperature: 0, logprobs: 2 };
const k = await client.completions.create(comp);
assert.equal(k.object, "text_completion");
const klp = k.choices[0].logprobs;
assert.equal(klp.tokens.length, k.usage.completion_tokens);
assert.equal(klp.tokens.join(""), k.choices[0].text);
assert.equal(klp.top_logprobs[0][klp.tokens[0]], klp.token_logprobs[0]);
const ks = await client.completions.create({ ...comp, stream: true, stream_options: { include_usage: true } });
let ktext = "", kusage = null;
for await (const chunk of ks) {
  if (chunk.usage) kusage = chunk.usage;
  for (const c of chunk.choices) ktext += c.text;
}
assert.equal(ktext, k.choices[0].text);
assert.deepEqual(kusage, k.usage);
const k2 = await client.completions.create({ model, prompt: ["a", "b"], max_tokens: 3, n: 2, temperature: 1, seed: 1 });
assert.equal(k2.choices.length, 4);
assert.equal(k2.usage.prompt_tokens, 2);
ok("completions");

// What cria cannot do: OpenAI's error shape, naming the field.
await expectError(client.chat.completions.create({ ...plain, tools: [{ type: "function",
  function: { name: "f", parameters: { type: "object" } } }] }), 400, "tools", "tools");
await expectError(client.embeddings.create({ model, input: "x" }), 400, "input", "embeddings");
// An empty prompt: the tiny tokenizer adds no BOS, so there is nothing to
// continue (cria-serve(1), ERRORS).
await expectError(client.completions.create({ model, prompt: "", max_tokens: 2 }), 400, "prompt", "empty prompt");
ok("refusals");

console.log(`openai-client: ${checks} groups of checks passed`);
