// The server's version, asked with `augury version --json` before the language client starts, so
// that a missing binary or a server older than this extension needs is refused with a message
// instead of a failed start. No vscode import: the probe is plain Node and tested as such.
import { execFile } from 'node:child_process';

/** The oldest server this extension works with: the first with `augury version --json`. */
export const MIN_SERVER_VERSION = '0.1.0';

/** What `augury version --json` prints. */
export interface ServerVersion {
  version: string;
  plugin_abi: number | null;
  backends: string[];
  lsp: string;
}

export type ProbeFailure = 'missing' | 'not-executable' | 'too-old' | 'no-version' | 'broken';

export class ServerProbeError extends Error {
  constructor(
    readonly kind: ProbeFailure,
    message: string,
  ) {
    super(message);
  }
}

/** -1, 0 or 1 as semver a is lower, equal or higher than b (pre-releases sort before releases). */
export function compareVersions(a: string, b: string): number {
  const parse = (v: string): [number[], string] => {
    const [core, pre = ''] = v.trim().replace(/^v/, '').split('-', 2);
    return [core.split('.').map((x) => Number.parseInt(x, 10) || 0), pre];
  };
  const [ca, pa] = parse(a);
  const [cb, pb] = parse(b);
  for (let i = 0; i < 3; i++) {
    const d = (ca[i] ?? 0) - (cb[i] ?? 0);
    if (d !== 0) return d < 0 ? -1 : 1;
  }
  if (pa === pb) return 0;
  if (pa === '') return 1;
  if (pb === '') return -1;
  return pa < pb ? -1 : 1;
}

function run(command: string, args: string[], timeoutMs: number) {
  return new Promise<{ code: number | null; stdout: string; stderr: string; error?: NodeJS.ErrnoException }>(
    (resolve) => {
      execFile(command, args, { timeout: timeoutMs, maxBuffer: 1 << 20 }, (error, stdout, stderr) => {
        const e = error as (NodeJS.ErrnoException & { code?: number | string }) | null;
        resolve({
          code: e ? (typeof e.code === 'number' ? e.code : null) : 0,
          stdout: String(stdout),
          stderr: String(stderr),
          error: e && typeof e.code === 'string' ? e : undefined,
        });
      });
    },
  );
}

const BUILD_HINT =
  'build augury (cmake -S . -B build && cmake --build build) and set "augury.serverPath" to the executable, or put it on PATH';

/** Runs `serverPath version --json`; resolves with the version when it is new enough, rejects with
 * a ServerProbeError whose message says what is wrong and what to do. */
export async function probeServer(
  serverPath: string,
  minimum: string = MIN_SERVER_VERSION,
  timeoutMs = 10000,
): Promise<ServerVersion> {
  const r = await run(serverPath, ['version', '--json'], timeoutMs);
  if (r.error?.code === 'ENOENT')
    throw new ServerProbeError('missing', `augury: the server '${serverPath}' was not found: ${BUILD_HINT}.`);
  if (r.error?.code === 'EACCES')
    throw new ServerProbeError('not-executable', `augury: the server '${serverPath}' is not executable (chmod +x it, or ${BUILD_HINT}).`);
  if (r.error)
    throw new ServerProbeError('broken', `augury: cannot run the server '${serverPath}': ${r.error.message}`);
  if (r.code !== 0) {
    // Servers before 0.1.0 answer "unknown command 'version'" with status 2.
    if (/unknown command/.test(r.stderr))
      throw new ServerProbeError(
        'no-version',
        `augury: the server '${serverPath}' is too old to report its version (no 'augury version'); this extension needs augury ${minimum} or newer: rebuild it.`,
      );
    throw new ServerProbeError(
      'broken',
      `augury: '${serverPath} version --json' failed (exit ${r.code ?? 'signal'}): ${r.stderr.trim().slice(0, 300)}`,
    );
  }
  let v: ServerVersion;
  try {
    v = JSON.parse(r.stdout) as ServerVersion;
  } catch {
    throw new ServerProbeError('broken', `augury: '${serverPath} version --json' printed no JSON: ${r.stdout.slice(0, 200)}`);
  }
  if (typeof v.version !== 'string')
    throw new ServerProbeError('broken', `augury: '${serverPath} version --json' has no "version": ${r.stdout.slice(0, 200)}`);
  if (compareVersions(v.version, minimum) < 0)
    throw new ServerProbeError(
      'too-old',
      `augury: the server '${serverPath}' is version ${v.version}; this extension needs ${minimum} or newer: rebuild or update augury.`,
    );
  return v;
}
