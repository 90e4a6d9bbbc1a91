// End-to-end: the official `openai` npm SDK (the client users actually have) against a real
// tcnode started with the default config. Run by CTest as `node --test tests/e2e/` with
// TC_BIN_DIR and TC_SOURCE_DIR in the environment.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import OpenAI from 'openai';

const here = path.dirname(fileURLToPath(import.meta.url));
const sourceDir = process.env.TC_SOURCE_DIR || path.resolve(here, '..', '..');
const binDir = process.env.TC_BIN_DIR || path.join(sourceDir, 'build', 'bin');
const tcnode = path.join(binDir, 'tcnode');
const readyTimeoutMs = 15000;

/** Starts tcnode on port 0 and resolves once its ready line is read. */
function startNode(configPath) {
  return new Promise((resolve, reject) => {
    const child = spawn(
      tcnode,
      ['--config', configPath, '--listen', '127.0.0.1:0', '--admin-listen', '127.0.0.1:0'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stderr = '';
    let stdout = '';
    let settled = false;
    const fail = (err) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      reject(err);
    };
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      fail(new Error(`no ready line from ${tcnode} within ${readyTimeoutMs} ms; stderr: ${stderr}`));
    }, readyTimeoutMs);
    child.stderr.on('data', (d) => {
      stderr = (stderr + d).slice(-8000);
    });
    child.stdout.on('data', (d) => {
      stdout += d;
      const m = stdout.match(/^ready data=(\S+) admin=(\S+)$/m);
      if (m && !settled) {
        settled = true;
        clearTimeout(timer);
        resolve({ child, data: m[1], admin: m[2], stdout: () => stdout, stderr: () => stderr });
      }
    });
    child.on('error', fail);
    child.on('exit', (code, signal) =>
      fail(new Error(`tcnode exited (${code ?? signal}) before ready; stderr: ${stderr}`)),
    );
  });
}

/** SIGTERM to the node's PID, SIGKILL after `graceMs`; resolves with { code, signal }. */
function stopNode(node, graceMs = 10000) {
  const { child } = node;
  if (child.exitCode !== null || child.signalCode !== null) {
    return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
  }
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal });
    });
    child.kill('SIGTERM');
  });
}

function clientFor(node) {
  return new OpenAI({ baseURL: `http://${node.data}/v1`, apiKey: 'unused', maxRetries: 0, timeout: 20000 });
}

/** Asserts that `promise` rejects with an instance of `cls`; returns the error. */
async function rejectsWith(promise, cls) {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof cls, `expected ${cls.name}, got ${err?.constructor?.name}: ${err?.message}`);
    return err;
  }
  assert.fail(`expected ${cls.name}, but the call succeeded`);
}

const weatherTool = {
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'Current weather of a city',
    parameters: {
      type: 'object',
      properties: {
        city: { type: 'string' },
        days: { type: 'integer' },
        unit: { type: 'string', enum: ['c', 'f'] },
      },
      required: ['city'],
    },
  },
};

