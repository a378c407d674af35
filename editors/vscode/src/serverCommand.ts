/**
 * Which program runs the server: `ghostfill.serverPath` if set, else `ghostfill` found on PATH.
 * The file system and environment are passed in, so this is tested without VS Code.
 */
import * as path from 'node:path';

export interface Lookup {
  platform: NodeJS.Platform;
  env: Record<string, string | undefined>;
  homedir: string;
  /** A regular file the user may execute. */
  isExecutable(file: string): boolean;
}

export type Resolved =
  | { ok: true; command: string; args: string[] }
  | { ok: false; message: string };

const EXECUTABLE = 'ghostfill';

function expandHome(p: string, homedir: string): string {
  return p === '~' || p.startsWith('~/') ? path.join(homedir, p.slice(1)) : p;
}

/** Candidate file names for `name` on this platform (Windows adds PATHEXT extensions). */
function namesFor(name: string, lookup: Lookup): string[] {
  if (lookup.platform !== 'win32') {
    return [name];
  }
  const exts = (lookup.env.PATHEXT ?? '.EXE;.CMD;.BAT').split(';').filter(Boolean);
  return [name, ...exts.map((e) => name + e.toLowerCase())];
}

/** First `name` on PATH, or undefined. */
export function which(name: string, lookup: Lookup): string | undefined {
  const sep = lookup.platform === 'win32' ? ';' : ':';
  const dirs = (lookup.env.PATH ?? lookup.env.Path ?? '').split(sep).filter(Boolean);
  for (const dir of dirs) {
    for (const file of namesFor(name, lookup)) {
      const full = path.join(dir, file);
      if (lookup.isExecutable(full)) {
        return full;
      }
    }
  }
  return undefined;
}

export function resolveServer(serverPath: string, extraArgs: readonly string[],
  lookup: Lookup): Resolved {
  const args = ['serve', ...extraArgs];
  const configured = serverPath.trim();
  if (configured) {
    const file = expandHome(configured, lookup.homedir);
    if (lookup.isExecutable(file)) {
      return { ok: true, command: file, args };
    }
    const found = !file.includes('/') && !file.includes('\\') ? which(file, lookup) : undefined;
    if (found) {
      return { ok: true, command: found, args };
    }
    return {
      ok: false,
      message: `ghostfill.serverPath "${configured}" is not an executable file.`,
    };
  }
  const found = which(EXECUTABLE, lookup);
  if (found) {
    return { ok: true, command: found, args };
  }
  return {
    ok: false,
    message: 'The ghostfill server was not found on PATH. Install it (pip install "ghostfill[cpu,default-model]") '
      + 'or set "ghostfill.serverPath" to the `ghostfill` executable.',
  };
}
