import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FocusPlanner } from '../focus';

test('an editor coming to the front is reported with its cursor', () => {
  const planner = new FocusPlanner();
  assert.deepEqual(planner.focused('file:///a.py', { line: 180, character: 8 }, true), {
    textDocument: { uri: 'file:///a.py' }, position: { line: 180, character: 8 }, active: true });
  assert.deepEqual(planner.focused('file:///b.py', { line: 3, character: 0 }, false), {
    textDocument: { uri: 'file:///b.py' }, position: { line: 3, character: 0 }, active: false });
});

test('a resting cursor is reported once per line, typing on the line is not', () => {
  const planner = new FocusPlanner();
  planner.focused('file:///a.py', { line: 10, character: 4 }, true);
  assert.equal(planner.rested('file:///a.py', { line: 10, character: 9 }), undefined);
  assert.deepEqual(planner.rested('file:///a.py', { line: 200, character: 0 }), {
    textDocument: { uri: 'file:///a.py' }, position: { line: 200, character: 0 }, active: true });
  assert.equal(planner.rested('file:///a.py', { line: 200, character: 5 }), undefined);
  planner.closed('file:///a.py');
  assert.notEqual(planner.rested('file:///a.py', { line: 200, character: 5 }), undefined);
});
