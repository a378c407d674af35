/**
 * One running ghostfill server and everything tied to its life: the language client, the
 * status bar item, and the settings it was started with.
 *
 * Inline completion itself is vscode-languageclient's (LSP 3.18 `textDocument/inlineCompletion`,
 * a default feature since v10); the middleware here only gates automatic requests on the
 * `ghostfill.enable` switch, times them for the status bar, and keeps the server's popup
 * completion fallback out of VS Code, which has ghost text.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as vscode from 'vscode';
import {
  DidChangeConfigurationNotification,
  LanguageClient,
  type LanguageClientOptions,
  type ServerOptions,
  State,
} from 'vscode-languageclient/node';
import { resolveServer } from './serverCommand';
import { buildServerOptions, needsRestart, type ServerOptions as GhostfillOptions } from './settings';
import {
  applyProgress,
  applyStats,
  initialStatus,
  statusBarText,
  type ProgressValue,
  type Stats,
  type Status,
} from './status';

export const STATS_METHOD = 'ghostfill/stats';
export const FIM_METHOD = 'ghostfill/fim';
export const SUGGESTION_READY = 'ghostfill/suggestionReady';

interface ReadyParams {
  textDocument: { uri: string; version: number };
  position: { line: number; character: number };
}

function isExecutable(file: string): boolean {
  try {
    if (!fs.statSync(file).isFile()) {
      return false;
    }
    fs.accessSync(file, fs.constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function config(): vscode.WorkspaceConfiguration {
  return vscode.workspace.getConfiguration('ghostfill');
}

export function serverOptionsFromSettings(): GhostfillOptions {
  const c = config();
  return buildServerOptions((key) => c.get(key));
}

export class Session implements vscode.Disposable {
  client: LanguageClient | undefined;
  status: Status = initialStatus(true);
  private readonly statusBar: vscode.StatusBarItem;
  private readonly disposables: vscode.Disposable[] = [];
  private pollTimer: NodeJS.Timeout | undefined;

  constructor(private readonly output: vscode.LogOutputChannel) {
    this.statusBar = vscode.window.createStatusBarItem(vscode.StatusBarAlignment.Right, 100);
    this.statusBar.command = 'ghostfill.showStats';
    this.statusBar.name = 'ghostfill';
    this.disposables.push(
      this.statusBar,
      vscode.workspace.onDidChangeConfiguration((e) => this.onConfigurationChanged(e)),
    );
    this.update({ ...this.status, enabled: this.enabled });
    this.statusBar.show();
  }

  get enabled(): boolean {
    return config().get<boolean>('enable', true);
  }

  update(status: Status): void {
    this.status = status;
    const { text, tooltip } = statusBarText(status);
    this.statusBar.text = text;
    this.statusBar.tooltip = tooltip;
  }

  async start(): Promise<void> {
    const c = config();
    const resolved = resolveServer(c.get<string>('serverPath', ''), c.get<string[]>('serverArgs', []), {
      platform: process.platform,
      env: process.env,
      homedir: os.homedir(),
      isExecutable,
    });
    if (!resolved.ok) {
      this.update({ ...this.status, state: 'error', error: resolved.message });
      const choice = await vscode.window.showErrorMessage(resolved.message, 'Open Settings');
      if (choice === 'Open Settings') {
        await vscode.commands.executeCommand('workbench.action.openSettings', 'ghostfill.serverPath');
      }
      return;
    }
    this.output.info(`starting ${resolved.command} ${resolved.args.join(' ')}`);
    // No `transport`: TransportKind.stdio would append `--stdio`, which `ghostfill serve`
    // rejects; a plain executable talks over stdio anyway.
    const serverOptions: ServerOptions = { command: resolved.command, args: resolved.args };
    const languages = c.get<string[]>('documentSelector', []);
    const clientOptions: LanguageClientOptions = {
      documentSelector: languages.flatMap((language) => [
        { scheme: 'file', language },
        { scheme: 'untitled', language },
      ]),
      initializationOptions: serverOptionsFromSettings(),
      outputChannel: this.output,
      middleware: this.middleware(),
    };
    this.client = new LanguageClient('ghostfill', 'ghostfill', serverOptions, clientOptions);
    // The server announces answers its latency budget could not wait for (a line cut at the
    // deadline, a window still being read); asking again then shows them from its cache.
    this.client.registerFeature({
      fillClientCapabilities: (capabilities) => {
        capabilities.experimental = {
          ...(capabilities.experimental as object | undefined),
          ghostfillSuggestionReady: true,
        };
      },
      initialize: () => undefined,
      getState: () => ({ kind: 'static' }),
      clear: () => undefined,
    });
    this.disposables.push(this.client.onNotification(SUGGESTION_READY, (params: ReadyParams) =>
      void this.onSuggestionReady(params)));
    this.disposables.push(this.client.onDidChangeState((e) => {
      if (e.newState === State.Stopped) {
        this.update({ ...this.status, state: this.status.state === 'error' ? 'error' : 'stopped' });
      }
    }));
    this.update({ ...initialStatus(this.enabled), state: 'starting' });
    try {
      await this.client.start();
    } catch (e) {
      const message = e instanceof Error ? e.message : String(e);
      this.update({ ...this.status, state: 'error', error: message });
      return;
    }
    await this.refreshStats();
  }

  private middleware(): LanguageClientOptions['middleware'] {
    return {
      handleWorkDoneProgress: (token, params, next) => {
        if (typeof token === 'string' && token.startsWith('ghostfill/load')) {
          this.update(applyProgress(this.status, params as ProgressValue));
          if (params.kind === 'end') {
            void this.refreshStats();
          }
        }
        next(token, params);
      },
      provideInlineCompletionItems: async (document, position, context, token, next) => {
        const automatic = context.triggerKind === vscode.InlineCompletionTriggerKind.Automatic;
        if (automatic && !this.enabled) {
          return undefined;
        }
        const started = Date.now();
        const result = await next(document, position, context, token);
        const items = Array.isArray(result) ? result : result?.items;
        // A latency is shown for suggestions, not for empty answers.
        if (!token.isCancellationRequested && items && items.length > 0) {
          this.update({ ...this.status, latencyMs: Date.now() - started });
        }
        return result;
      },
      // The server's popup completion is a fallback for editors without ghost text; here it
      // would only ask the model twice per keystroke.
      provideCompletionItem: () => undefined,
      workspace: {
        // Answer workspace/configuration for "ghostfill" with the server's options only, not
        // the extension's own settings (the server rejects unknown keys).
        configuration: async (params, token, next) => {
          const answers = await next(params, token);
          if (!Array.isArray(answers)) {
            return answers;
          }
          return params.items.map((item, i) =>
            item.section === 'ghostfill' ? serverOptionsFromSettings() : answers[i]);
        },
      },
    };
  }

  /** `ghostfill/suggestionReady`: ask again if the editor is still where it was asked. */
  private async onSuggestionReady(params: ReadyParams): Promise<void> {
    const editor = vscode.window.activeTextEditor;
    if (!editor || !this.enabled) {
      return;
    }
    const doc = editor.document;
    const at = editor.selection.active;
    if (doc.uri.toString() !== vscode.Uri.parse(params.textDocument.uri).toString()
      || doc.version !== params.textDocument.version
      || at.line !== params.position.line || at.character !== params.position.character) {
      return;
    }
    await vscode.commands.executeCommand('editor.action.inlineSuggest.trigger');
  }

  /** Ask the server for its stats; while the model loads, ask again every second. */
  async refreshStats(): Promise<Stats | undefined> {
    const client = this.client;
    if (!client || !client.isRunning()) {
      return undefined;
    }
    try {
      const stats = await client.sendRequest<Stats>(STATS_METHOD, null);
      this.update(applyStats({ ...this.status, enabled: this.enabled }, stats));
      clearTimeout(this.pollTimer);
      if (stats.state === 'loading') {
        this.pollTimer = setTimeout(() => void this.refreshStats(), 1000);
      }
      return stats;
    } catch (e) {
      this.output.warn(`${STATS_METHOD} failed: ${e instanceof Error ? e.message : String(e)}`);
      return undefined;
    }
  }

  private async onConfigurationChanged(e: vscode.ConfigurationChangeEvent): Promise<void> {
    if (!e.affectsConfiguration('ghostfill')) {
      return;
    }
    if (e.affectsConfiguration('ghostfill.enable')) {
      this.update({ ...this.status, enabled: this.enabled });
    }
    if (needsRestart((key) => e.affectsConfiguration(`ghostfill.${key}`))) {
      await this.restart();
      return;
    }
    const client = this.client;
    if (client?.isRunning()) {
      await client.sendNotification(DidChangeConfigurationNotification.type, {
        settings: { ghostfill: serverOptionsFromSettings() },
      });
      await this.refreshStats();
    }
  }

  async stop(): Promise<void> {
    clearTimeout(this.pollTimer);
    const client = this.client;
    this.client = undefined;
    if (client) {
      await client.stop().catch(() => undefined);
      await client.dispose().catch(() => undefined);
    }
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.start();
  }

  dispose(): void {
    void this.stop();
    for (const d of this.disposables) {
      d.dispose();
    }
  }
}
