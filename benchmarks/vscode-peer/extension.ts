// The least a client can be: docker-langserver over stdio for Dockerfiles. Same
// vscode-languageclient as the Portside extension, so the two differ by their servers.
import * as vscode from "vscode";
import { LanguageClient } from "vscode-languageclient/node";

let client: LanguageClient | undefined;

export async function activate(): Promise<void> {
  const command = vscode.workspace.getConfiguration("peer").get<string>("server") ?? "docker-langserver";
  client = new LanguageClient(
    "peer",
    "docker-langserver",
    { command, args: ["--stdio"] },
    { documentSelector: [{ scheme: "file", language: "dockerfile" }] },
  );
  await client.start();
}

export async function deactivate(): Promise<void> {
  await client?.stop();
}
