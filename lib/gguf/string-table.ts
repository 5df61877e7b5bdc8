/** Elements per chunk (native/addon/addon.cpp: k_table_chunk, the same number). */
export const CHUNK = 4096;

/** One chunk of a table: its elements back to back, and where each starts (elements + 1 offsets). */
export interface StringTableChunk {
  text: string;
  offsets: Uint32Array;
}

/**
 * A GGUF string array as a few strings plus offsets. A 150k-token vocabulary as 150k JS strings
 * costs the JS thread tens of milliseconds: creating them, then V8's young-generation collections
 * copying every one of them (pauses of 5-25 ms, measured). As a table it is two objects per chunk
 * of {@link CHUNK} elements, made by the native reader (which decodes the UTF-8 off the JS thread)
 * and fetched a chunk per call, since a fresh multi-megabyte allocation costs milliseconds of page
 * faults by itself. Elements are sliced out on demand; {@link equals} reads them in place.
 * @internal
 */
export class StringTable {
  readonly #chunks: readonly StringTableChunk[];
  readonly #length: number;
  /** Elements replaced after the fact (a vocabulary's empty tokens, malformed merges). */
  #overrides: Map<number, string> | undefined;

  /** Every chunk but the last holds exactly CHUNK elements. */
  constructor(chunks: readonly StringTableChunk[]) {
    let length = 0;
    for (let c = 0; c < chunks.length; c++) {
      const { text, offsets } = chunks[c]!;
      const count = offsets.length - 1;
      if (count < 1 || (c < chunks.length - 1 && count !== CHUNK) || count > CHUNK || offsets[count] !== text.length) {
        throw new RangeError(`StringTable: chunk ${c} of ${chunks.length} is malformed (${count} elements, ${text.length} characters)`);
      }
      length += count;
    }
    this.#chunks = chunks;
    this.#length = length;
  }

  /** A table of the strings of an array (for metadata that did not come from the native reader). */
  static fromArray(strings: readonly string[]): StringTable {
    const chunks: StringTableChunk[] = [];
    for (let begin = 0; begin < strings.length; begin += CHUNK) {
      const part = strings.slice(begin, begin + CHUNK);
      const offsets = new Uint32Array(part.length + 1);
      for (let j = 0; j < part.length; j++) offsets[j + 1] = offsets[j]! + part[j]!.length;
      chunks.push({ text: part.join(''), offsets });
    }
    return new StringTable(chunks);
  }

  /** The same elements (sharing the chunks), with overrides of its own. */
  copy(): StringTable {
    const t = new StringTable(this.#chunks);
    if (this.#overrides) t.#overrides = new Map(this.#overrides);
    return t;
  }

  /** Number of elements. */
  get length(): number {
    return this.#length;
  }

  /** Element i. */
  at(i: number): string {
    const o = this.#overrides?.get(i);
    if (o !== undefined) return o;
    const { text, offsets } = this.#chunks[Math.floor(i / CHUNK)]!;
    const j = i % CHUNK;
    return text.slice(offsets[j], offsets[j + 1]);
  }

  /** Length of element i in UTF-16 code units. */
  lengthOf(i: number): number {
    const o = this.#overrides?.get(i);
    if (o !== undefined) return o.length;
    const { offsets } = this.#chunks[Math.floor(i / CHUNK)]!;
    const j = i % CHUNK;
    return offsets[j + 1]! - offsets[j]!;
  }

  /** Replaces element i. */
  override(i: number, value: string): void {
    (this.#overrides ??= new Map()).set(i, value);
  }

  /** Whether element i is exactly `key`, without slicing it out. */
  equals(i: number, key: string): boolean {
    const o = this.#overrides?.get(i);
    if (o !== undefined) return o === key;
    const { text, offsets } = this.#chunks[Math.floor(i / CHUNK)]!;
    const j = i % CHUNK;
    const start = offsets[j]!;
    const n = offsets[j + 1]! - start;
    if (n !== key.length) return false;
    for (let k = 0; k < n; k++) if (text.charCodeAt(start + k) !== key.charCodeAt(k)) return false;
    return true;
  }

  /** Every element as its own string (tens of milliseconds for a 150k-element table). */
  toArray(): string[] {
    const out = new Array<string>(this.length);
    for (let i = 0; i < out.length; i++) out[i] = this.at(i);
    return out;
  }
}

/** FNV-1a over the UTF-16 code units of text[start, end). */
export function hashRange(text: string, start: number, end: number): number {
  let h = 0x811c9dc5;
  for (let i = start; i < end; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/** FNV-1a over the UTF-16 code units of s. */
export function hashString(s: string): number {
  return hashRange(s, 0, s.length);
}

// The tables behind a metadata object's large string arrays (see convertSliced).
const tablesOf = new WeakMap<object, Map<string, StringTable>>();

/** Remembers that `metadata[key]` is backed by `table`. */
export function attachStringTable(metadata: object, key: string, table: StringTable): void {
  let m = tablesOf.get(metadata);
  if (!m) tablesOf.set(metadata, (m = new Map()));
  m.set(key, table);
}

/** Forgets the table behind `metadata[key]` (the value was replaced). */
export function detachStringTable(metadata: object, key: string): void {
  tablesOf.get(metadata)?.delete(key);
}

/** The table behind `metadata[key]`, if the native reader made one. */
export function stringTableOf(metadata: object, key: string): StringTable | undefined {
  return tablesOf.get(metadata)?.get(key);
}
