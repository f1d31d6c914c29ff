// "Explain selection": augury.explain (lsp/explain.c) with a workDoneToken; the server streams the
// text so far as $/progress reports and answers {text, data}. The text is shown in a read-only
// virtual markdown document beside the editor, updated as the reports arrive.
import * as vscode from 'vscode';

export const EXPLAIN_SCHEME = 'augury-explain';

export class ExplainDocuments implements vscode.TextDocumentContentProvider, vscode.Disposable {
  private readonly texts = new Map<string, string>();
  private readonly changed = new vscode.EventEmitter<vscode.Uri>();
  readonly onDidChange = this.changed.event;
  private counter = 0;

  provideTextDocumentContent(uri: vscode.Uri): string {
    return this.texts.get(uri.toString()) ?? '';
  }

  /** A new explanation document for `title` (not yet shown). */
  create(title: string): vscode.Uri {
    const uri = vscode.Uri.parse(`${EXPLAIN_SCHEME}:/${++this.counter}/${encodeURIComponent(title)}.md`);
    this.texts.set(uri.toString(), '');
    return uri;
  }

  set(uri: vscode.Uri, text: string): void {
    this.texts.set(uri.toString(), text);
    this.changed.fire(uri);
  }

  get(uri: vscode.Uri): string | undefined {
    return this.texts.get(uri.toString());
  }

  dispose(): void {
    this.changed.dispose();
  }
}
