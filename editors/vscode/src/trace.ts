/**
 * Where `ghostfill.trace.server` goes: an output channel, "ghostfill (trace)", that logs the LSP
 * messages as soon as the setting is on.
 *
 * vscode-languageclient 11 traces only while its trace channel's log level is Trace, whatever
 * `<id>.trace.server` says; with the default level (Info) the setting did nothing unless the
 * user also found "Set Log Level… → Trace" on the channel. This channel's level follows the
 * setting instead: Trace while it is `messages` or `verbose`, Info while `off`.
 */
import * as vscode from 'vscode';

export const TRACE_SETTING = 'trace.server';

export type TraceSetting = 'off' | 'messages' | 'verbose';

/** The level vscode-languageclient should see for a `ghostfill.trace.server` value. */
export function traceLevel(setting: unknown): vscode.LogLevel {
  return setting === 'messages' || setting === 'verbose'
    ? vscode.LogLevel.Trace : vscode.LogLevel.Info;
}

export class TraceChannel implements vscode.LogOutputChannel {
  readonly name = 'ghostfill (trace)';
  private channel: vscode.OutputChannel | undefined;
  private level: vscode.LogLevel;
  private readonly levelChanged = new vscode.EventEmitter<vscode.LogLevel>();
  readonly onDidChangeLogLevel = this.levelChanged.event;

  constructor(private readonly setting: () => unknown) {
    this.level = traceLevel(setting());
  }

  get logLevel(): vscode.LogLevel {
    return this.level;
  }

  /** Call when `ghostfill.trace.server` changes: the client turns its trace on or off. */
  refresh(): void {
    const level = traceLevel(this.setting());
    if (level !== this.level) {
      this.level = level;
      this.levelChanged.fire(level);
    }
  }

  private out(): vscode.OutputChannel {
    this.channel ??= vscode.window.createOutputChannel(this.name);
    return this.channel;
  }

  private write(kind: string, message: string): void {
    this.out().appendLine(`${new Date().toISOString()} [${kind}] ${message}`);
  }

  trace(message: string): void {
    if (this.level === vscode.LogLevel.Trace) {
      this.write('trace', message);
    }
  }

  debug(message: string): void {
    this.write('debug', message);
  }

  info(message: string): void {
    this.write('info', message);
  }

  warn(message: string): void {
    this.write('warning', message);
  }

  error(error: string | Error): void {
    this.write('error', error instanceof Error ? error.message : error);
  }

  append(value: string): void {
    this.out().append(value);
  }

  appendLine(value: string): void {
    this.out().appendLine(value);
  }

  replace(value: string): void {
    this.out().replace(value);
  }

  clear(): void {
    this.channel?.clear();
  }

  show(columnOrPreserveFocus?: vscode.ViewColumn | boolean, preserveFocus?: boolean): void {
    if (typeof columnOrPreserveFocus === 'boolean') {
      this.out().show(columnOrPreserveFocus);
    } else {
      this.out().show(columnOrPreserveFocus, preserveFocus);
    }
  }

  hide(): void {
    this.channel?.hide();
  }

  dispose(): void {
    this.levelChanged.dispose();
    this.channel?.dispose();
    this.channel = undefined;
  }
}
