/**
 * What the status bar item says, and the text of "ghostfill: Show Statistics".
 *
 * The state is folded from three sources: $/progress of the model load, `ghostfill/stats`
 * answers, and the round trip of each inline completion request. Pure functions over plain
 * objects (no `vscode` import), so they are unit-tested under Node.
 */

export type LoadState = 'starting' | 'loading' | 'ready' | 'error' | 'stopped';

export interface Status {
  state: LoadState;
  enabled: boolean;
  model?: string;
  template?: string;
  backend?: string;
  /** Load progress, 0–100, while loading. */
  percentage?: number;
  message?: string;
  error?: string;
  /** Round trip of the last answered inline completion request. */
  latencyMs?: number;
}

/** The server's `ghostfill/stats` result (fields may be missing from older servers). */
export interface Stats {
  model?: string;
  template?: string | null;
  backend?: string;
  state?: string;
  error?: string | null;
  latency_ms?: { p50?: number; p95?: number; count?: number };
  cache?: { hits?: number; type_through?: number; misses?: number };
  tokens?: { evaluated?: number; reused?: number };
  suggestions?: { shown?: number; accepted?: number };
  /** Windows read ahead into their documents' caches (of them, short windows), and cursor
   * reports (`didFocus`). */
  warm_ups?: { done?: number; short?: number; focus_reports?: number };
  /** Keystrokes served from a short window while the file's full window was read. */
  context?: { prompts?: number; short_windows?: number };
  /** Explicit requests checked against the code below the cursor, and how many of them got
   * another line than the model's first (issue #18); explicit block requests whose
   * candidate blocks were ordered by the code below, and how many of them put another block
   * than the model's first in front. */
  suffix_check?: { ran?: number; changed?: number; blocks_ranked?: number; blocks_reordered?: number };
  /** What became of the suggestions, per language, since the server started (issue #19). */
  feedback?: { languages?: Record<string, LanguageFeedback> };
}

export interface LanguageFeedback {
  shown?: number;
  accepted?: number;
  partial?: number;
  rejected?: number;
  chars_shown?: number;
  chars_kept?: number;
}

/** LSP WorkDoneProgressBegin | Report | End. */
export interface ProgressValue {
  kind: 'begin' | 'report' | 'end';
  title?: string;
  message?: string;
  percentage?: number;
}

export function initialStatus(enabled: boolean): Status {
  return { state: 'starting', enabled };
}

export function applyProgress(s: Status, value: ProgressValue): Status {
  if (value.kind === 'end') {
    // "end" also comes after a failed load; the error message or the stats decide then.
    return {
      ...s,
      state: s.state === 'error' ? 'error' : 'ready',
      percentage: undefined,
      message: value.message,
    };
  }
  return {
    ...s,
    state: s.state === 'error' ? 'error' : 'loading',
    percentage: value.percentage ?? s.percentage,
    message: value.message ?? s.message,
  };
}

export function applyStats(s: Status, stats: Stats): Status {
  const next: Status = {
    ...s,
    model: stats.model ?? s.model,
    template: stats.template ?? s.template,
    backend: stats.backend ?? s.backend,
  };
  if (stats.state === 'ready' || stats.state === 'loading' || stats.state === 'error') {
    next.state = stats.state;
  }
  if (stats.state === 'error') {
    next.error = stats.error ?? s.error;
  }
  return next;
}

export function applyError(s: Status, message: string): Status {
  return { ...s, error: message, state: s.state === 'ready' ? 'ready' : 'error' };
}

export interface StatusBarText {
  /** With a codicon, e.g. "$(sparkle) ghostfill 230 ms". */
  text: string;
  tooltip: string;
}

/**
 * The model as the status bar names it: a preset as is, a file or repo by its last path part
 * without `.gguf`, at most 32 characters.
 */
export function shortModelName(model: string): string {
  const last = model.split(/[\\/]/).filter(Boolean).pop() ?? model;
  const name = last.replace(/\.gguf$/i, '');
  return name.length > 32 ? `${name.slice(0, 31)}…` : name;
}

