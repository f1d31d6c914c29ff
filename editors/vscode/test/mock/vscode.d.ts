// The mock's own surface (test/mock/vscode.js), as the tests use it.
import type * as vscode from 'vscode';

export interface MockStatusBarItem {
  id?: string;
  text: string;
  tooltip?: string;
  visible: boolean;
}

export interface MockMessage {
  level: 'error' | 'warning' | 'info';
  message: string;
  actions: string[];
}

export interface MockInlineProvider {
  selector: unknown;
  provider: vscode.InlineCompletionItemProvider;
}

export interface Mock {
  config: Record<string, unknown>;
  statusBarItems: MockStatusBarItem[];
  messages: MockMessage[];
  answerMessage: (level: string, message: string, actions: unknown[]) => string | undefined;
  commands: Map<string, (...args: unknown[]) => unknown>;
  inlineProviders: MockInlineProvider[];
  shownDocuments: vscode.TextDocument[];
  outputLines: string[];
  quickPickAnswer: (items: vscode.QuickPickItem[], options: unknown) => vscode.QuickPickItem | undefined;
  unknown: Set<string>;
  listenerErrors: unknown[];
  openDocument(uri: vscode.Uri, languageId: string, text: string): vscode.TextDocument;
  editDocument(doc: vscode.TextDocument, range: vscode.Range, text: string): void;
  setActiveEditor(doc: vscode.TextDocument | undefined, selection?: vscode.Selection): void;
  reset(): void;
}

export const __mock: Mock;
