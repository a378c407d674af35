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
import { DID_FOCUS, FocusPlanner, REST_MS, type FocusParams, type FocusPosition } from './focus';
import { resolveServer } from './serverCommand';
import { TRACE_SETTING, TraceChannel } from './trace';
import { planWithWordList } from './wordList';
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

/** How a server process ended, in words. */
export function describeExit(code: number | null, signal: NodeJS.Signals | null): string {
  if (signal) {
    return `was killed by signal ${signal}`;
  }
  return code === 0 ? 'exited' : `exited with code ${code}`;
}

/** A document changed this recently counts as being typed in (see wordList.ts). */
const TYPING_MS = 1500;

export class Session implements vscode.Disposable {
  client: LanguageClient | undefined;
  status: Status = initialStatus(true);
  private readonly statusBar: vscode.StatusBarItem;
  private readonly disposables: vscode.Disposable[] = [];
  private pollTimer: NodeJS.Timeout | undefined;
  private readonly trace = new TraceChannel(() => config().get(TRACE_SETTING));
  /** Set while the extension itself stops the server: that exit is no news. */
  private stopping = false;
  private readonly watched = new WeakSet<object>();
  /** Last text change per document (uri → ms), and the last word list entry asked about. */
  private readonly changedAt = new Map<string, number>();
  private lastSelected: { key: string; text: string } | undefined;
  /** The document version a ghostfill/suggestionReady re-request is for. */
  private readyKey: string | undefined;
  /** Set until VS Code makes the request our own re-trigger after suggestionReady causes. */
  private retriggered: string | undefined;

