// The extension's logic in plain Node, with test/mock/vscode.js for `vscode`, against the real
// server: AUGURY_BIN (the built `augury`) and AUGURY_TEST_MODEL_SMALL (scripts/get-model small).
// Without AUGURY_BIN everything skips; without the model the model tests skip, unless
// AUGURY_REQUIRE_MODELS=1 makes that a failure. Registered by tests/vscode/tests.cmake.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as vscode from 'vscode';

import { activate, deactivate, type Augury } from '../src/extension';
import { compareVersions, MIN_SERVER_VERSION, probeServer, ServerProbeError } from '../src/version';
import { __mock as mock } from './mock/vscode';

const AUGURY = process.env.AUGURY_BIN ?? '';
const MODEL = process.env.AUGURY_TEST_MODEL_SMALL ?? '';
const REQUIRE = process.env.AUGURY_REQUIRE_MODELS === '1';
// ctest runs the suites without a model (fast, also under ASan) and the model suite apart (slow).
const SUITES = process.env.AUGURY_VSCODE_SUITES ?? 'all';
const noServer = AUGURY === '' || !fs.existsSync(AUGURY) ? 'AUGURY_BIN is not set (run through ctest)' : false;
const wantModel = SUITES === 'all' || SUITES === 'model';
if (REQUIRE && wantModel && (noServer || MODEL === '')) throw new Error('AUGURY_REQUIRE_MODELS=1 but AUGURY_BIN or AUGURY_TEST_MODEL_SMALL is not set');
const skipNoModel = SUITES === 'model' ? 'AUGURY_VSCODE_SUITES=model' : false;
const noModel = !wantModel ? `AUGURY_VSCODE_SUITES=${SUITES}` : noServer || (MODEL === '' ? 'AUGURY_TEST_MODEL_SMALL is not set (scripts/get-model small)' : false);

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'augury-vscode-'));
// The server must not pick up the user's config file or model cache: explicit settings only.
process.env.XDG_CONFIG_HOME = path.join(tmp, 'config');
delete process.env.AUGURY_MODEL;

const context = () => ({ subscriptions: [] as vscode.Disposable[] }) as unknown as vscode.ExtensionContext;

function statusText(): string {
  const item = mock.statusBarItems.find((i) => i.id === 'augury.status');
  return item?.text ?? '';
}

async function waitFor<T>(what: string, fn: () => T | undefined | Promise<T | undefined>, ms = 120000): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}; status bar: '${statusText()}'; messages: ${JSON.stringify(mock.messages)}\n${mock.outputLines.slice(-20).join('\n')}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function fakeServer(name: string, script: string): string {
  const p = path.join(tmp, name);
  fs.writeFileSync(p, `#!/bin/sh\n${script}\n`, { mode: 0o755 });
  return p;
}

function settings(values: Record<string, unknown>): void {
  mock.reset();
  for (const [k, v] of Object.entries(values)) mock.config[`augury.${k}`] = v;
}

async function inline(doc: vscode.TextDocument, position: vscode.Position, trigger = vscode.InlineCompletionTriggerKind.Invoke) {
  const entry = mock.inlineProviders[0];
  assert.ok(entry, 'the language client registered an inline completion provider');
  const cts = new vscode.CancellationTokenSource();
  const result = await entry.provider.provideInlineCompletionItems(doc, position, { triggerKind: trigger, selectedCompletionInfo: undefined }, cts.token);
  return Array.isArray(result) ? result : (result?.items ?? []);
}

describe('version checks (no server)', { skip: skipNoModel }, () => {
  test('compareVersions orders semver', () => {
    assert.equal(compareVersions('0.1.0', '0.1.0'), 0);
    assert.equal(compareVersions('0.0.9', '0.1.0'), -1);
    assert.equal(compareVersions('0.10.0', '0.9.3'), 1);
    assert.equal(compareVersions('1.0.0-rc.1', '1.0.0'), -1);
    assert.equal(compareVersions('v1.2.3', '1.2.3'), 0);
  });

  test('a missing binary is a clear error', async () => {
    await assert.rejects(probeServer(path.join(tmp, 'no-such-augury')), (e: unknown) => {
      assert.ok(e instanceof ServerProbeError);
      assert.equal(e.kind, 'missing');
      assert.match(e.message, /was not found: build augury .*augury\.serverPath/);
      return true;
    });
  });
});

