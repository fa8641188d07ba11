// The status bar item: how many base images in the workspace are stale, moved or
// unpinned (from the server's diagnostics); a click lists them.

import * as vscode from "vscode";
import { type ImageEntry, type ServerState, collect, statusState } from "./findings";

export class StatusBar implements vscode.Disposable {
  readonly item = vscode.window.createStatusBarItem("portside.status", vscode.StatusBarAlignment.Left, 10);
  entries: ImageEntry[] = [];
  private server: ServerState = "starting";
  private readonly listener: vscode.Disposable;

  constructor() {
    this.item.name = "Portside";
    this.item.command = "portside.listImages";
    this.listener = vscode.languages.onDidChangeDiagnostics(() => { this.update(); });
    this.update();
    this.item.show();
  }

  update(): void {
    const all = vscode.languages.getDiagnostics().map(([uri, ds]) => [uri.toString(), ds] as const);
    this.entries = collect(all);
    const state = statusState(this.entries, this.server);
    this.item.command = this.server === "stopped" ? "portside.showLog" : "portside.listImages";
    this.item.text = state.text;
    this.item.tooltip = state.tooltip;
    this.item.accessibilityInformation = { label: state.tooltip };
  }

  setServer(server: ServerState): void {
    this.server = server;
    this.update();
  }

  async pick(): Promise<void> {
    this.update();
    if (this.entries.length === 0) {
      void vscode.window.showInformationMessage("Portside: every base image in the open Dockerfiles is current and pinned.");
      return;
    }
    const items = this.entries.map((e) => {
      const uri = vscode.Uri.parse(e.uri);
      return {
        label: `$(package) ${e.categories.join(", ")}`,
        description: `${vscode.workspace.asRelativePath(uri)}:${e.line + 1}`,
        detail: e.messages.join(" · "),
        entry: e,
        uri,
      };
    });
    const picked = await vscode.window.showQuickPick(items, {
      title: "Portside: stale, moved and unpinned base images",
      matchOnDescription: true,
      matchOnDetail: true,
    });
    if (picked === undefined) {
      return;
    }
    const position = new vscode.Position(picked.entry.line, picked.entry.character);
    await vscode.window.showTextDocument(picked.uri, { selection: new vscode.Range(position, position) });
  }

  dispose(): void {
    this.listener.dispose();
    this.item.dispose();
  }
}
