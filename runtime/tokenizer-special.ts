// Finding special-token strings in text (parseSpecial), leftmost first and longest at each start,
// in time linear in the text whatever the special tokens are. A trie walk from every position costs
// O(n · longest special), which a crafted model (a 1,000-character special token) and a long input
// turn into seconds; instead an Aho–Corasick automaton over the *reversed* special strings runs once
// over the reversed text, which yields, for every start position, the longest special starting
// there (the first terminal on the state's failure chain). A greedy left-to-right pass then picks
// matches. Classic Aho–Corasick (Aho & Corasick, CACM 1975); the reversal trick is ours.

import { IntPairMap } from './tokenizer-bpe.ts';

export interface SpecialMatch {
  start: number;
  end: number;
  id: number;
}

/**
 * Aho–Corasick over reversed special strings, UTF-16 code units, in typed arrays (~50 bytes per
 * trie node; nodes ≤ 1 + total characters of the specials, which the caller caps).
 */
export class SpecialMatcher {
  private readonly child: IntPairMap; // (state, code unit) → state
  private readonly fail: Int32Array;
  // per state: the longest special string that is a suffix of the state's string (-1: none)
  private readonly outId: Int32Array;
  private readonly outLen: Int32Array;
  readonly size: number;

  /** `specials`: [text, id] pairs; for equal texts the first pair wins; empty texts are ignored. */
  constructor(specials: Array<[string, number]>) {
    let total = 1;
    for (const [text] of specials) total += text.length;
    this.child = new IntPairMap(total);
    const firstChild = new Int32Array(total).fill(-1);
    const nextSibling = new Int32Array(total).fill(-1);
    const edgeChar = new Uint16Array(total);
    const termId = new Int32Array(total).fill(-1);
    const depth = new Int32Array(total);
    let nodes = 1;
    let count = 0;
    for (const [text, id] of specials) {
      if (text.length === 0) continue;
      let state = 0;
      for (let j = text.length - 1; j >= 0; j--) {
        const c = text.charCodeAt(j);
        let next = this.child.get(state, c);
        if (next < 0) {
          next = nodes++;
          this.child.add(state, c, next);
          edgeChar[next] = c;
          depth[next] = depth[state] + 1;
          nextSibling[next] = firstChild[state];
          firstChild[state] = next;
        }
        state = next;
      }
      if (termId[state] < 0) {
        termId[state] = id;
        count++;
      }
    }
    this.size = count;
    this.fail = new Int32Array(nodes);
    this.outId = new Int32Array(nodes).fill(-1);
    this.outLen = new Int32Array(nodes);
    // breadth-first: failure links, then each state's longest terminal suffix
    const queue = new Int32Array(nodes);
    let head = 0;
    let tail = 0;
    queue[tail++] = 0;
    while (head < tail) {
      const s = queue[head++];
      if (termId[s] >= 0) {
        this.outId[s] = termId[s];
        this.outLen[s] = depth[s];
      } else if (s !== 0) {
        this.outId[s] = this.outId[this.fail[s]];
        this.outLen[s] = this.outLen[this.fail[s]];
      }
      for (let t = firstChild[s]; t >= 0; t = nextSibling[t]) {
        if (s !== 0) {
          const c = edgeChar[t];
          let f = this.fail[s];
          while (f !== 0 && this.child.get(f, c) < 0) f = this.fail[f];
          const g = this.child.get(f, c);
          this.fail[t] = g >= 0 && g !== t ? g : 0;
        }
        queue[tail++] = t;
      }
    }
  }

  /** Non-overlapping matches in `s`, leftmost first, the longest special at each chosen start. */
  find(s: string): SpecialMatch[] {
    const out: SpecialMatch[] = [];
    const n = s.length;
    if (this.size === 0 || n === 0) return out;
    // longest special starting at each position, from one pass over the reversed text
    const bestId = new Int32Array(n);
    const bestLen = new Int32Array(n);
    let state = 0;
    for (let i = n - 1; i >= 0; i--) {
      const c = s.charCodeAt(i);
      for (;;) {
        const next = this.child.get(state, c);
        if (next >= 0) {
          state = next;
          break;
        }
        if (state === 0) break;
        state = this.fail[state];
      }
      bestId[i] = this.outId[state];
      bestLen[i] = this.outLen[state];
    }
    for (let i = 0; i < n; ) {
      if (bestId[i] >= 0) {
        out.push({ start: i, end: i + bestLen[i], id: bestId[i] });
        i += bestLen[i];
      } else {
        i++;
      }
    }
    return out;
  }
}
