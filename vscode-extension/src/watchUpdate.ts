// The "Update" of a watcher notice (the server's window/showMessageRequest) comes back as
// a workspace/applyEdit labelled "portside: update IMAGE". VS Code applies such an edit
// to files that may not be open, and leaves them unsaved: the user clicked Update on a
// notice, not in an editor, and expects the Dockerfiles updated on disk. So, as "Pin All
// Base Images in Workspace" does, a file the user had not touched is saved; one with
// their unsaved edits stays open for them. Other edits are left as the client applies them.

export const WATCH_UPDATE_LABEL = "portside: update ";

export interface TextDocumentEditLike {
  readonly textDocument: { readonly uri: string };
  readonly edits: readonly unknown[];
}

export interface WorkspaceEditLike {
  readonly changes?: Readonly<Record<string, readonly unknown[]>>;
  readonly documentChanges?: readonly (TextDocumentEditLike | { readonly kind: string })[];
}

export interface ApplyEditParamsLike {
  readonly label?: string;
  readonly edit: WorkspaceEditLike;
}

export interface ApplyEditEnv {
  /** The URI as VS Code spells it (the server's may be encoded differently). */
  canonical(uri: string): string;
  /** Canonical URIs of the documents with unsaved changes now. */
  dirty(): ReadonlySet<string>;
  /** The language client's own handling of the edit. */
  apply(): Promise<{ applied: boolean }>;
  save(uri: string): Promise<boolean>;
  log(line: string): void;
}

export function isWatchUpdate(label: string | undefined): boolean {
  return label?.startsWith(WATCH_UPDATE_LABEL) ?? false;
}

/** The documents whose text the edit changes, in order, each once. */
export function editedUris(edit: WorkspaceEditLike): string[] {
  const uris = Object.keys(edit.changes ?? {});
  for (const change of edit.documentChanges ?? []) {
    if ("textDocument" in change) {
      uris.push(change.textDocument.uri);
    }
  }
  return [...new Set(uris)];
}

export async function applyServerEdit(params: ApplyEditParamsLike, env: ApplyEditEnv): Promise<{ applied: boolean }> {
  if (!isWatchUpdate(params.label)) {
    return env.apply();
  }
  const targets = [...new Set(editedUris(params.edit).map((u) => env.canonical(u)))];
  const before = env.dirty(); // read before the edit makes every target dirty
  const result = await env.apply();
  if (!result.applied) {
    env.log(`${params.label ?? ""}: the edit was not applied`);
    return result;
  }
  for (const uri of targets) {
    if (before.has(uri)) {
      env.log(`${params.label ?? ""}: ${uri} had unsaved changes: updated, not saved`);
    } else if (await env.save(uri)) {
      env.log(`${params.label ?? ""}: ${uri} updated and saved`);
    } else {
      env.log(`${params.label ?? ""}: ${uri} updated, but could not be saved`);
    }
  }
  return result;
}
