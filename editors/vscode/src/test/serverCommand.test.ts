import assert from 'node:assert/strict';
import { test } from 'node:test';
import { resolveServer, type Lookup, which } from '../serverCommand';

function lookup(executables: string[], env: Record<string, string> = {}, platform: NodeJS.Platform = 'linux'): Lookup {
  return {
    platform,
    env,
    homedir: '/home/u',
    isExecutable: (file) => executables.includes(file),
  };
}

test('finds ghostfill on PATH and runs `ghostfill serve`', () => {
  const r = resolveServer('', [], lookup(['/opt/bin/ghostfill'], { PATH: '/usr/bin:/opt/bin' }));
  assert.deepEqual(r, { ok: true, command: '/opt/bin/ghostfill', args: ['serve'] });
});

test('serverPath wins over PATH, with ~ expanded and extra arguments appended', () => {
  const r = resolveServer('~/.venv/bin/ghostfill', ['--offline'],
    lookup(['/home/u/.venv/bin/ghostfill', '/usr/bin/ghostfill'], { PATH: '/usr/bin' }));
  assert.deepEqual(r, { ok: true, command: '/home/u/.venv/bin/ghostfill', args: ['serve', '--offline'] });
});

test('a bare serverPath name is looked up on PATH', () => {
  const r = resolveServer('ghostfill-dev', [], lookup(['/usr/bin/ghostfill-dev'], { PATH: '/usr/bin' }));
  assert.equal(r.ok && r.command, '/usr/bin/ghostfill-dev');
});

test('a serverPath that is not executable is an error naming it', () => {
  const r = resolveServer('/nope/ghostfill', [], lookup([], { PATH: '/usr/bin' }));
  assert.equal(r.ok, false);
  assert.match(!r.ok ? r.message : '', /\/nope\/ghostfill/);
});

test('not on PATH: the error says how to fix it', () => {
  const r = resolveServer('', [], lookup([], { PATH: '/usr/bin' }));
  assert.equal(r.ok, false);
  assert.match(!r.ok ? r.message : '', /ghostfill\.serverPath/);
});

test('Windows: PATHEXT extensions and ; separators', () => {
  const found = which('ghostfill', lookup(['C:\\py\\Scripts/ghostfill.exe'],
    { Path: 'C:\\Windows;C:\\py\\Scripts', PATHEXT: '.COM;.EXE' }, 'win32'));
  assert.ok(found?.endsWith('ghostfill.exe'));
});
