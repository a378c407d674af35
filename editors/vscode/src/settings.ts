/**
 * VS Code settings → the server's configuration object (README "Configuration").
 *
 * Only the keys listed here are sent: the server rejects unknown keys, and the extension's own
 * settings (serverPath, enable, …) live in the same `ghostfill` section. No `vscode` import, so
 * the mapping is unit-tested under plain Node.
 */

/** Server settings, as `section.key` under `ghostfill.` (camelCase, as the server accepts). */
export const SERVER_SETTINGS: readonly string[] = [
  'model.name',
  'model.backend',
  'model.template',
  'model.fimOrder',
  'model.contextLength',
  'model.draft',
  'model.speculative',
  'model.device',
  'model.threads',
  'model.kvReuse',
  'model.kvShift',
  'model.extraBufferTypes',
  'model.kvCacheMb',
  'model.trustRemoteCode',
  'model.offline',
  'completion.maxTokens',
  'completion.latencyBudgetMs',
  'completion.invokedBudgetMs',
  'completion.multiline',
  'completion.alternatives',
  'completion.choices',
  'completion.suffixLayout',
  'completion.suffixCheck',
  'completion.blockCandidates',
  'completion.temperature',
  'completion.disabledLanguages',
  'context.prefixShare',
  'context.maxSuffixTokens',
  'context.crossFile',
  'context.crossFileTokens',
  'context.importDefinitions',
  'context.psmSuffixTokens',
  'context.recentEdits',
  'context.parseBudgetMs',
  'context.suffixBlockTokens',
  'context.suffixBlockLines',
  'context.shortWindowTokens',
  'server.debounceMs',
  'server.cacheSize',
  'server.prefetch',
  'server.warmOnOpen',
  'server.engine',
  'server.engineIdleS',
  'server.engineTimeoutS',
  'server.engineAddress',
  'server.engineTokenEnv',
  'remote.endpoint',
  'remote.model',
  'remote.apiKeyEnv',
  'remote.headers',
  'remote.verifyTls',
  'remote.tokenizer',
  'remote.connectTimeoutS',
  'remote.readTimeoutS',
];

/** Settings that only the extension reads; changing them needs a server restart or nothing. */
export const CLIENT_SETTINGS: readonly string[] = [
  'enable',
  'serverPath',
  'serverArgs',
  'documentSelector',
  // Read by vscode-languageclient (`<client id>.trace.server`); see trace.ts.
  'trace.server',
];

export type ServerOptions = Record<string, Record<string, unknown>>;

/**
 * Build the nested options object from a lookup of `section.key` → value.
 *
 * Every listed key whose value is defined is sent, defaults included: the contributed defaults
 * equal the server's, and sending them makes a setting the user removes fall back on the server
 * too (a didChangeConfiguration that omitted it would leave the old value in place).
 */
export function buildServerOptions(get: (key: string) => unknown): ServerOptions {
  const options: ServerOptions = {};
  for (const key of SERVER_SETTINGS) {
    const value = get(key);
    if (value === undefined) {
      continue;
    }
    const [section, name] = key.split('.');
    (options[section] ??= {})[name] = value;
  }
  return options;
}

/** True when a change to `ghostfill.<key>` needs the server process restarted. */
export function needsRestart(changed: (key: string) => boolean): boolean {
  return ['serverPath', 'serverArgs', 'documentSelector'].some(changed);
}