describe('openai SDK against tcnode (default config)', () => {
  let node;
  let client;

  before(async () => {
    node = await startNode(path.join(sourceDir, 'config', 'tokenschain.toml'));
    client = clientFor(node);
  });

  after(async () => {
    if (node) await stopNode(node);
  });

  test('models.list() lists the default models', { timeout: 30000 }, async () => {
    const ids = [];
    for await (const m of client.models.list()) ids.push(m.id);
    for (const id of ['sim-chat', 'sim-chat-large', 'sim-embed']) assert.ok(ids.includes(id), `${id} in ${ids}`);
    const one = (await client.models.list()).data.find((m) => m.id === 'sim-chat');
    assert.equal(one.object, 'model');
  });

  test('chat completion, not streamed', { timeout: 30000 }, async () => {
    const { data, response } = await client.chat.completions
      .create({
        model: 'sim-chat',
        messages: [
          { role: 'system', content: 'You are terse.' },
          { role: 'user', content: 'Say hello to the gateway.' },
        ],
        max_tokens: 16,
      })
      .withResponse();
    assert.equal(response.status, 200);
    assert.ok(response.headers.get('x-request-id'), 'x-request-id header');
    assert.equal(data.object, 'chat.completion');
    assert.equal(data.model, 'sim-chat');
    assert.ok(data.id);
    assert.equal(data.choices.length, 1);
    assert.equal(data.choices[0].message.role, 'assistant');
    assert.ok(data.choices[0].message.content.length > 0);
    assert.ok(['stop', 'length'].includes(data.choices[0].finish_reason));
    assert.ok(data.usage.prompt_tokens > 0);
    assert.ok(data.usage.completion_tokens > 0 && data.usage.completion_tokens <= 16);
    assert.equal(data.usage.total_tokens, data.usage.prompt_tokens + data.usage.completion_tokens);
  });

  test('chat completion, streamed', { timeout: 30000 }, async () => {
    const stream = await client.chat.completions.create({
      model: 'sim-chat',
      messages: [{ role: 'user', content: 'Stream a short answer.' }],
      max_tokens: 20,
      stream: true,
    });
    let content = '';
    let chunks = 0;
    const finishReasons = [];
    let roles = 0;
    for await (const chunk of stream) {
      chunks += 1;
      assert.equal(chunk.object, 'chat.completion.chunk');
      assert.ok(!chunk.usage, 'no usage chunk unless asked');
      for (const choice of chunk.choices) {
        if (choice.delta.role) roles += 1;
        content += choice.delta.content ?? '';
        if (choice.finish_reason) finishReasons.push(choice.finish_reason);
      }
    }
    assert.ok(chunks >= 2, `chunks: ${chunks}`);
    assert.ok(content.length > 0);
    assert.equal(roles, 1, 'the role comes once, in the first delta');
    assert.equal(finishReasons.length, 1);
    assert.ok(['stop', 'length'].includes(finishReasons[0]));
  });

  test('streamed with stream_options.include_usage', { timeout: 30000 }, async () => {
    const stream = await client.chat.completions.create({
      model: 'sim-chat',
      messages: [{ role: 'user', content: 'Count the tokens of this stream.' }],
      max_tokens: 24,
      stream: true,
      stream_options: { include_usage: true },
    });
    const chunks = [];
    for await (const chunk of stream) chunks.push(chunk);
    const last = chunks.at(-1);
    assert.ok(last.usage, 'the last chunk carries usage');
    assert.deepEqual(last.choices, []);
    assert.equal(chunks.filter((c) => c.usage).length, 1, 'exactly one usage chunk');
    const contentChunks = chunks.filter((c) => c.choices.some((ch) => ch.delta.content)).length;
    const { prompt_tokens: p, completion_tokens: c, total_tokens: t } = last.usage;
    assert.ok(c > 0 && c <= 24, `completion_tokens ${c}`);
    assert.ok(c >= contentChunks, `completion_tokens ${c} >= content chunks ${contentChunks}`);
    assert.ok(p > 0);
    assert.equal(t, p + c);
  });

  test('the SDK stream helper assembles a final completion', { timeout: 30000 }, async () => {
    const runner = client.beta.chat.completions.stream({
      model: 'sim-chat',
      messages: [{ role: 'user', content: 'Assemble me.' }],
      max_tokens: 12,
    });
    let deltas = '';
    runner.on('content', (delta) => {
      deltas += delta;
    });
    const final = await runner.finalChatCompletion();
    assert.equal(final.choices[0].message.role, 'assistant');
    assert.equal(final.choices[0].message.content, deltas);
    assert.ok(deltas.length > 0);
  });

  test('tools: a tool call with JSON arguments, not streamed', { timeout: 30000 }, async () => {
    const res = await client.chat.completions.create({
      model: 'sim-chat',
      messages: [{ role: 'user', content: 'What is the weather in Hangzhou?' }],
      tools: [weatherTool],
      tool_choice: 'auto',
    });
    const choice = res.choices[0];
    assert.equal(choice.finish_reason, 'tool_calls');
    assert.equal(choice.message.tool_calls.length, 1);
    const call = choice.message.tool_calls[0];
    assert.equal(call.type, 'function');
    assert.ok(call.id);
    assert.equal(call.function.name, 'get_weather');
    const args = JSON.parse(call.function.arguments);
    assert.equal(typeof args.city, 'string');

    // After the tool's result the model answers in text.
    const followUp = await client.chat.completions.create({
      model: 'sim-chat',
      messages: [
        { role: 'user', content: 'What is the weather in Hangzhou?' },
        choice.message,
        { role: 'tool', tool_call_id: call.id, content: '{"temp_c": 21}' },
      ],
      tools: [weatherTool],
    });
    assert.equal(followUp.choices[0].finish_reason === 'tool_calls', false);
    assert.ok(followUp.choices[0].message.content.length > 0);
  });

  test('tools: a tool call streamed in pieces', { timeout: 30000 }, async () => {
    const stream = await client.chat.completions.create({
      model: 'sim-chat',
      messages: [{ role: 'user', content: 'Weather in Shenzhen, please.' }],
      tools: [weatherTool],
      tool_choice: { type: 'function', function: { name: 'get_weather' } },
      stream: true,
    });
    const calls = new Map();
    let finish = null;
    for await (const chunk of stream) {
      for (const choice of chunk.choices) {
        for (const tc of choice.delta.tool_calls ?? []) {
          const cur = calls.get(tc.index) ?? { id: '', name: '', arguments: '' };
          if (tc.id) cur.id = tc.id;
          if (tc.function?.name) cur.name += tc.function.name;
          if (tc.function?.arguments) cur.arguments += tc.function.arguments;
          calls.set(tc.index, cur);
        }
        if (choice.finish_reason) finish = choice.finish_reason;
      }
    }
    assert.equal(finish, 'tool_calls');
    assert.equal(calls.size, 1);
    const call = calls.get(0);
    assert.ok(call.id);
    assert.equal(call.name, 'get_weather');
    const args = JSON.parse(call.arguments);
    assert.equal(typeof args.city, 'string');
  });

  test('completions (legacy endpoint)', { timeout: 30000 }, async () => {
    const res = await client.completions.create({ model: 'sim-chat', prompt: 'Once upon a time', max_tokens: 8 });
    assert.equal(res.object, 'text_completion');
    assert.ok(res.choices[0].text.length > 0);
    assert.ok(res.usage.completion_tokens > 0 && res.usage.completion_tokens <= 8);
  });

  test('embeddings: base64 (the SDK default) decodes to unit vectors', { timeout: 30000 }, async () => {
    const input = ['the first text', 'the second text'];
    const res = await client.embeddings.create({ model: 'sim-embed', input });
    assert.equal(res.object, 'list');
    assert.equal(res.data.length, 2);
    const asFloat = await client.embeddings.create({ model: 'sim-embed', input, encoding_format: 'float' });
    for (let i = 0; i < 2; i += 1) {
      const v = res.data[i].embedding;
      assert.equal(res.data[i].index, i);
      assert.ok(Array.isArray(v) && v.length > 0);
      assert.equal(v.length, asFloat.data[i].embedding.length);
      const norm = Math.sqrt(v.reduce((s, x) => s + x * x, 0));
      assert.ok(Math.abs(norm - 1) < 1e-3, `L2 norm ${norm}`);
      // base64 carries float32: the same vector as the JSON floats, to float32 precision.
      v.forEach((x, j) => assert.ok(Math.abs(x - asFloat.data[i].embedding[j]) < 1e-6));
    }
    assert.notDeepEqual(res.data[0].embedding, res.data[1].embedding);
    assert.ok(res.usage.prompt_tokens > 0);

    const small = await client.embeddings.create({ model: 'sim-embed', input: 'x', dimensions: 64 });
    assert.equal(small.data[0].embedding.length, 64);
  });

  test('400 is a BadRequestError naming the param', { timeout: 30000 }, async () => {
    const err = await rejectsWith(
      client.chat.completions.create({ model: 'sim-chat', messages: 'not an array' }),
      OpenAI.BadRequestError,
    );
    assert.equal(err.status, 400);
    assert.equal(err.type, 'invalid_request_error');
    assert.equal(err.param, 'messages');
    assert.ok(err.headers['x-request-id'], 'errors carry x-request-id too');

    const streamed = await rejectsWith(
      client.chat.completions.create({ model: 'sim-chat', messages: [{ role: 'user', content: 5 }], stream: true }),
      OpenAI.BadRequestError,
    );
    assert.equal(streamed.status, 400);
  });

  test('unknown model is a NotFoundError with code model_not_found', { timeout: 30000 }, async () => {
    const err = await rejectsWith(
      client.chat.completions.create({ model: 'no-such-model', messages: [{ role: 'user', content: 'hi' }] }),
      OpenAI.NotFoundError,
    );
    assert.equal(err.status, 404);
    assert.equal(err.code, 'model_not_found');
    await rejectsWith(client.embeddings.create({ model: 'no-such-model', input: 'x' }), OpenAI.NotFoundError);
  });

  test('SIGTERM stops the node with exit code 0', { timeout: 30000 }, async () => {
    const { code, signal } = await stopNode(node);
    assert.equal(signal, null, `stderr: ${node.stderr()}`);
    assert.equal(code, 0, `stderr: ${node.stderr()}`);
    assert.equal(node.stdout().trim().split('\n').length, 1, 'exactly one line on stdout');
  });
});

