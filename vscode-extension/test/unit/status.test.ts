import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { type DiagnosticLike, collect, statusState } from "../../src/findings";
import { RestartPolicy } from "../../src/restart";
import { LineSplitter, parseProgressLine, publishSummary } from "../../src/progress";
import { fromImageColumn } from "../../src/fromLine";
import { checkVersion } from "../../src/version";
import { plural } from "../../src/text";

const d = (code: string, line: number, character = 5, source = "portside"): DiagnosticLike => ({
  source,
  code,
  message: `${code} at ${line}`,
  range: { start: { line, character } },
});

describe("status bar state", () => {
  it("counts each image once, whatever number of findings it has", () => {
    const entries = collect([
      ["file:///w/Dockerfile", [d("stale", 0), d("unpinned", 0), d("tag-moved", 3), d("syntax", 4), d("stale", 6, 5, "hadolint")]],
      ["file:///w/b/Containerfile", [d("latest", 1), { ...d("variant-update", 2), code: { value: "variant-update" } }]],
    ]);
    assert.equal(entries.length, 4);
    const [first] = entries;
    assert.ok(first);
    assert.deepEqual(first.categories, ["stale", "unpinned"]);
    assert.deepEqual(first.messages, ["stale at 0", "unpinned at 0"]);
    assert.deepEqual([entries[1]?.uri, entries[1]?.line, entries[1]?.categories], ["file:///w/Dockerfile", 3, ["moved"]]);
    assert.deepEqual(entries.slice(2).map((e) => [e.uri, e.line]), [["file:///w/b/Containerfile", 1], ["file:///w/b/Containerfile", 2]]);
    const state = statusState(entries);
    assert.equal(state.count, 4);
    assert.equal(state.text, "$(package) Portside: 4");
    assert.equal(state.tooltip, "Portside: 4 base images to look at (2 stale, 1 moved, 2 unpinned)");
  });

  it("shows a check mark when nothing needs attention", () => {
    const state = statusState(collect([["file:///w/Dockerfile", [d("syntax", 0), d("not-found", 1)]]]));
    assert.equal(state.count, 0);
    assert.equal(state.text, "$(check) Portside");
  });
});

describe("restart policy", () => {
  it("restarts up to the limit within the window, then stops; a manual restart resets", () => {
    let t = 0;
    const p = new RestartPolicy(2, 1000, () => t);
    assert.equal(p.crashed(), true);
    t = 10;
    assert.equal(p.crashed(), true);
    t = 20;
    assert.equal(p.crashed(), false);
    t = 2000;
    assert.equal(p.crashed(), true, "old crashes leave the window");
    p.reset();
    assert.equal(p.recent, 0);
  });
});

describe("publish progress", () => {
  it("reads `[step] message` lines and splits chunks into lines", () => {
    assert.deepEqual(parseProgressLine("[push] 127.0.0.1:5000/acme/app: 3 blobs"), { step: "push", message: "127.0.0.1:5000/acme/app: 3 blobs" });
    assert.equal(parseProgressLine("error: no [tool.portside.image]"), undefined);
    const s = new LineSplitter();
    assert.deepEqual(s.push("[a] one\n[b] t"), ["[a] one"]);
    assert.deepEqual(s.push("wo\r\n"), ["[b] two"]);
    assert.deepEqual(s.flush(), []);
  });

  it("sums up the JSON report", () => {
    const report = {
      ok: true,
      dry_run: false,
      digest: "sha256:0123456789abcdef0123",
      destinations: [{ repository: "r:5000/team/app", tags: ["1.4.2", "1.4", "1", "latest"], tags_set: ["1.4.2", "1.4", "1"] }],
    };
    assert.equal(publishSummary(JSON.stringify(report, null, 2)), "tagged r:5000/team/app: 1.4.2, 1.4, 1 (sha256:0123456789ab…)");
    assert.equal(publishSummary(JSON.stringify({ ...report, dry_run: true })), "would tag r:5000/team/app: 1.4.2, 1.4, 1, latest (sha256:0123456789ab…)");
    assert.equal(publishSummary("not json"), "");
  });
});

describe("FROM lines and versions", () => {
  it("finds the image after FROM and its flags", () => {
    assert.equal(fromImageColumn("FROM python:3.12"), 5);
    assert.equal(fromImageColumn("  from --platform=linux/amd64 python:3.12 AS b"), 30);
    assert.equal(fromImageColumn("RUN echo"), undefined);
  });

  it("checks the server's version against the supported range", () => {
    assert.equal(checkVersion("portside-lsp 0.1.0"), "ok");
    assert.equal(checkVersion("portside-lsp 0.0.9"), "too-old");
    assert.equal(checkVersion("portside-lsp 1.0.0"), "too-new");
    assert.equal(checkVersion("portside-lsp"), "unknown");
  });
});

describe("status bar without a running server", () => {
  it("says so instead of showing a count", () => {
    const entries = collect([["file:///w/Dockerfile", [d("stale", 0)]]]);
    assert.equal(statusState(entries, "stopped").tooltip, "Portside: the language server is not running (see the log)");
    assert.equal(statusState(entries, "stopped").count, 0);
    assert.equal(statusState(entries, "starting").text, "$(sync~spin) Portside");
  });
});

describe("messages", () => {
  it("count in words that agree", () => {
    assert.equal(plural(1, "image"), "1 image");
    assert.equal(plural(0, "image"), "0 images");
    assert.equal(plural(3, "Dockerfile"), "3 Dockerfiles");
  });
});
