// The JS SDK's responses.stream() helper resuming a background response whose stream broke at sequence K.
// Prints one JSON line: what the client saw, for tests/stack/test_openai_js.py to check.
import OpenAI from "openai";

const client = new OpenAI({ baseURL: process.env.OPENAI_BASE_URL, apiKey: process.env.OPENAI_API_KEY, maxRetries: 0 });
const brokenAt = Number(process.env.BROKEN_AT ?? "8");

const first = await client.responses.create({
  model: "generate",
  input: "It is a truth universally acknowledged",
  stream: true,
  background: true,
  stop: ["."],
  seed: 2,
});
const before = { numbers: [], deltas: [], id: "" };
for await (const event of first) {
  if (event.type === "response.created") before.id = event.response.id;
  before.numbers.push(event.sequence_number);
  if (event.type === "response.output_text.delta") before.deltas.push(event.delta);
  if (event.sequence_number >= brokenAt) break; // the connection drops mid-response
}
first.controller.abort();

const resumed = client.responses.stream({ response_id: before.id, starting_after: brokenAt });
const after = { numbers: [], deltas: [], types: [] };
for await (const event of resumed) {
  after.numbers.push(event.sequence_number);
  after.types.push(event.type);
  if (event.type === "response.output_text.delta") after.deltas.push(event.delta);
}
const final = await resumed.finalResponse();
console.log(JSON.stringify({ before, after, final: { id: final.id, status: final.status, text: final.output_text } }));
