import { hashString, type StringTable } from '../gguf/string-table.js';

/**
 * Lookup structures for vocabularies of 150k+ entries that can be built in slices of a few
 * milliseconds.
 *
 * A JS Map grows by doubling, and each doubling rehashes every entry in one synchronous step
 * (23 ms at 131k entries on a Zen 5 core, more than a frame, however the work around it is
 * sliced), and its tables churn the young generation. A vocabulary's size is known before it is
 * indexed, so {@link StringIndex} is sized once and never rehashes.
 */

/**
 * An index of the elements of a string table: string → its position. Open addressing over one
 * Int32Array of positions + 1 (0 = empty, so a fresh array needs no fill; load factor at most
 * 1/2), compared against the table in place.
 */
export class StringIndex {
  readonly #keys: StringTable;
  readonly #slots: Int32Array;
  readonly #mask: number;
  #size = 0;

  /** Indexes positions of `keys` as they are {@link add}ed; at most `capacity` of them. */
  constructor(keys: StringTable, capacity = keys.length) {
    let n = 16;
    while (n < capacity * 2) n *= 2;
    this.#keys = keys;
    this.#slots = new Int32Array(n);
    this.#mask = n - 1;
  }

  /**
   * Writes the slot array once, a piece per step: its first inserts land all over it, and each
   * first touch of a fresh page is a page fault (milliseconds for a 2 MB table in one step).
   */
  *touch(): Generator<void, void, void> {
    const piece = 65536;  // 256 KB
    for (let a = 0; a < this.#slots.length; a += piece) {
      this.#slots.fill(0, a, a + piece);
      yield;
    }
  }

  /** Distinct strings indexed. */
  get size(): number {
    return this.#size;
  }

  // The slot holding `key`, or the empty slot where it would go.
  #findKey(key: string): number {
    const slots = this.#slots, mask = this.#mask, keys = this.#keys;
    let i = hashString(key) & mask;
    for (let p = slots[i]!; p !== 0 && !keys.equals(p - 1, key); p = slots[i]!) i = (i + 1) & mask;
    return i;
  }

  /**
   * Indexes position `i` under the string keys.at(i). If that string is indexed already, `replace`
   * decides which position it keeps: the later one (true, like Map.set) or the first (false).
   */
  add(i: number, replace: boolean): void {
    const slot = this.#findKey(this.#keys.at(i));
    if (this.#slots[slot] === 0) {
      if (++this.#size * 2 > this.#slots.length) throw new RangeError(`StringIndex: more than ${this.#slots.length / 2} strings`);
      this.#slots[slot] = i + 1;
    } else if (replace) {
      this.#slots[slot] = i + 1;
    }
  }

  /** The position of `key`, if it is indexed. */
  get(key: string): number | undefined {
    const p = this.#slots[this.#findKey(key)]!;
    return p === 0 ? undefined : p - 1;
  }

  has(key: string): boolean {
    return this.#slots[this.#findKey(key)] !== 0;
  }
}

/**
 * A set of non-negative integers below 2^53 (code point pairs `a * 0x110000 + b`), spread over
 * many small Sets so that no single rehash is large.
 */
export class NumberSet {
  readonly #shards: Set<number>[] = Array.from({ length: 512 }, () => new Set<number>());

  static #shardOf(key: number): number {
    return (Math.imul(key % 0x4000000, 0x9e3779b1) ^ Math.imul(Math.floor(key / 0x4000000), 0x85ebca6b)) >>> 23;
  }

  add(key: number): void {
    this.#shards[NumberSet.#shardOf(key)]!.add(key);
  }

  has(key: number): boolean {
    return this.#shards[NumberSet.#shardOf(key)]!.has(key);
  }
}
