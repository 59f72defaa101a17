export interface KeyspaceEntry {
  /** As INFO names it: "db0". */
  readonly db: string;
  readonly keys: number;
  readonly expires: number;
}

export interface RedisInfo {
  readonly fields: ReadonlyMap<string, string>;
  readonly keyspace: readonly KeyspaceEntry[];
}

const KEYSPACE_LINE = /^(db\d+):(.*)$/;

/** Parses the text of INFO: "# Section" headers, "key:value" lines, and "dbN:keys=..,expires=.." keyspace lines. */
export function parseInfo(text: string): RedisInfo {
  const fields = new Map<string, string>();
  const keyspace: KeyspaceEntry[] = [];
  for (const rawLine of text.split('\n')) {
    const line = rawLine.trimEnd();
    if (line === '' || line.startsWith('#')) continue;
    const keyspaceMatch = KEYSPACE_LINE.exec(line);
    if (keyspaceMatch?.[1] && keyspaceMatch[2] !== undefined) {
      const entry = parseKeyspace(keyspaceMatch[1], keyspaceMatch[2]);
      if (entry) keyspace.push(entry);
      continue;
    }
    const colon = line.indexOf(':');
    if (colon > 0) fields.set(line.slice(0, colon), line.slice(colon + 1));
  }
  return { fields, keyspace };
}

function parseKeyspace(db: string, text: string): KeyspaceEntry | null {
  const values = new Map(text.split(',').map((pair) => {
    const equals = pair.indexOf('=');
    return [pair.slice(0, equals), Number(pair.slice(equals + 1))] as const;
  }));
  const keys = values.get('keys') ?? Number.NaN;
  const expires = values.get('expires') ?? Number.NaN;
  if (!Number.isFinite(keys) || !Number.isFinite(expires)) return null;
  return { db, keys, expires };
}
