// The converter: small models written in each source format by helpers that follow the formats'
// specifications, converted to GGUF, then run by our runtime and compared with a float64 reference
// that applies the source format's own conventions to the source weights.
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseGGUF } from '../../runtime/gguf.ts';
import { createRuntime } from '../../runtime/index.ts';
import { convert } from '../../scripts/convert.ts';
import {
  type LlamaWeights,
  q8GroupRoundTrip,
  randomGpt2,
  randomLlama,
  refGpt2,
  refLlama,
  roundTo,
  smallSpmVocab,
  writeLlama2c,
  writeSafetensors,
  writeTokenizerBin,
} from '../helpers/source-formats.ts';

const runtime = createRuntime(new WebAssembly.Module(readFileSync('build/kernels.wasm')));
const dir = mkdtempSync(join(tmpdir(), 'edgelm-convert-'));
const C = { dim: 64, hidden: 96, layers: 2, heads: 4, kvHeads: 2, vocab: 320, ctx: 64 };
const TOKENS = [1, 300, 17, 290, 45, 260, 299, 3, 100, 311, 5, 280];

/** max |a - b| over every position, relative to the largest reference logit */
function relErr(ours: Float32Array, ref: Float64Array[], V: number): number {
  let scale = 0;
  let err = 0;
  ref.forEach((row, t) => {
    for (let v = 0; v < V; v++) {
      scale = Math.max(scale, Math.abs(row[v]));
      err = Math.max(err, Math.abs(ours[t * V + v] - row[v]));
    }
  });
  return err / scale;
}

function logitsOf(path: string, tokens: number[]): { logits: Float32Array; V: number } {
  const m = runtime.loadModel(readFileSync(path), { maxSequences: 1 });
  const seq = m.model.newSequence();
  return { logits: m.model.prefill(seq, tokens, true), V: m.info.vocabSize };
}

function llama2cFiles(w: LlamaWeights, version: 0 | 1 | 2, tag: string) {
  const model = join(dir, `${tag}.bin`);
  const tok = join(dir, `${tag}-tokenizer.bin`);
  writeFileSync(model, writeLlama2c(w, version, 32));
  const v = smallSpmVocab(w.vocab);
  writeFileSync(tok, writeTokenizerBin(v.pieces, v.scores));
  return { model, tok };
}

describe('llama2.c → GGUF', () => {
  for (const [version, shared] of [
    [0, true],
    [0, false],
    [1, true],
    [1, false],
    [2, true],
  ] as const) {
    it(`version ${version}, ${shared ? 'shared' : 'separate'} classifier: logits equal the llama2.c-convention reference (≤ 1e-4 × scale)`, () => {
      const w = randomLlama(C, 10 + version, shared);
      const f = llama2cFiles(w, version, `v${version}-${shared}`);
      const out = join(dir, `v${version}-${shared}.gguf`);
      const s = convert({ from: 'llama2c', model: f.model, tokenizer: f.tok, out, quiet: true });
      expect(s.architecture).toBe('llama');
      const file = parseGGUF(readFileSync(out));
      expect(file.tensor('output.weight') !== undefined).toBe(!shared);
      const ref = refLlama(version === 2 ? q8GroupRoundTrip(w) : w, TOKENS, 'adjacent');
      const { logits, V } = logitsOf(out, TOKENS);
      expect(relErr(logits, ref, V)).toBeLessThanOrEqual(1e-4);
    });
  }

  const sharedTok = join(process.cwd(), '..', 'shared', 'data', 'llama2-tokenizer.bin');
  it.skipIf(!existsSync(sharedTok))(
    'tokenizes and decodes as llama2.c does (BOS, leading space added, stripped after BOS) [needs ../shared/data/llama2-tokenizer.bin]',
    () => {
      const shared = sharedTok;
      const w = randomLlama({ ...C, dim: 32, hidden: 32, layers: 1, heads: 2, kvHeads: 2, vocab: 32000 }, 3);
      const model = join(dir, 'l2.bin');
      writeFileSync(model, writeLlama2c(w, 0));
      const out = join(dir, 'l2.gguf');
      convert({ from: 'llama2c', model, tokenizer: shared, out, quiet: true });
      const m = runtime.loadModel(readFileSync(out), { maxSequences: 1 });
      // SentencePiece (and llama2.c's encoder) give "Hello world" → 15043, 3186 after BOS = 1
      expect(m.promptIds('Hello world')).toEqual([1, 15043, 3186]);
      expect(m.tokenizer.decode([1, 15043, 3186], { skipSpecial: true })).toBe('Hello world');
    },
  );

  it('bad input: truncated checkpoint, vocabulary mismatch, bad header — one clear error, no output left', () => {
    const w = randomLlama(C, 5);
    const f = llama2cFiles(w, 0, 'bad');
    const full = readFileSync(f.model);
    const cut = join(dir, 'cut.bin');
    writeFileSync(cut, full.subarray(0, full.length - 100));
    const out = join(dir, 'bad.gguf');
    expect(() => convert({ from: 'llama2c', model: cut, tokenizer: f.tok, out, quiet: true })).toThrow(
      /cut\.bin.*truncated/,
    );
    const v = smallSpmVocab(C.vocab - 10);
    const tok2 = join(dir, 'small-tok.bin');
    writeFileSync(tok2, writeTokenizerBin(v.pieces, v.scores));
    expect(() => convert({ from: 'llama2c', model: f.model, tokenizer: tok2, out, quiet: true })).toThrow(
      /small-tok\.bin/,
    );
    const junk = join(dir, 'junk.bin');
    writeFileSync(junk, new Uint8Array(64).fill(0xff));
    expect(() => convert({ from: 'llama2c', model: junk, tokenizer: f.tok, out, quiet: true })).toThrow(
      /junk\.bin/,
    );
    expect(readdirSync(dir).filter((n) => n.startsWith('bad.gguf'))).toEqual([]);
  });
});

