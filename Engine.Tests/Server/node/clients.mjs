// Runs the official npm clients against a running `engine serve` and prints one JSON object with what they got.
// Usage: node clients.mjs BASE_URL MODEL
import OpenAI from "openai";
import { Ollama } from "ollama";

const [base, model] = process.argv.slice(2);
const openai = new OpenAI({ baseURL: new URL("/v1", base).toString(), apiKey: "unused" });
const ollama = new Ollama({ host: base });
const messages = [{ role: "user", content: "Once upon a time" }];
const result = {};

const chat = await openai.chat.completions.create({ model, messages, max_tokens: 12, temperature: 0 });
result.openaiChat = chat.choices[0].message.content;
result.openaiUsage = chat.usage;

let streamed = "";
let usage = null;
const stream = await openai.chat.completions.create({ model, messages, max_tokens: 12, temperature: 0, stream: true, stream_options: { include_usage: true } });
for await (const chunk of stream) {
  streamed += chunk.choices[0]?.delta?.content ?? "";
  if (chunk.usage) usage = chunk.usage;
}
result.openaiStream = streamed;
result.openaiStreamUsage = usage;

const embedding = await openai.embeddings.create({ model, input: ["a cat", "a dog"] });
result.openaiEmbeddings = embedding.data.map(d => d.embedding.length);
result.openaiModels = (await openai.models.list()).data.map(m => m.id);

const ochat = await ollama.chat({ model, messages, options: { temperature: 0, num_predict: 12 } });
result.ollamaChat = ochat.message.content;
let ostreamed = "";
for await (const part of await ollama.chat({ model, messages, stream: true, options: { temperature: 0, num_predict: 12 } }))
  ostreamed += part.message.content;
result.ollamaStream = ostreamed;
result.ollamaModels = (await ollama.list()).models.map(m => m.name);
result.ollamaEmbed = (await ollama.embed({ model, input: "a cat" })).embeddings.map(e => e.length);

console.log(JSON.stringify(result));
