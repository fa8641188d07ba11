// Where the image sits on a FROM line, so "Show Image Details" works anywhere on it.

/** Column of the image in a FROM line (after flags like --platform), or undefined. */
export function fromImageColumn(line: string): number | undefined {
  const m = /^(\s*FROM\s+(?:--\S+\s+)*)(\S)/i.exec(line);
  return m?.[1] === undefined ? undefined : m[1].length;
}
