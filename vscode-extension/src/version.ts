// Server versions: what `portside lsp --version` prints, and the range this extension speaks.

export const SUPPORTED = { min: "0.1.0", below: "1.0.0" } as const;

export type Version = readonly [number, number, number];

/** The first `X.Y.Z` in `text` ("portside-lsp 0.1.0" → [0, 1, 0]); undefined when none. */
export function parseVersion(text: string): Version | undefined {
  const m = /(\d+)\.(\d+)\.(\d+)/.exec(text);
  if (!m) {
    return undefined;
  }
  return [Number(m[1]), Number(m[2]), Number(m[3])];
}

export function compareVersions(a: Version, b: Version): number {
  const [a0, a1, a2] = a;
  const [b0, b1, b2] = b;
  return Math.sign(a0 - b0) || Math.sign(a1 - b1) || Math.sign(a2 - b2);
}

export type VersionVerdict = "ok" | "too-old" | "too-new" | "unknown";

export function checkVersion(text: string, range: { min: string; below: string } = SUPPORTED): VersionVerdict {
  const v = parseVersion(text);
  const min = parseVersion(range.min);
  const below = parseVersion(range.below);
  if (!v || !min || !below) {
    return "unknown";
  }
  if (compareVersions(v, min) < 0) {
    return "too-old";
  }
  if (compareVersions(v, below) >= 0) {
    return "too-new";
  }
  return "ok";
}