describe('refusals through activate()', { skip: skipNoModel }, () => {
  after(async () => deactivate());

  test('missing binary: error message, status bar says stopped, no client', async () => {
    settings({ serverPath: path.join(tmp, 'missing', 'augury') });
    const a = await activate(context());
    assert.equal(a.client, undefined);
    const err = mock.messages.find((m) => m.level === 'error');
    assert.ok(err, 'an error message was shown');
    assert.match(err.message, /augury: the server '.*missing\/augury' was not found/);
    assert.deepEqual(err.actions, ['Open Settings', 'Show Log']);
    assert.equal(statusText(), '$(error) augury: stopped');
    await deactivate();
  });

  test('a server older than the minimum is refused with both versions', async () => {
    const old = fakeServer('augury-old', `echo '{"version":"0.0.9","plugin_abi":null,"backends":["cpu"],"lsp":"3.17"}'`);
    settings({ serverPath: old });
    const a = await activate(context());
    assert.equal(a.client, undefined);
    const err = mock.messages.find((m) => m.level === 'error');
    assert.ok(err);
    assert.match(err.message, new RegExp(`is version 0\\.0\\.9; this extension needs ${MIN_SERVER_VERSION.replace(/\./g, '\\.')} or newer`));
    assert.equal(statusText(), '$(error) augury: stopped');
    await deactivate();
  });

  test('a server without `augury version` is refused as too old', async () => {
    const ancient = fakeServer('augury-ancient', `echo "augury: unknown command '$1'" >&2; exit 2`);
    settings({ serverPath: ancient });
    const a = await activate(context());
    assert.equal(a.client, undefined);
    assert.match(mock.messages[0]?.message ?? '', /too old to report its version .* needs augury 0\.1\.0 or newer/);
    await deactivate();
  });

  test('the real server passes the version check', { skip: noServer }, async () => {
    const v = await probeServer(AUGURY);
    assert.equal(compareVersions(v.version, MIN_SERVER_VERSION) >= 0, true);
    assert.equal(v.lsp, '3.18');
    assert.ok(v.backends.includes('cpu'));
  });
});

describe('real server, missing model', { skip: skipNoModel || noServer }, () => {
  after(async () => deactivate());

  test('the model error is shown with the fixes, the status bar says so', async () => {
    const missing = path.join(tmp, 'no-such-model.gguf');
    settings({ serverPath: AUGURY, model: missing });
    const a = await activate(context());
    assert.ok(a.client?.isRunning(), 'the client started');
    const err = await waitFor('the model error', () => mock.messages.find((m) => m.level === 'error'), 30000);
    assert.match(err.message, new RegExp(`model '${missing.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}' \\(from settings\\) does not exist`));
    assert.deepEqual(err.actions, ['Retry', 'Choose Model…', 'Open Settings', 'Show Log']);
    assert.equal(statusText(), '$(error) augury: no model');
    const st = await a.serverStatus();
    assert.equal(st?.state, 'failed');
    await deactivate();
  });
});

