/**
 * Entry point: starts the ghostfill language server and registers the commands.
 *
 * Command ids avoid the server's own `workspace/executeCommand` names (`ghostfill.fim`,
 * `ghostfill.accepted`): vscode-languageclient registers those as VS Code commands itself, and
 * a second registration would fail. `ghostfill.accepted` is what VS Code runs when a suggestion
 * is accepted (the item's `command`), so the server counts it and prefetches the next one.
 */
import * as vscode from 'vscode';
import { fillInTheMiddle } from './fim';
import { Session } from './session';
import { formatStats, type Stats } from './status';

let session: Session | undefined;

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  const output = vscode.window.createOutputChannel('ghostfill', { log: true });
  session = new Session(output);
  const s = session;
  context.subscriptions.push(
    output,
    s,
    vscode.commands.registerCommand('ghostfill.trigger', () =>
      vscode.commands.executeCommand('editor.action.inlineSuggest.trigger')),
    vscode.commands.registerCommand('ghostfill.fillMiddle', () => fillInTheMiddle(s.client)),
    vscode.commands.registerCommand('ghostfill.showStats', () => showStats(s)),
    vscode.commands.registerCommand('ghostfill.toggle', async () => {
      const c = vscode.workspace.getConfiguration('ghostfill');
      await c.update('enable', !c.get<boolean>('enable', true), vscode.ConfigurationTarget.Global);
    }),
    vscode.commands.registerCommand('ghostfill.restart', () => s.restart()),
  );
  await s.start();
}

async function showStats(s: Session): Promise<void> {
  const stats: Stats | undefined = await s.refreshStats();
  if (!stats) {
    void vscode.window.showWarningMessage(
      `ghostfill: no statistics (${s.status.error ?? 'the server is not running'}).`);
    return;
  }
  const lines = formatStats(stats);
  void vscode.window.showInformationMessage(`ghostfill: ${stats.model ?? ''} ${stats.state ?? ''}`,
    { modal: true, detail: lines.join('\n') });
}

export async function deactivate(): Promise<void> {
  await session?.stop();
  session = undefined;
}