export function statusBarText(s: Status): StatusBarText {
  const model = s.model ?? 'model';
  const details = [
    `Model: ${model}${s.template ? ` (template ${s.template})` : ''}`
      + `${s.backend ? `, backend ${s.backend}` : ''}`,
    // The progress' end message repeats the state ("ready"): say it once.
    `State: ${s.state}${s.message && s.message !== s.state ? ` — ${s.message}` : ''}`,
  ];
  if (s.latencyMs !== undefined) {
    details.push(`Last suggestion: ${Math.round(s.latencyMs)} ms`);
  }
  if (s.error) {
    details.push(`Error: ${s.error}`);
  }
  details.push(s.enabled ? 'Ghost text on (click for statistics)' : 'Ghost text off');
  const tooltip = details.join('\n');
  switch (s.state) {
    case 'starting':
      return { text: '$(loading~spin) ghostfill', tooltip };
    case 'loading':
      // The percentage when the server reports one; the load's own message otherwise.
      return {
        text: `$(loading~spin) ghostfill ${s.percentage !== undefined ? `${Math.round(s.percentage)}%` : 'loading'}`,
        tooltip,
      };
    case 'error':
      return { text: '$(error) ghostfill', tooltip };
    case 'stopped':
      return { text: '$(debug-disconnect) ghostfill stopped', tooltip };
    case 'ready':
      break;
  }
  if (!s.enabled) {
    return { text: '$(circle-slash) ghostfill', tooltip };
  }
  const latency = s.latencyMs !== undefined ? ` ${Math.round(s.latencyMs)} ms` : '';
  const name = s.model ? ` ${shortModelName(s.model)}` : '';
  return { text: `$(sparkle) ghostfill${name}${latency}`, tooltip };
}

const n = (v: number | undefined): number => (typeof v === 'number' ? v : 0);

/** Lines for the statistics message. */
export function formatStats(stats: Stats): string[] {
  const lat = stats.latency_ms ?? {};
  const cache = stats.cache ?? {};
  const tokens = stats.tokens ?? {};
  const sugg = stats.suggestions ?? {};
  const shown = n(sugg.shown);
  const accepted = n(sugg.accepted);
  const rate = shown > 0 ? ` (${Math.round((100 * accepted) / shown)}%)` : '';
  const lines = [
    `Model: ${stats.model ?? '?'} (template ${stats.template ?? '?'}, backend ${stats.backend ?? '?'})`,
    `State: ${stats.state ?? '?'}`,
  ];
  if (stats.error) {
    lines.push(`Error: ${stats.error}`);
  }
  lines.push(
    `Latency: p50 ${Math.round(n(lat.p50))} ms, p95 ${Math.round(n(lat.p95))} ms over ${n(lat.count)} requests`,
    `Cache: ${n(cache.hits)} hits, ${n(cache.type_through)} type-through, ${n(cache.misses)} misses`,
    `Tokens: ${n(tokens.evaluated)} evaluated, ${n(tokens.reused)} reused`,
    `Suggestions: ${shown} shown, ${accepted} accepted${rate}`,
  );
  if (stats.warm_ups) {
    const short = stats.warm_ups.short ? ` (${stats.warm_ups.short} short)` : '';
    lines.push(`Warm-ups: ${n(stats.warm_ups.done)} windows read ahead${short}, `
      + `${n(stats.warm_ups.focus_reports)} cursor reports`);
  }
  if (stats.context?.short_windows) {
    lines.push(`Short windows: ${stats.context.short_windows} suggestions asked while a `
      + `file's full window was still being read`);
  }
  if (stats.suffix_check) {
    lines.push(`Suffix check: ${n(stats.suffix_check.ran)} run, `
      + `${n(stats.suffix_check.changed)} changed the line`);
    if (stats.suffix_check.blocks_ranked !== undefined) {
      lines.push(`Block ranking: ${n(stats.suffix_check.blocks_ranked)} run, `
        + `${n(stats.suffix_check.blocks_reordered)} put another block first`);
    }
  }
  for (const [language, f] of Object.entries(stats.feedback?.languages ?? {})) {
    const charsShown = n(f.chars_shown);
    const kept = n(f.chars_kept);
    const share = charsShown > 0 ? ` (${Math.round((100 * kept) / charsShown)}%)` : '';
    lines.push(`${language}: ${n(f.shown)} shown, ${n(f.accepted)} accepted, ${n(f.partial)} in part, `
      + `${n(f.rejected)} typed over; ${kept}/${charsShown} characters kept${share}`);
  }
  return lines;
}