describe('real server and model', { skip: noModel }, () => {
  let a: Augury;
  const file = path.join(tmp, 'fib.py');
  const text = 'def fibonacci(n):\n    """Return the n-th Fibonacci number."""\n    if n < 2:\n        return n\n    return ';
  let doc: vscode.TextDocument;

  before(async () => {
    fs.writeFileSync(file, text);
    settings({ serverPath: AUGURY, model: MODEL, threads: 2, debounceMs: 0 });
    a = await activate(context());
    assert.ok(a.client?.isRunning());
    await waitFor('the model to load', () => (statusText() === '$(sparkle) augury' ? true : undefined));
    doc = mock.openDocument(vscode.Uri.file(file), 'python', text);
  });
  after(async () => deactivate());

  test('an inline completion for a Python snippet, and the status bar shows its stats', async () => {
    const end = doc.positionAt(text.length);
    const items = await inline(doc, end);
    assert.ok(items.length >= 1, 'one suggestion or more');
    const insert = items[0].insertText;
    assert.equal(typeof insert, 'string');
    assert.match(insert as string, /fibonacci\(n ?- ?1\)/, `a plausible continuation: ${JSON.stringify(insert)}`);
    assert.match(statusText(), /^\$\(sparkle\) augury \d+ ms( \((cached|speculative)\))? · \d+ reused · \d+ eval$/);
    assert.equal(a.status.last?.evaluated !== undefined, true);
  });

  test('typing the start of the suggestion keeps suggesting the rest', async () => {
    const end = doc.positionAt(doc.getText().length);
    mock.editDocument(doc, new vscode.Range(end, end), 'fib');
    const items = await inline(doc, doc.positionAt(doc.getText().length), vscode.InlineCompletionTriggerKind.Automatic);
    assert.ok(items.length >= 1);
    assert.match(items[0].insertText as string, /^onacci\(n ?- ?1\)/);
  });

  test('explain selection streams into a document beside the editor', async () => {
    const sel = new vscode.Selection(new vscode.Position(0, 0), new vscode.Position(3, 16));
    mock.setActiveEditor(doc, sel);
    const updates: string[] = [];
    const sub = a.explains.onDidChange((u) => updates.push(a.explains.get(u) ?? ''));
    const run = mock.commands.get('augury.explainSelection');
    assert.ok(run);
    const textOut = (await run()) as string;
    sub.dispose();
    assert.ok(textOut && textOut.length > 20 && !/failed|no explanation/.test(textOut), `an explanation: ${textOut}`);
    assert.ok(updates.length >= 3, `streamed in pieces (${updates.length} updates)`);
    assert.ok(updates.slice(1, -1).some((u) => u.length > 0 && u.length < textOut.length), 'partial text came before the whole');
    const shown = mock.shownDocuments.find((d) => d.uri.scheme === 'augury-explain');
    assert.ok(shown, 'the explanation document was shown');
    assert.match(shown.uri.path, /Explain fib\.py 1-4\.md$/);
  });

  test('toggle turns completions off (status bar and server) and on again', async () => {
    assert.equal(await a.toggle(), false);
    assert.equal(mock.config['augury.enable'], false);
    assert.equal(statusText(), '$(circle-slash) augury: off');
    await new Promise((r) => setTimeout(r, 200)); // didChangeConfiguration reaches the server
    const off = await inline(doc, doc.positionAt(doc.getText().length));
    assert.equal(off.length, 0, 'no suggestion while off');
    assert.equal(await a.toggle(), true);
    assert.match(statusText(), /^\$\(sparkle\) augury/);
  });

  test('augury.languages turns one language off', async () => {
    await vscode.workspace.getConfiguration('augury').update('languages', { python: false }, vscode.ConfigurationTarget.Global);
    await new Promise((r) => setTimeout(r, 200));
    assert.equal((await inline(doc, doc.positionAt(doc.getText().length))).length, 0, 'python is off');
    await vscode.workspace.getConfiguration('augury').update('languages', { python: true }, vscode.ConfigurationTarget.Global);
    await new Promise((r) => setTimeout(r, 200));
    assert.ok((await inline(doc, doc.positionAt(doc.getText().length))).length >= 1, 'python is on again');
  });

  test('restart starts a new server', async () => {
    const before = a.client;
    assert.equal(await a.restart(), true);
    assert.ok(a.client && a.client !== before && a.client.isRunning());
    await waitFor('the model to load again', () => (statusText().startsWith('$(sparkle) augury') ? true : undefined));
  });

  test('choose model writes augury.model', async () => {
    mock.quickPickAnswer = () => ({ label: path.basename(MODEL), description: path.dirname(MODEL) });
    assert.equal(await a.chooseModel(), MODEL);
    assert.equal(mock.config['augury.model'], MODEL);
  });
});