describe('openai SDK against tcnode with a small body limit', () => {
  let node;
  let dir;

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'tc-e2e-'));
    const config = path.join(dir, 'small.toml');
    writeFileSync(
      config,
      [
        '[server]',
        'listen = "127.0.0.1:0"',
        'admin_listen = "127.0.0.1:0"',
        'max_body_bytes = 4096',
        '[[providers]]',
        'name = "sim"',
        'type = "sim"',
        '[providers.sim]',
        'ttft_ms = 5.0',
        'tokens_per_sec = 2000.0',
        '[[providers.models]]',
        'name = "sim-chat"',
        '',
      ].join('\n'),
    );
    node = await startNode(config);
  });

  after(async () => {
    if (node) await stopNode(node);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('a body over max_body_bytes is an APIError with status 413', { timeout: 30000 }, async () => {
    const client = clientFor(node);
    const ok = await client.chat.completions.create({
      model: 'sim-chat',
      messages: [{ role: 'user', content: 'small' }],
      max_tokens: 4,
    });
    assert.equal(ok.object, 'chat.completion');
    const err = await rejectsWith(
      client.chat.completions.create({ model: 'sim-chat', messages: [{ role: 'user', content: 'x'.repeat(10000) }] }),
      OpenAI.APIError,
    );
    assert.equal(err.status, 413);
    assert.equal(err.code, 'request_too_large');
  });
});
