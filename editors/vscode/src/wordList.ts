/**
 * Ghost text while VS Code's word list (the suggest widget) is open.
 *
 * With the defaults the word list opens on the first letter typed (`editor.quickSuggestions`),
 * and VS Code then asks for inline completions with `selectedCompletionInfo` and shows only an
 * item that extends the selected list entry over the same range. Asked that way, the model
 * continues whatever word the list happened to select first: after `m` in a function body the
 * user saw `math.sqrt(len(values)) / 2` (the list's `math`), not the `m = mean(values)` the
 * model writes when asked plainly, and Tab took only `math` from the list when the list had the
 * key first (measured in a real VS Code, e2e/run.mjs).
 *
 * `editor.inlineSuggest.suppressSuggestions` is VS Code's switch for "ghost text before the
 * list", but VS Code applies it only to a list that would open over ghost text already shown,
 * never to the first letter of a word. With it on (the extension's default, package.json), the
 * middleware asks the server the plain question first, and:
 *
 * - when the model's line starts with the selected entry, returns it over the entry's range, so
 *   VS Code shows it with the list open (`re` → list `return` → ghost `turn x`);
 * - when the model's line is something else and the list came up from typing, closes the list:
 *   VS Code asks again without it and shows the model's line (from the server's cache);
 * - when the user is choosing in the list (moving through it: same text, another entry), asks
 *   the server to continue the entry they chose.
 *
 * With the setting off, VS Code's protocol as is: the server continues the selected entry.
 * Pure functions, no `vscode` import, so they are unit-tested under Node.
 */

export type WordListPlan =
  /** Show the model's line over the selected entry's range. */
  | { kind: 'extend'; insertText: string }
  /** Close the list; VS Code asks again without it and shows the model's line. */
  | { kind: 'hide' }
  /** Ask the server to continue the selected entry. */
  | { kind: 'continue' }
  /** Nothing to show (yet: a late answer arrives through ghostfill/suggestionReady). */
  | { kind: 'none' };

export interface WordListInput {
  /** The document's text from the selected entry's range start to the cursor (the typed word). */
  typed: string;
  /** The selected entry's text. */
  selected: string;
  /** The plain answer's insert text at the cursor; undefined when it was empty. */
  plain: string | undefined;
  /** The list came up from typing (or a late answer is being shown), not from the user choosing. */
  fromTyping: boolean;
}

export function planWithWordList(input: WordListInput): WordListPlan {
  if (input.plain === undefined || input.plain === '') {
    // The budget cut the plain answer; the server finishes it and says so. Asking it to
    // continue the list's entry now would only compete with that for the model.
    return { kind: 'none' };
  }
  const line = input.typed + input.plain;
  if (line.startsWith(input.selected) && line.length > input.selected.length) {
    return { kind: 'extend', insertText: line };
  }
  return input.fromTyping ? { kind: 'hide' } : { kind: 'continue' };
}
