// ============================================================================
// A minimal binary min-heap over (key, left) pairs: smaller key first, ties by
// smaller left index. The BPE and SPM merge queues both need exactly this order
// (SPM negates its scores so "highest score first" becomes "smallest key").
// ============================================================================

/** Min-heap of merge candidates, stored in parallel arrays. */
export class MergeHeap {
  private keys: number[] = [];
  private lefts: number[] = [];
  private rights: number[] = [];
  private sizes: number[] = [];

  get length(): number {
    return this.keys.length;
  }

  clear(): void {
    this.keys.length = 0;
    this.lefts.length = 0;
    this.rights.length = 0;
    this.sizes.length = 0;
  }

  private less(i: number, j: number): boolean {
    const ki = this.keys[i];
    const kj = this.keys[j];
    return ki < kj || (ki === kj && this.lefts[i] < this.lefts[j]);
  }

  private swap(i: number, j: number): void {
    const k = this.keys, l = this.lefts, r = this.rights, s = this.sizes;
    let t = k[i]; k[i] = k[j]; k[j] = t;
    t = l[i]; l[i] = l[j]; l[j] = t;
    t = r[i]; r[i] = r[j]; r[j] = t;
    t = s[i]; s[i] = s[j]; s[j] = t;
  }

  push(key: number, left: number, right: number, size: number): void {
    let i = this.keys.length;
    this.keys.push(key);
    this.lefts.push(left);
    this.rights.push(right);
    this.sizes.push(size);
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.less(i, p)) break;
      this.swap(i, p);
      i = p;
    }
  }

  /** Removes the top entry; its fields are left in `top`. */
  pop(top: { left: number; right: number; size: number }): void {
    top.left = this.lefts[0];
    top.right = this.rights[0];
    top.size = this.sizes[0];
    const last = this.keys.length - 1;
    this.swap(0, last);
    this.keys.pop();
    this.lefts.pop();
    this.rights.pop();
    this.sizes.pop();
    let i = 0;
    const n = last;
    for (;;) {
      const a = 2 * i + 1;
      const b = a + 1;
      let m = i;
      if (a < n && this.less(a, m)) m = a;
      if (b < n && this.less(b, m)) m = b;
      if (m === i) break;
      this.swap(i, m);
      i = m;
    }
  }
}
