// Runs one scenario of an official SDK against the gateway and prints one JSON line with what the SDK returned
// or threw. Driven by tests/Unit/Gateway/SdkTests.cs: GATEWAY_URL, GATEWAY_TOKEN and GATEWAY_MODEL come from there.
// Usage: node sdk.mjs <openai|anthropic|ollama> <plain|stream|generate|generate-stream>
import OpenAI from 'openai';
import Anthropic from '@anthropic-ai/sdk';
import { Ollama } from 'ollama';

const [sdk, mode] = process.argv.slice(2);
const url = process.env.GATEWAY_URL;
const token = process.env.GATEWAY_TOKEN ?? '';
const model = process.env.GATEWAY_MODEL ?? 'ollamacontinuity';
const prompt = process.env.GATEWAY_PROMPT ?? 'hello gateway';

function describe(e) {
  return {
    name: e?.constructor?.name ?? typeof e,
    status: e?.status ?? e?.status_code ?? null,
    code: e?.code ?? e?.error?.error?.code ?? null,
    type: e?.type ?? e?.error?.error?.type ?? null,
    message: String(e?.message ?? e),
    isApiError: e instanceof OpenAI.APIError || e instanceof Anthropic.APIError,
  };
}

async function run() {
  if (sdk === 'openai') {
    // No retries: the test counts the gateway's requests.
    const client = new OpenAI({ baseURL: url + '/v1', apiKey: token, maxRetries: 0 });
    if (mode === 'stream') {
      const { data: stream, response } = await client.chat.completions
        .create({ model, stream: true, stream_options: { include_usage: true }, messages: [{ role: 'user', content: prompt }] })
        .withResponse();
      let text = '';
      let chunks = 0;
      for await (const chunk of stream) {
        chunks++;
        text += chunk.choices[0]?.delta?.content ?? '';
      }
      return { text, chunks, backend: response.headers.get('x-ollamacontinuity-backend'), reason: response.headers.get('x-ollamacontinuity-failover-reason') };
    }
    const { data, response } = await client.chat.completions
      .create({ model, messages: [{ role: 'system', content: 'be brief' }, { role: 'user', content: prompt }] })
      .withResponse();
    return { text: data.choices[0].message.content, finish: data.choices[0].finish_reason, backend: response.headers.get('x-ollamacontinuity-backend'), reason: response.headers.get('x-ollamacontinuity-failover-reason'), requestId: response.headers.get('x-ollamacontinuity-request-id') };
  }
  if (sdk === 'anthropic') {
    const client = new Anthropic({ baseURL: url, apiKey: token, maxRetries: 0 });
    if (mode === 'stream') {
      const stream = client.messages.stream({ model, max_tokens: 256, messages: [{ role: 'user', content: prompt }] });
      let text = '';
      let chunks = 0;
      stream.on('text', (t) => { text += t; chunks++; });
      const final = await stream.finalMessage();
      return { text, chunks, final: final.content[0].text, stop: final.stop_reason };
    }
    const { data, response } = await client.messages
      .create({ model, max_tokens: 256, system: 'be brief', messages: [{ role: 'user', content: prompt }] })
      .withResponse();
    return { text: data.content[0].text, stop: data.stop_reason, backend: response.headers.get('x-ollamacontinuity-backend'), reason: response.headers.get('x-ollamacontinuity-failover-reason') };
  }
  if (sdk === 'ollama') {
    const client = new Ollama({ host: url, headers: { Authorization: 'Bearer ' + token } });
    if (mode === 'stream') {
      let text = '';
      let chunks = 0;
      for await (const part of await client.chat({ model, stream: true, messages: [{ role: 'user', content: prompt }] })) {
        chunks++;
        text += part.message.content;
      }
      return { text, chunks };
    }
    if (mode === 'generate') {
      const r = await client.generate({ model, prompt, stream: false });
      return { text: r.response, done: r.done };
    }
    if (mode === 'generate-stream') {
      let text = '';
      for await (const part of await client.generate({ model, prompt, stream: true })) text += part.response;
      return { text };
    }
    const r = await client.chat({ model, messages: [{ role: 'user', content: prompt }] , stream: false });
    return { text: r.message.content, done: r.done };
  }
  throw new Error('unknown sdk ' + sdk);
}

try {
  const result = await run();
  console.log(JSON.stringify({ ok: true, ...result }));
} catch (e) {
  console.log(JSON.stringify({ ok: false, error: describe(e) }));
}
