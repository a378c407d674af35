import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  applyError, applyProgress, applyStats, formatStats, initialStatus, shortModelName, statusBarText,
} from '../status';

test('load progress shows in the status bar, then the model and latency', () => {
  let s = initialStatus(true);
  assert.equal(statusBarText(s).text, '$(loading~spin) ghostfill');
  s = applyProgress(s, { kind: 'begin', title: 'ghostfill', message: 'loading gemma3-270m' });
  assert.equal(statusBarText(s).text, '$(loading~spin) ghostfill loading');
  s = applyProgress(s, { kind: 'report', percentage: 40 });
  assert.equal(statusBarText(s).text, '$(loading~spin) ghostfill 40%');
  assert.match(statusBarText(s).tooltip, /loading gemma3-270m/);
  s = applyProgress(s, { kind: 'end', message: 'ready' });
  s = applyStats(s, { model: 'gemma3-270m', template: 'prefix-only', backend: 'llamacpp', state: 'ready' });
  assert.equal(statusBarText(s).text, '$(sparkle) ghostfill gemma3-270m');
  s = { ...s, latencyMs: 231.6 };
  assert.equal(statusBarText(s).text, '$(sparkle) ghostfill gemma3-270m 232 ms');
  assert.match(statusBarText(s).tooltip, /gemma3-270m \(template prefix-only\), backend llamacpp/);
});

test('a failed load stays an error after the progress ends', () => {
  let s = applyProgress(initialStatus(true), { kind: 'begin', title: 'ghostfill' });
  s = applyError(s, 'model file broken.gguf is not a GGUF file');
  s = applyProgress(s, { kind: 'end', message: 'ready' });
  assert.equal(s.state, 'error');
  assert.equal(statusBarText(s).text, '$(error) ghostfill');
  s = applyStats(s, { state: 'error', error: 'broken.gguf: bad magic' });
  assert.match(statusBarText(s).tooltip, /broken\.gguf: bad magic/);
});

test('the status bar names the model briefly', () => {
  assert.equal(shortModelName('gemma3-270m'), 'gemma3-270m');
  assert.equal(shortModelName('/home/me/models/qwen2.5-coder-1.5b-q8_0.gguf'), 'qwen2.5-coder-1.5b-q8_0');
  assert.equal(shortModelName('C:\\models\\starcoder2-3b.GGUF'), 'starcoder2-3b');
  assert.equal(shortModelName('Qwen/Qwen2.5-Coder-1.5B'), 'Qwen2.5-Coder-1.5B');
  const long = shortModelName('a-very-long-model-name-with-many-parts-q4_k_m.gguf');
  assert.equal(long.length, 32);
  assert.ok(long.endsWith('…'));
});

test('a stopped server shows as stopped, with why in the tooltip', () => {
  const s = { ...applyStats(initialStatus(true), { state: 'ready', model: 'gemma3-270m' }),
    state: 'stopped' as const, error: 'the server was killed by signal SIGKILL' };
  assert.equal(statusBarText(s).text, '$(debug-disconnect) ghostfill stopped');
  assert.match(statusBarText(s).tooltip, /killed by signal SIGKILL/);
});

test('toggled off shows as off once ready', () => {
  const s = applyStats(initialStatus(false), { state: 'ready', model: 'm' });
  assert.equal(statusBarText(s).text, '$(circle-slash) ghostfill');
  assert.match(statusBarText(s).tooltip, /Ghost text off/);
});

test('stats text', () => {
  const lines = formatStats({
    model: 'gemma3-270m', template: 'prefix-only', backend: 'llamacpp', state: 'ready', error: null,
    latency_ms: { p50: 120.4, p95: 300, count: 4 }, cache: { hits: 1, type_through: 2, misses: 3 },
    tokens: { evaluated: 10, reused: 20 }, suggestions: { shown: 4, accepted: 1 },
    warm_ups: { done: 3, short: 2, focus_reports: 5 }, context: { prompts: 9, short_windows: 4 },
    suffix_check: { ran: 2, changed: 1, blocks_ranked: 3, blocks_reordered: 2 },
  });
  assert.deepEqual(lines, [
    'Model: gemma3-270m (template prefix-only, backend llamacpp)',
    'State: ready',
    'Latency: p50 120 ms, p95 300 ms over 4 requests',
    'Cache: 1 hits, 2 type-through, 3 misses',
    'Tokens: 10 evaluated, 20 reused',
    'Suggestions: 4 shown, 1 accepted (25%)',
    'Warm-ups: 3 windows read ahead (2 short), 5 cursor reports',
    'Short windows: 4 suggestions asked while a file\'s full window was still being read',
    'Suffix check: 2 run, 1 changed the line',
    'Block ranking: 3 run, 2 put another block first',
  ]);
  assert.equal(formatStats({}).length, 6, 'an older server without some fields still formats');
});

test('stats text: what became of the suggestions, per language', () => {
  const lines = formatStats({
    feedback: { languages: { python: { shown: 4, accepted: 1, partial: 2, rejected: 1, chars_shown: 80, chars_kept: 30 } } },
  });
  assert.equal(lines[lines.length - 1],
    'python: 4 shown, 1 accepted, 2 in part, 1 typed over; 30/80 characters kept (38%)');
});
