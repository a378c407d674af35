import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { buildServerOptions, CLIENT_SETTINGS, needsRestart, SERVER_SETTINGS } from '../settings';

// Compiled to out/test/, so the extension folder is two levels up.
const EXTENSION_DIR = path.resolve(__dirname, '..', '..');
const REPO_DIR = path.resolve(EXTENSION_DIR, '..', '..');

test('settings become the nested initializationOptions object', () => {
  const values: Record<string, unknown> = {
    'model.name': 'decicoder-1b',
    'model.contextLength': null,
    'completion.maxTokens': 32,
    'completion.disabledLanguages': ['markdown'],
    'remote.headers': { 'X-Team': 'a' },
  };
  assert.deepEqual(buildServerOptions((key) => values[key]), {
    model: { name: 'decicoder-1b', contextLength: null },
    completion: { maxTokens: 32, disabledLanguages: ['markdown'] },
    remote: { headers: { 'X-Team': 'a' } },
  });
});

test('the extension\'s own settings are never sent to the server', () => {
  const options = buildServerOptions((key) => (CLIENT_SETTINGS.includes(key) ? 'x' : undefined));
  assert.deepEqual(options, {});
});

test('only server command settings restart the server', () => {
  assert.equal(needsRestart((key) => key === 'serverPath'), true);
  assert.equal(needsRestart((key) => key === 'documentSelector'), true);
  assert.equal(needsRestart((key) => key === 'model.name'), false);
  assert.equal(needsRestart((key) => key === 'enable'), false);
});

test('package.json contributes exactly the mapped settings, with defaults', () => {
  const pkg = JSON.parse(fs.readFileSync(path.join(EXTENSION_DIR, 'package.json'), 'utf8'));
  const properties: Record<string, { default?: unknown }> = pkg.contributes.configuration.properties;
  const contributed = Object.keys(properties).map((k) => k.replace(/^ghostfill\./, ''));
  assert.deepEqual(
    contributed.filter((k) => !CLIENT_SETTINGS.includes(k)).sort(),
    [...SERVER_SETTINGS].sort(),
  );
  for (const key of contributed) {
    assert.ok('default' in properties[`ghostfill.${key}`], `${key} has no default`);
  }
});

/** `field: type = default` lines of each `class XConfig` in ghostfill/config.py, camelCased. */
function serverConfigKeys(source: string): string[] {
  const sections: Record<string, string> = {
    ModelConfig: 'model', CompletionConfig: 'completion', ContextConfig: 'context',
    ServerConfig: 'server', RemoteConfig: 'remote',
  };
  const keys: string[] = [];
  for (const block of source.split(/^@dataclass/m)) {
    const m = /class (\w+):/.exec(block);
    const section = m && sections[m[1]];
    if (!section) {
      continue;
    }
    for (const line of block.split('\n')) {
      const field = /^ {4}([a-z_]+): [^=]+=/.exec(line);
      if (field) {
        keys.push(`${section}.${field[1].replace(/_([a-z])/g, (_s, c: string) => c.toUpperCase())}`);
      }
    }
  }
  return keys;
}

test('every server configuration key has a setting (ghostfill/config.py)', (t) => {
  const file = path.join(REPO_DIR, 'ghostfill', 'config.py');
  if (!fs.existsSync(file)) {
    t.skip('not inside the ghostfill repository');
    return;
  }
  const keys = serverConfigKeys(fs.readFileSync(file, 'utf8'));
  assert.ok(keys.length > 20, `parsed only ${keys.length} keys from config.py`);
  assert.deepEqual([...SERVER_SETTINGS].sort(), keys.sort());
});