  constructor(private readonly output: vscode.LogOutputChannel) {
    this.statusBar = vscode.window.createStatusBarItem(vscode.StatusBarAlignment.Right, 100);
    this.statusBar.command = 'ghostfill.showStats';
    this.statusBar.name = 'ghostfill';
    this.disposables.push(
      this.statusBar,
      vscode.workspace.onDidChangeConfiguration((e) => this.onConfigurationChanged(e)),
      vscode.workspace.onDidChangeTextDocument((e) => {
        if (e.contentChanges.length) {
          this.changedAt.set(e.document.uri.toString(), Date.now());
        }
      }),
      vscode.workspace.onDidCloseTextDocument((d) => this.changedAt.delete(d.uri.toString())),
      this.trace,
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
    const selector = languages.flatMap((language) => [
      { scheme: 'file', language },
      { scheme: 'untitled', language },
    ]);
    const clientOptions: LanguageClientOptions = {
      documentSelector: selector,
      initializationOptions: serverOptionsFromSettings(),
      outputChannel: this.output,
      traceOutputChannel: this.trace,
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
    const client = this.client;
    this.disposables.push(client.onDidChangeState((e) => {
      if (e.newState === State.Stopped) {
        this.update({ ...this.status, state: this.status.state === 'error' ? 'error' : 'stopped' });
      } else if (e.newState === State.Running) {
        // Also after vscode-languageclient restarted a server that died.
        this.watchProcess(client);
        if (this.status.state === 'stopped') {
          this.update({ ...this.status, state: 'starting', error: undefined });
        }
      }
    }));
    this.update({ ...initialStatus(this.enabled), state: 'starting' });
    this.stopping = false;
    try {
      await client.start();
    } catch (e) {
      const message = e instanceof Error ? e.message : String(e);
      this.update({ ...this.status, state: 'error', error: message });
      return;
    }
    this.watchProcess(client);
    this.reportFocus(client, selector);
    await this.refreshStats();
  }

  /** `textDocument/didFocus` (focus.ts): where the cursor is, so the server warms it there. */
  private reportFocus(client: LanguageClient, selector: vscode.DocumentSelector): void {
    const planner = new FocusPlanner();
    const send = (params: FocusParams | undefined): void => {
      if (params !== undefined && client.isRunning()) {
        client.sendNotification(DID_FOCUS, params).catch(() => undefined);
      }
    };
    const wanted = (editor: vscode.TextEditor | undefined): editor is vscode.TextEditor =>
      editor !== undefined && vscode.languages.match(selector, editor.document) > 0;
    const at = (editor: vscode.TextEditor): FocusPosition => ({
      line: editor.selection.active.line, character: editor.selection.active.character });
    const uri = (editor: vscode.TextEditor): string => editor.document.uri.toString();
    const active = vscode.window.activeTextEditor;
    for (const editor of vscode.window.visibleTextEditors) {
      if (wanted(editor) && editor !== active) {
        send(planner.focused(uri(editor), at(editor), false));
      }
    }
    if (wanted(active)) {
      send(planner.focused(uri(active), at(active), true));
    }
    let resting: ReturnType<typeof setTimeout> | undefined;
    this.disposables.push(
      vscode.window.onDidChangeActiveTextEditor((editor) => {
        if (wanted(editor)) {
          send(planner.focused(uri(editor), at(editor), true));
        }
      }),
      vscode.window.onDidChangeTextEditorSelection((e) => {
        const editor = e.textEditor;
        if (editor !== vscode.window.activeTextEditor || !wanted(editor)) {
          return;
        }
        clearTimeout(resting);
        resting = setTimeout(() => send(planner.rested(uri(editor), at(editor))), REST_MS);
      }),
      vscode.workspace.onDidCloseTextDocument((d) => planner.closed(d.uri.toString())),
      { dispose: () => clearTimeout(resting) },
    );
  }

  /**
   * Tell the user when the server process dies under them (a crash, a signal, the OOM killer):
   * vscode-languageclient restarts it (up to 4 times in 3 minutes) but says nothing.
   */
  private watchProcess(client: LanguageClient): void {
    const proc = client.serverProcess;
    if (!proc || this.watched.has(proc)) {
      return;
    }
    this.watched.add(proc);
    proc.once('exit', (code, signal) => {
      if (this.stopping || this.client !== client) {
        return;
      }
      const what = `the server ${describeExit(code, signal)}`;
      this.output.error(`${what} (pid ${proc.pid})`);
      this.update({ ...this.status, state: 'stopped', error: what, latencyMs: undefined });
      void vscode.window.showWarningMessage(
        `ghostfill: ${what}; restarting it. See Output → ghostfill for its last words.`, 'Show Log',
      ).then((choice) => {
        if (choice === 'Show Log') {
          this.output.show(true);
        }
      });
    });
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
        const key = `${document.uri.toString()}@${document.version}`;
        if (this.retriggered !== undefined && this.retriggered === key
          && context.triggerKind === vscode.InlineCompletionTriggerKind.Invoke) {
          // Our re-trigger after suggestionReady (VS Code's trigger command is always
          // explicit): the suggestion waits in the server's cache. Asked as a keystroke asks,
          // it comes at once, alone; as an invoked request the server would first look for
          // completion.choices of them. The price: VS Code takes this list for an explicit
          // one, so Alt+] at this place asks no more (seen in tests/test_vscode_e2e.py's
          // editor); after the next keystroke it does.
          context = { ...context, triggerKind: vscode.InlineCompletionTriggerKind.Automatic };
        }
        this.retriggered = undefined;
        const result = await this.inlineWithWordList(document, position, context, token, next);
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

  /** See wordList.ts: ghost text while the word list is open. */
  private async inlineWithWordList(
    document: vscode.TextDocument, position: vscode.Position,
    context: vscode.InlineCompletionContext, token: vscode.CancellationToken,
    next: (document: vscode.TextDocument, position: vscode.Position,
      context: vscode.InlineCompletionContext, token: vscode.CancellationToken)
      => vscode.ProviderResult<vscode.InlineCompletionItem[] | vscode.InlineCompletionList>,
  ): Promise<vscode.InlineCompletionItem[] | vscode.InlineCompletionList | null | undefined> {
    const selected = context.selectedCompletionInfo;
    // `editor.inlineSuggest.suppressSuggestions` (on by default with this extension, see
    // package.json) says ghost text comes before the list; off, the model continues the
    // selected entry, as VS Code's protocol has it.
    const preferGhost = vscode.workspace.getConfiguration('editor', document)
      .get<boolean>('inlineSuggest.suppressSuggestions', false);
    if (!selected || !preferGhost) {
      return next(document, position, context, token);
    }
    const key = `${document.uri.toString()}@${document.version}`;
    // Same text, another entry selected: the user is moving through the list.
    const choosing = this.lastSelected?.key === key && this.lastSelected.text !== selected.text;
    this.lastSelected = { key, text: selected.text };
    const typing = Date.now() - (this.changedAt.get(document.uri.toString()) ?? 0) < TYPING_MS;
    const fromTyping = !choosing
      && ((context.triggerKind === vscode.InlineCompletionTriggerKind.Automatic && typing)
        || this.readyKey === key);
    const plainContext: vscode.InlineCompletionContext = {
      triggerKind: context.triggerKind, selectedCompletionInfo: undefined,
    };
    const plain = await next(document, position, plainContext, token);
    if (token.isCancellationRequested) {
      return undefined;
    }
    const first = (Array.isArray(plain) ? plain : plain?.items)?.[0];
    const plainText = first && typeof first.insertText === 'string'
      && (!first.range || first.range.start.isEqual(position)) ? first.insertText : undefined;
    const plan = planWithWordList({
      typed: document.getText(new vscode.Range(selected.range.start, position)),
      selected: selected.text,
      plain: plainText,
      fromTyping,
    });
    this.output.debug(`word list open on "${selected.text}": ${plan.kind}`);
    switch (plan.kind) {
      case 'extend':
        return [new vscode.InlineCompletionItem(plan.insertText,
          new vscode.Range(selected.range.start, first?.range?.end ?? position), first?.command)];
      case 'hide':
        // VS Code asks again without the list; that answer comes from the server's cache.
        await vscode.commands.executeCommand('hideSuggestWidget');
        return plain;
      case 'continue':
        return next(document, position, context, token);
      case 'none':
        return plain;
    }
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
    this.readyKey = `${doc.uri.toString()}@${doc.version}`;
    this.retriggered = this.readyKey;
    try {
      // The command resolves once VS Code has fetched; a request after that is the user's.
      await vscode.commands.executeCommand('editor.action.inlineSuggest.trigger');
    } finally {
      this.retriggered = undefined;
    }
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
    if (e.affectsConfiguration(`ghostfill.${TRACE_SETTING}`)) {
      this.trace.refresh();
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
      this.output.info('settings changed: sent to the server');
      await this.refreshStats();
    }
  }

  async stop(): Promise<void> {
    clearTimeout(this.pollTimer);
    const client = this.client;
    this.client = undefined;
    this.stopping = true;
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
