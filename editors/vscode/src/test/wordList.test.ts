import assert from 'node:assert/strict';
import { test } from 'node:test';
import { planWithWordList } from '../wordList';

test('the model line that starts with the selected entry is shown over its range', () => {
  assert.deepEqual(
    planWithWordList({ typed: 're', selected: 'return', plain: 'turn total', fromTyping: true }),
    { kind: 'extend', insertText: 'return total' });
  // Even while the user moves through the list.
  assert.deepEqual(
    planWithWordList({ typed: 'm', selected: 'mean', plain: 'ean(values)', fromTyping: false }),
    { kind: 'extend', insertText: 'mean(values)' });
});

test('a model line that is something else closes a list that came up from typing', () => {
  assert.deepEqual(
    planWithWordList({ typed: 'm', selected: 'math', plain: ' = mean(values)', fromTyping: true }),
    { kind: 'hide' });
  // The entry alone is no line: the list's own item does that.
  assert.deepEqual(
    planWithWordList({ typed: 'ma', selected: 'math', plain: 'th', fromTyping: true }),
    { kind: 'hide' });
});

test('a user choosing in the list gets the chosen entry continued', () => {
  assert.deepEqual(
    planWithWordList({ typed: 'm', selected: 'mean', plain: ' = mean(values)', fromTyping: false }),
    { kind: 'continue' });
});

test('an empty plain answer waits for the late one', () => {
  for (const plain of [undefined, '']) {
    assert.deepEqual(
      planWithWordList({ typed: 'm', selected: 'math', plain, fromTyping: true }),
      { kind: 'none' });
  }
});