describe('Hugging Face → GGUF', () => {
  const hfLlama = (w: LlamaWeights, dtype: 'F32' | 'F16' | 'BF16', sharded: boolean, tag: string) => {
    const d = mkdtempSync(join(dir, `hf-${tag}-`));
    const t: Record<string, { data: Float32Array; shape: number[] }> = {};
    const kvDim = (w.dim / w.heads) * w.kvHeads;
    // HF stores q/k rows in rotate-half order; the source weights here ARE that order (the
    // reference applies rotate-half RoPE to them as HF does)
    t['model.embed_tokens.weight'] = { data: w.tok, shape: [w.vocab, w.dim] };
    for (let l = 0; l < w.layers; l++) {
      const p = `model.layers.${l}.`;
      t[`${p}input_layernorm.weight`] = { data: w.attnNorm[l], shape: [w.dim] };
      t[`${p}self_attn.q_proj.weight`] = { data: w.wq[l], shape: [w.dim, w.dim] };
      t[`${p}self_attn.k_proj.weight`] = { data: w.wk[l], shape: [kvDim, w.dim] };
      t[`${p}self_attn.v_proj.weight`] = { data: w.wv[l], shape: [kvDim, w.dim] };
      t[`${p}self_attn.o_proj.weight`] = { data: w.wo[l], shape: [w.dim, w.dim] };
      t[`${p}post_attention_layernorm.weight`] = { data: w.ffnNorm[l], shape: [w.dim] };
      t[`${p}mlp.gate_proj.weight`] = { data: w.w1[l], shape: [w.hidden, w.dim] };
      t[`${p}mlp.up_proj.weight`] = { data: w.w3[l], shape: [w.hidden, w.dim] };
      t[`${p}mlp.down_proj.weight`] = { data: w.w2[l], shape: [w.dim, w.hidden] };
    }
    t['model.norm.weight'] = { data: w.norm, shape: [w.dim] };
    if (w.cls) t['lm_head.weight'] = { data: w.cls, shape: [w.vocab, w.dim] };
    if (sharded) {
      const names = Object.keys(t);
      const half = Math.ceil(names.length / 2);
      const shards = [names.slice(0, half), names.slice(half)];
      const map: Record<string, string> = {};
      shards.forEach((ns, i) => {
        const file = `model-0000${i + 1}-of-00002.safetensors`;
        writeFileSync(join(d, file), writeSafetensors(Object.fromEntries(ns.map((n) => [n, t[n]])), dtype));
        for (const n of ns) map[n] = file;
      });
      writeFileSync(
        join(d, 'model.safetensors.index.json'),
        JSON.stringify({ metadata: {}, weight_map: map }),
      );
    } else writeFileSync(join(d, 'model.safetensors'), writeSafetensors(t, dtype));
    writeFileSync(
      join(d, 'config.json'),
      JSON.stringify({
        architectures: ['LlamaForCausalLM'],
        hidden_size: w.dim,
        intermediate_size: w.hidden,
        num_hidden_layers: w.layers,
        num_attention_heads: w.heads,
        num_key_value_heads: w.kvHeads,
        vocab_size: w.vocab,
        max_position_embeddings: w.ctx,
        rms_norm_eps: 1e-5,
        rope_theta: 10000,
        tie_word_embeddings: !w.cls,
      }),
    );
    const v = smallSpmVocab(w.vocab);
    writeFileSync(
      join(d, 'tokenizer.json'),
      JSON.stringify({
        model: {
          type: 'BPE',
          vocab: Object.fromEntries(v.pieces.map((p, i) => [p, i])),
          merges: [],
          byte_fallback: true,
        },
        added_tokens: [
          { id: 1, content: '<s>', special: true },
          { id: 2, content: '</s>', special: true },
        ],
      }),
    );
    writeFileSync(
      join(d, 'tokenizer_config.json'),
      JSON.stringify({ bos_token: '<s>', eos_token: '</s>', chat_template: '{{ messages[0].content }}' }),
    );
    return d;
  };
  const rounded = (w: LlamaWeights, dt: 'F32' | 'F16' | 'BF16'): LlamaWeights => {
    const r = (x: Float32Array) => roundTo(dt, x);
    return {
      ...w,
      tok: r(w.tok),
      attnNorm: w.attnNorm.map(r),
      ffnNorm: w.ffnNorm.map(r),
      wq: w.wq.map(r),
      wk: w.wk.map(r),
      wv: w.wv.map(r),
      wo: w.wo.map(r),
      w1: w.w1.map(r),
      w2: w.w2.map(r),
      w3: w.w3.map(r),
      norm: r(w.norm),
      cls: w.cls && r(w.cls),
    };
  };

  for (const [dtype, sharded, shared] of [
    ['F32', false, true],
    ['F16', true, false],
    ['BF16', false, true],
  ] as const) {
    it(`Llama ${dtype}${sharded ? ' sharded' : ''}: logits equal HF's rotate-half reference on the unpermuted weights (≤ 1e-4 × scale)`, () => {
      const w = randomLlama(C, 21, shared);
      const d = hfLlama(w, dtype, sharded, `${dtype}${sharded}`);
      const out = join(dir, `hf-${dtype}.gguf`);
      convert({ from: 'hf', dir: d, out, quiet: true });
      const ref = refLlama(rounded(w, dtype), TOKENS, 'half');
      const { logits, V } = logitsOf(out, TOKENS);
      expect(relErr(logits, ref, V)).toBeLessThanOrEqual(1e-4);
      const f = parseGGUF(readFileSync(out));
      expect(f.get('tokenizer.chat_template')).toBe('{{ messages[0].content }}');
    });
  }

  it("GPT-2: Conv1D weights transposed, c_attn kept fused; logits equal HF's reference (≤ 1e-4 × scale)", () => {
    const g = randomGpt2({ D: 64, L: 2, H: 4, V: 300, C: 64 }, 9);
    const d = mkdtempSync(join(dir, 'hf-gpt2-'));
    writeFileSync(join(d, 'model.safetensors'), writeSafetensors(g.t, 'F32'));
    writeFileSync(
      join(d, 'config.json'),
      JSON.stringify({
        architectures: ['GPT2LMHeadModel'],
        n_embd: 64,
        n_layer: 2,
        n_head: 4,
        vocab_size: 300,
        n_positions: 64,
      }),
    );
    // GPT-2's byte-level alphabet: printable bytes stand for themselves, the rest map to 256+n
    const bytes: Record<string, number> = {};
    let extra = 0;
    for (let b = 0; b < 256; b++) {
      const printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
      bytes[String.fromCodePoint(printable ? b : 256 + extra++)] = b;
    }
    for (let i = 256; i < 300; i++) bytes[`w${i}`] = i;
    writeFileSync(
      join(d, 'tokenizer.json'),
      JSON.stringify({ model: { type: 'BPE', vocab: bytes, merges: [] }, added_tokens: [] }),
    );
    const out = join(dir, 'gpt2.gguf');
    convert({ from: 'hf', dir: d, out, quiet: true });
    const f = parseGGUF(readFileSync(out));
    expect(f.tensor('blk.0.attn_qkv.weight')?.dims).toEqual([64, 192]);
    const toks = [5, 77, 200, 3, 150, 42, 9];
    const { logits, V } = logitsOf(out, toks);
    expect(relErr(logits, refGpt2(g, toks), V)).toBeLessThanOrEqual(1e-4);
  });

  it('bad input: unknown architecture, missing tensor, wrong shape, vocabulary mismatch', () => {
    const w = randomLlama(C, 4);
    const out = join(dir, 'hfbad.gguf');
    const d1 = hfLlama(w, 'F32', false, 'arch');
    const cfg = JSON.parse(readFileSync(join(d1, 'config.json'), 'utf8'));
    writeFileSync(join(d1, 'config.json'), JSON.stringify({ ...cfg, architectures: ['MistralForCausalLM'] }));
    expect(() => convert({ from: 'hf', dir: d1, out, quiet: true })).toThrow(
      /MistralForCausalLM is not supported/,
    );
    const d2 = hfLlama(w, 'F32', false, 'shape');
    writeFileSync(join(d2, 'config.json'), JSON.stringify({ ...cfg, intermediate_size: 128 }));
    expect(() => convert({ from: 'hf', dir: d2, out, quiet: true })).toThrow(
      /mlp\.gate_proj\.weight has shape/,
    );
    const d3 = hfLlama(w, 'F32', false, 'layers');
    writeFileSync(join(d3, 'config.json'), JSON.stringify({ ...cfg, num_hidden_layers: 3 }));
    expect(() => convert({ from: 'hf', dir: d3, out, quiet: true })).toThrow(/layers\.2\..* is missing/);
    const d4 = hfLlama(w, 'F32', false, 'vocab');
    writeFileSync(join(d4, 'config.json'), JSON.stringify({ ...cfg, vocab_size: 300 }));
    expect(() => convert({ from: 'hf', dir: d4, out, quiet: true })).toThrow(/shape|vocabulary/);
    expect(existsSync(out)).toBe(false);
  });
});

