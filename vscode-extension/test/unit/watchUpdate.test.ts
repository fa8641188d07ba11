import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { type ApplyEditEnv, type ApplyEditParamsLike, applyServerEdit, editedUris, isWatchUpdate } from "../../src/watchUpdate";

interface Recorder extends ApplyEditEnv {
  readonly events: string[];
  readonly lines: string[];
}

/** An editor where `dirty` documents have unsaved changes; records applies and saves. */
function editor(dirty: string[], opts: { applied?: boolean; unsavable?: string[] } = {}): Recorder {
  const events: string[] = [];
  const lines: string[] = [];
  const now = new Set(dirty);
  return {
    events,
    lines,
    // VS Code encodes ':' in paths; the server may not.
    canonical: (uri) => uri.replace("c:", "c%3A"),
    dirty: () => {
      events.push("dirty?");
      return new Set(now);
    },
    apply: () => {
      events.push("apply");
      return Promise.resolve({ applied: opts.applied ?? true });
    },
    save: (uri) => {
      events.push(`save ${uri}`);
      return Promise.resolve(!(opts.unsavable ?? []).includes(uri));
    },
    log: (line) => lines.push(line),
  };
}

const edit = (uri: string): { range: object; newText: string } => ({ range: { uri }, newText: "x" });

const update: ApplyEditParamsLike = {
  label: "portside: update registry.example/acme/base:1.0",
  edit: {
    changes: { "file:///w/Dockerfile": [edit("a"), edit("b")], "file:///w/worker.Dockerfile": [edit("c")] },
  },
};

describe("a watcher notice's Update", () => {
  it("is told apart by the server's label", () => {
    assert.equal(isWatchUpdate(update.label), true);
    assert.equal(isWatchUpdate("Pin to digest"), false);
    assert.equal(isWatchUpdate(undefined), false);
  });

  it("saves every file it changed that had no unsaved changes, after applying", async () => {
    const env = editor([]);
    assert.deepEqual(await applyServerEdit(update, env), { applied: true });
    assert.deepEqual(env.events, ["dirty?", "apply", "save file:///w/Dockerfile", "save file:///w/worker.Dockerfile"]);
  });

  it("leaves a file with the user's unsaved edits unsaved, and says so in the log", async () => {
    const env = editor(["file:///w/Dockerfile", "file:///w/other"]);
    await applyServerEdit(update, env);
    assert.deepEqual(env.events, ["dirty?", "apply", "save file:///w/worker.Dockerfile"]);
    assert.ok(env.lines.some((l) => l.includes("file:///w/Dockerfile had unsaved changes: updated, not saved")), env.lines.join("\n"));
  });

  it("saves nothing when the edit was not applied", async () => {
    const env = editor([], { applied: false });
    assert.deepEqual(await applyServerEdit(update, env), { applied: false });
    assert.deepEqual(env.events, ["dirty?", "apply"]);
    assert.ok(env.lines.some((l) => l.endsWith("the edit was not applied")));
  });

  it("compares documents by VS Code's spelling of their URI", async () => {
    const env = editor(["file:///c%3A/w/Dockerfile"]);
    await applyServerEdit({ label: update.label, edit: { changes: { "file:///c:/w/Dockerfile": [edit("a")] } } }, env);
    assert.deepEqual(env.events, ["dirty?", "apply"]);
  });

  it("logs a file it could not save", async () => {
    const env = editor([], { unsavable: ["file:///w/worker.Dockerfile"] });
    await applyServerEdit(update, env);
    assert.ok(env.lines.some((l) => l.endsWith("file:///w/worker.Dockerfile updated, but could not be saved")), env.lines.join("\n"));
  });

  it("leaves every other edit (quick fixes, pin commands) to the client as it is", async () => {
    const env = editor([]);
    await applyServerEdit({ label: "portside: pin", edit: update.edit }, env);
    await applyServerEdit({ edit: update.edit }, env);
    assert.deepEqual(env.events, ["apply", "apply"]);
  });
});

describe("the documents an edit changes", () => {
  it("come from changes and from text document edits, each once; file operations are not edits", () => {
    const uris = editedUris({
      changes: { "file:///a": [] },
      documentChanges: [
        { textDocument: { uri: "file:///b" }, edits: [] },
        { kind: "create" },
        { textDocument: { uri: "file:///a" }, edits: [] },
      ],
    });
    assert.deepEqual(uris, ["file:///a", "file:///b"]);
  });
});
