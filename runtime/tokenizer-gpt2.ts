// GPT-2 byte-level pieces: the byte↔unicode table and the pre-tokenizer, written as a scanner.
//
// The pattern it implements (GPT-2's encoder.py, also tiktoken's r50k_base), with JavaScript's
// `\s`, `\p{L}`, `\p{N}` on code points (the `u` flag):
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// A backtracking engine spends O(n²) on `\s+(?!\S)` over long whitespace; the scanner reads each
// character once, so a piece list costs O(n).

// character classes
const OTHER = 0;
const LETTER = 1;
const NUMBER = 2;
const SPACE = 3;
const UNKNOWN = 255;

// single-character tests; compiled once, never from model metadata
const RE_L = /^\p{L}$/u;
const RE_N = /^\p{N}$/u;
const RE_S = /^\s$/u;

let bmpClass: Uint8Array | undefined;

function classify(cp: number): number {
  const ch = String.fromCodePoint(cp);
  if (RE_L.test(ch)) return LETTER;
  if (RE_N.test(ch)) return NUMBER;
  if (RE_S.test(ch)) return SPACE;
  return OTHER;
}

/** Class of a code point (BMP results memoised in a 64 KiB table). */
function classOf(cp: number): number {
  if (cp < 0x10000) {
    if (bmpClass === undefined) bmpClass = new Uint8Array(0x10000).fill(UNKNOWN);
    let k = bmpClass[cp];
    if (k === UNKNOWN) {
      k = classify(cp);
      bmpClass[cp] = k;
    }
    return k;
  }
  return classify(cp);
}

function codePointAt(s: string, i: number): number {
  const c = s.charCodeAt(i);
  if (c >= 0xd800 && c < 0xdc00 && i + 1 < s.length) {
    const d = s.charCodeAt(i + 1);
    if (d >= 0xdc00 && d < 0xe000) return ((c - 0xd800) << 10) + (d - 0xdc00) + 0x10000;
  }
  return c;
}

// end of the run of class k starting at i (the character at i is of class k)
function runEnd(s: string, i: number, k: number): number {
  const n = s.length;
  while (i < n) {
    const cp = codePointAt(s, i);
    if (classOf(cp) !== k) break;
    i += cp > 0xffff ? 2 : 1;
  }
  return i;
}

/**
 * Splits `s` into GPT-2 pre-tokenizer pieces; calls `emit(start, end)` (UTF-16 indices) for each,
 * in order. The pieces cover `s` exactly.
 * @example
 * const s = "it's  ok"
 * const pieces: string[] = []
 * gpt2Pieces(s, (a, b) => pieces.push(s.slice(a, b)))  // ['it', "'s", ' ', ' ok']
 */
export function gpt2Pieces(s: string, emit: (start: number, end: number) => void): void {
  const n = s.length;
  let i = 0;
  while (i < n) {
    const c = s.charCodeAt(i);
    // 's 't 're 've 'm 'll 'd (case-sensitive)
    if (c === 39 && i + 1 < n) {
      const c1 = s.charCodeAt(i + 1);
      if (c1 === 115 || c1 === 116 || c1 === 109 || c1 === 100) {
        emit(i, i + 2);
        i += 2;
        continue;
      }
      if (i + 2 < n) {
        const c2 = s.charCodeAt(i + 2);
        if ((c1 === 114 && c2 === 101) || (c1 === 118 && c2 === 101) || (c1 === 108 && c2 === 108)) {
          emit(i, i + 3);
          i += 3;
          continue;
        }
      }
    }
    // " ?X+" for X = letters, numbers, or neither-space-letter-nor-number
    if (c === 32 && i + 1 < n) {
      const k1 = classOf(codePointAt(s, i + 1));
      if (k1 !== SPACE) {
        const e = runEnd(s, i + 1, k1);
        emit(i, e);
        i = e;
        continue;
      }
    }
    const cp = codePointAt(s, i);
    const k = classOf(cp);
    if (k !== SPACE) {
      const e = runEnd(s, i, k);
      emit(i, e);
      i = e;
      continue;
    }
    // whitespace run [i, j); every \s character is in the BMP, one UTF-16 unit each
    const j = runEnd(s, i, SPACE);
    if (j === n || j - 1 === i) {
      // \s+(?!\S) to the end of the text, or a single space before a non-space: \s+
      emit(i, j);
      i = j;
    } else {
      // \s+(?!\S) backs off one character so the last one can lead the next piece
      emit(i, j - 1);
      i = j - 1;
    }
  }
}

/**
 * GPT-2's byte → unicode table: printable Latin-1 bytes map to themselves, the other 68 bytes to
 * U+0100.. in byte order, so every byte string is a printable string.
 * @example
 * gpt2ByteToUnicode()[0x20]  // 'Ġ'
 */
export function gpt2ByteToUnicode(): string[] {
  const out = new Array<string>(256);
  let extra = 0;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    out[b] = String.fromCharCode(printable ? b : 256 + extra++);
  }
  return out;
}
