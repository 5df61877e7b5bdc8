/**
 * Stop strings across chunk boundaries: text that could still become a stop string is held back
 * until it either completes one (then it and everything after are dropped) or cannot.
 * @internal
 */
export class StopMatcher {
  readonly #stops: string[];
  #held = '';
  #stopped = false;

  constructor(stops: string[]) {
    this.#stops = stops;
  }

  /** True once a stop string was seen. */
  get stopped(): boolean {
    return this.#stopped;
  }

  /** Takes the next piece of text and returns what can be emitted now. */
  push(text: string): string {
    if (this.#stopped) return '';
    if (this.#stops.length === 0) return text;
    const buf = this.#held + text;
    let cut = -1;
    for (const s of this.#stops) {
      const i = buf.indexOf(s);
      if (i >= 0 && (cut < 0 || i < cut)) cut = i;
    }
    if (cut >= 0) {
      this.#stopped = true;
      this.#held = '';
      return buf.slice(0, cut);
    }
    // Hold back the longest suffix that is a prefix of some stop string.
    let keep = 0;
    for (const s of this.#stops) {
      for (let k = Math.min(s.length - 1, buf.length); k > keep; k--) {
        if (buf.endsWith(s.slice(0, k))) {
          keep = k;
          break;
        }
      }
    }
    this.#held = buf.slice(buf.length - keep);
    return buf.slice(0, buf.length - keep);
  }

  /** Releases held text at the end of generation. */
  flush(text = ''): string {
    const out = this.push(text);
    if (this.#stopped) return out;
    const rest = this.#held;
    this.#held = '';
    return out + rest;
  }
}
