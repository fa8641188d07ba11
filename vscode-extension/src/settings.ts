// What the server is told: the `portside.*` settings it knows (the manifest's
// contributes.configuration, checked against the server's model by a test), with
// `trusted` set from VS Code's workspace trust, never by the user.

import manifest from "../package.json";

const PREFIX = "portside.";
/** Settings of the extension itself, not sent to the server. */
const CLIENT_ONLY = "server.";

/** Server setting names (camelCase, without the prefix), from the manifest. */
export const SERVER_KEYS: readonly string[] = Object.keys(manifest.contributes.configuration.properties)
  .filter((k) => k.startsWith(PREFIX) && !k.startsWith(PREFIX + CLIENT_ONLY))
  .map((k) => k.slice(PREFIX.length));

export interface ConfigReader {
  get(key: string): unknown;
}

export function serverSettings(config: ConfigReader, trusted: boolean): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const key of SERVER_KEYS) {
    const value = config.get(key);
    if (value !== undefined && value !== null) {
      out[key] = value;
    }
  }
  out.trusted = trusted;
  return out;
}
