import assert from "node:assert/strict";
import { describe, it } from "node:test";
import manifest from "../../package.json";
import { SERVER_KEYS, serverSettings } from "../../src/settings";

describe("server settings", () => {
  it("are the manifest's portside.* settings without the extension's own portside.server.*", () => {
    assert.ok(SERVER_KEYS.includes("debounceMs"));
    assert.ok(SERVER_KEYS.includes("trustedRegistries"));
    assert.ok(!SERVER_KEYS.some((k) => k.startsWith("server")));
    assert.ok(!SERVER_KEYS.includes("trusted"), "trust comes from VS Code, not from a setting");
    assert.equal(SERVER_KEYS.length, Object.keys(manifest.contributes.configuration.properties).length - 1);
  });

  it("send every known key with its value and trust from VS Code", () => {
    const values: Record<string, unknown> = { debounceMs: 100, trustedRegistries: ["ghcr.io"], "server.command": ["x"], severity: { unpinned: "hint" } };
    const out = serverSettings({ get: (k) => values[k] }, false);
    assert.deepEqual(out, { debounceMs: 100, trustedRegistries: ["ghcr.io"], severity: { unpinned: "hint" }, trusted: false });
  });

  it("never pass a user's `trusted` through", () => {
    const out = serverSettings({ get: (k) => (k === "trusted" ? true : undefined) }, false);
    assert.deepEqual(out, { trusted: false });
  });
});
