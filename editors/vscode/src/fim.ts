/**
 * "ghostfill: Fill In the Middle": fill the hole at the cursor, or replace the selection, with
 * the model's middle (`ghostfill/fim`).
 *
 * The request form is used rather than the server's `ghostfill.fim` command (which applies the
 * edit itself through workspace/applyEdit) so that an answer that arrives after the user typed
 * on is dropped instead of landing in the wrong place.
 */
import * as vscode from 'vscode';
import type { LanguageClient } from 'vscode-languageclient/node';
import { FIM_METHOD } from './session';

interface FimResult {
  text: string;
  range: { start: { line: number; character: number }; end: { line: number; character: number } };
}

export async function fillInTheMiddle(client: LanguageClient | undefined): Promise<void> {
  const editor = vscode.window.activeTextEditor;
  if (!editor) {
    return;
  }
  if (!client?.isRunning()) {
    void vscode.window.showWarningMessage('ghostfill: the server is not running.');
    return;
  }
  const document = editor.document;
  const selection = editor.selection;
  const c2p = client.code2ProtocolConverter;
  const params = {
    textDocument: c2p.asTextDocumentIdentifier(document),
    ...(selection.isEmpty
      ? { position: c2p.asPosition(selection.active) }
      : { range: c2p.asRange(selection) }),
  };
  const version = document.version;
  let result: FimResult | null;
  try {
    result = await vscode.window.withProgress(
      { location: vscode.ProgressLocation.Notification, title: 'ghostfill: filling…', cancellable: true },
      (_progress, token) => client.sendRequest<FimResult | null>(FIM_METHOD, params, token),
    );
  } catch (e) {
    if (e instanceof Error && /cancel/i.test(e.message)) {
      return;
    }
    void vscode.window.showErrorMessage(`ghostfill: ${e instanceof Error ? e.message : String(e)}`);
    return;
  }
  if (!result || typeof result.text !== 'string') {
    return;
  }
  if (document.version !== version) {
    void vscode.window.showWarningMessage('ghostfill: the document changed while filling; nothing applied.');
    return;
  }
  if (result.text === '') {
    void vscode.window.showInformationMessage('ghostfill: the model had nothing to fill here.');
    return;
  }
  const range = client.protocol2CodeConverter.asRange(result.range);
  await editor.edit((edit) => edit.replace(range, result.text));
}