describe('GGUF re-quantisation', () => {
  it('f32 → q8_0 → f32 → q8_0 reproduces the same Q8_0 blocks; q4_0 keeps ≥ 90% argmax agreement', () => {
    const w = randomLlama(C, 31);
    const f = llama2cFiles(w, 1, 'rq');
    const f32 = join(dir, 'rq-f32.gguf');
    convert({ from: 'llama2c', model: f.model, tokenizer: f.tok, out: f32, quiet: true });
    const q8 = join(dir, 'rq-q8.gguf');
    convert({ from: 'gguf', model: f32, out: q8, type: 'q8_0', quiet: true });
    const back = join(dir, 'rq-back.gguf');
    convert({ from: 'gguf', model: q8, out: back, type: 'f32', quiet: true });
    const q8b = join(dir, 'rq-q8b.gguf');
    convert({ from: 'gguf', model: back, out: q8b, type: 'q8_0', quiet: true });
    const a = parseGGUF(readFileSync(q8));
    const b = parseGGUF(readFileSync(q8b));
    for (const t of a.tensors)
      expect(Buffer.from(b.tensor(t.name)!.data).equals(Buffer.from(t.data)), t.name).toBe(true);
    expect(a.tensor('blk.0.attn_q.weight')?.type).toBe(8);
    expect(a.tensor('blk.0.attn_norm.weight')?.type).toBe(0);

    const q4 = join(dir, 'rq-q4.gguf');
    convert({ from: 'gguf', model: f32, out: q4, type: 'q4_0', quiet: true });
    const ref = logitsOf(f32, TOKENS);
    const got = logitsOf(q4, TOKENS);
    let agree = 0;
    for (let t = 0; t < TOKENS.length; t++) {
      const am = (x: Float32Array) => {
        let best = 0;
        for (let v = 1; v < ref.V; v++) if (x[t * ref.V + v] > x[t * ref.V + best]) best = v;
        return best;
      };
      if (am(ref.logits) === am(got.logits)) agree++;
    }
    expect(agree / TOKENS.length).toBeGreaterThanOrEqual(0.9);
  });
});
