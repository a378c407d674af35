/**
 * Several suggestions (issue #19): the server answers an invoked request with up to
 * `completion.choices` items and VS Code cycles among them (Alt+] / Alt+[ ask again with the
 * invoked trigger). The extension's middleware returns what vscode-languageclient made of the
 * list; this checks that its converter keeps every item, in order, each with its own range and
 * accept command. A stand-in for the `vscode` module (the converter's only import of it is for
 * these classes) keeps it a plain Node test; the editor itself runs in tests/test_vscode_e2e.py.
 */
import assert from 'node:assert/strict';
import Module from 'node:module';
import * as path from 'node:path';
import { test } from 'node:test';

class Position {
  constructor(public line: number, public character: number) {}
}
class Range {
  start: Position;
  end: Position;
  constructor(sl: number, sc: number, el: number, ec: number) {
    this.start = new Position(sl, sc);
    this.end = new Position(el, ec);
  }
}
class InlineCompletionItem {
  constructor(public insertText: unknown, public range?: Range, public command?: unknown) {}
}
class InlineCompletionList {
  constructor(public items: InlineCompletionItem[]) {}
}
class SnippetString {
  constructor(public value: string) {}
}
const known: Record<string | symbol, unknown> = { Position, Range, InlineCompletionItem,
  InlineCompletionList, SnippetString, Uri: { parse: (value: string) => value } };
// The library's other modules subclass further `vscode` classes as they load: any class does.
const fakeVscode = new Proxy(known, {
  get: (target, key) => (key in target ? target[key] : class {}),
});

type Loader = (request: string, parent: unknown, isMain: boolean) => unknown;
const loader = Module as unknown as { _load: Loader };
const original = loader._load;
loader._load = function (request, parent, isMain) {
  return request === 'vscode' ? fakeVscode : original.call(this, request, parent, isMain);
};
// Compiled to out/test/; the package exports no subpath, so the file is named.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { createConverter } = require(path.resolve(__dirname, '..', '..', 'node_modules',
  'vscode-languageclient', 'lib', 'common', 'protocolConverter.js'));
loader._load = original;

test('every inline completion item the server answers reaches VS Code, in order', async () => {
  const range = { start: { line: 1, character: 4 }, end: { line: 1, character: 4 } };
  const texts = ['return sum(values) / len(values)', 'raise ValueError(values)',
    'total = sum(values)'];
  const list = {
    items: texts.map((insertText, i) => ({
      insertText, range,
      command: { title: 'ghostfill: accepted', command: 'ghostfill.accepted',
        arguments: ['model', i + 1] },
    })),
  };
  const converted = await createConverter(undefined, false, false, false)
    .asInlineCompletionResult(list);
  assert.ok(converted instanceof InlineCompletionList);
  assert.deepEqual(converted.items.map((i: InlineCompletionItem) => i.insertText), texts);
  converted.items.forEach((item: InlineCompletionItem, i: number) => {
    assert.deepEqual(item.range, new Range(1, 4, 1, 4));
    assert.deepEqual(item.command, { title: 'ghostfill: accepted', command: 'ghostfill.accepted',
      arguments: ['model', i + 1] });
  });
});
