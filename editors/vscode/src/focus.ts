/**
 * Telling the server where the cursor is (`textDocument/didFocus`), so that it reads the window
 * there into the document's cache before the first keystroke: a prefix-only window ends at the
 * cursor, and one read at the end of a long file shares nothing with a keystroke in its middle.
 *
 * `textDocument/didFocus` is Copilot's language server's notification that the user is in a
 * document; ghostfill reads two fields of its own: `position` and `active` (false for an editor
 * that is visible but not the one typed in). Sent when the server starts (the visible editors,
 * the active one last), when the active editor changes, and when the cursor comes to rest on
 * another line (a jump, a search, a click): not for the moves typing makes.
 *
 * Pure planning here (which report, if any), so that it is tested without VS Code.
 */

export interface FocusPosition {
  line: number;
  character: number;
}

export interface FocusParams {
  textDocument: { uri: string };
  position: FocusPosition;
  active: boolean;
}

export const DID_FOCUS = 'textDocument/didFocus';
/** How long the cursor must rest on a new line before it is reported. */
export const REST_MS = 400;

/** Remembers the line last reported per document, so a resting cursor is reported once. */
export class FocusPlanner {
  private readonly lines = new Map<string, number>();

  /** The user is in this editor now (or it is visible, `active` false): always reported. */
  focused(uri: string, position: FocusPosition, active: boolean): FocusParams {
    this.lines.set(uri, position.line);
    return { textDocument: { uri }, position, active };
  }

  /** The cursor rests at `position` in the active editor: reported when its line changed. */
  rested(uri: string, position: FocusPosition): FocusParams | undefined {
    if (this.lines.get(uri) === position.line) {
      return undefined;
    }
    return this.focused(uri, position, true);
  }

  closed(uri: string): void {
    this.lines.delete(uri);
  }
}
