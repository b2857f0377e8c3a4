// llama.cpp reads our Q8_0, Q4_0 and F16 weights as we do. A model whose only path from input to logits is
// output.weight: one layer with its attention output and FFN down projection zero (so the residual
// stream is the embedding), and the embedding of the letter token number i the unit vector e_i.
// The logits at that position are then c·W[:, i] (c > 0), and llama.cpp's greedy token after the
// prompt "A" + i is the row of output.weight whose element i is largest — as llama.cpp dequantises it.
// Each column i has one planted winner row (value 1, every other row ≤ 0.5 in magnitude there); a
// misread layout (nibble halves swapped, scale misread, bytes shifted) picks other rows.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { fromF32, GGMLType, toF32 } from '../../runtime/ggml.ts';
import { type GGUFWriteTensor, parseGGUF, writeGGUF } from '../../runtime/gguf.ts';
import { loadWllama } from '../../scripts/lib/wllama-node.ts';
import { randomF32, tinyModelGGUF } from '../helpers/gguf-fixtures.ts';

const dir = mkdtempSync(join(tmpdir(), 'edgelm-ggml-llamacpp-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const DIM = 32;
const LETTERS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdef'; // 32 prompts, one per column
const byteToken = (c: string) => 3 + c.charCodeAt(0); // <0xNN> ids in the fixture's llama vocabulary

function probeModel(type: number): { bytes: Uint8Array; expected: number[] } {
  const base = parseGGUF(
    tinyModelGGUF({
      dim: DIM,
      nLayers: 1,
      nHeads: 2,
      nKvHeads: 1,
      ffnDim: 32,
      untied: true,
      asciiBytes: true,
    }),
  );
  const vocab = base.tensor('token_embd.weight')!.dims[1];
  // output.weight (vocab × DIM): small values, then one winner per column among ordinary tokens
  const w = randomF32(vocab * DIM, 77, 0.5);
  const winners = Array.from({ length: DIM }, (_, i) => 140 + 4 * i);
  for (let i = 0; i < DIM; i++) w[winners[i] * DIM + i] = 1;
  for (let v = 0; v < 3; v++) w.fill(-0.5, v * DIM, (v + 1) * DIM); // specials never win
  const outBytes = fromF32(type, w);
  // what we think llama.cpp will read: our dequantiser, argmax per column
  const deq = toF32(type, outBytes, w.length);
  const expected = Array.from({ length: DIM }, (_, i) => {
    let best = 0;
    for (let v = 1; v < vocab; v++) if (deq[v * DIM + i] > deq[best * DIM + i]) best = v;
    return best;
  });
  expect(expected).toEqual(winners); // the planted margin survives quantisation
  const emb = randomF32(vocab * DIM, 78, 0.1);
  LETTERS.split('').forEach((c, i) => {
    const row = emb.subarray(byteToken(c) * DIM, (byteToken(c) + 1) * DIM);
    row.fill(0);
    row[i] = 1;
  });
  const tensors: GGUFWriteTensor[] = base.tensors.map((t) => {
    const n = t.dims.reduce((a, b) => a * b, 1);
    if (t.name === 'token_embd.weight') return { ...t, data: fromF32(GGMLType.F32, emb) };
    if (t.name === 'output.weight') return { ...t, type, data: outBytes };
    if (t.name === 'output_norm.weight')
      return { ...t, data: fromF32(GGMLType.F32, new Float32Array(n).fill(1)) };
    if (t.name.endsWith('attn_output.weight') || t.name.endsWith('ffn_down.weight')) {
      return { ...t, data: fromF32(t.type, new Float32Array(n)) };
    }
    return t;
  });
  return { bytes: writeGGUF([...base.metadata], tensors), expected };
}

describe('llama.cpp dequantises our blocks as ggml.ts does (greedy token = argmax of one weight column)', () => {
  for (const [name, type] of [
    ['Q8_0', GGMLType.Q8_0],
    ['Q4_0', GGMLType.Q4_0],
    ['F16', GGMLType.F16],
  ] as const) {
    it(`${name}: all 32 columns pick the planted row`, async () => {
      const { bytes, expected } = probeModel(type);
      const path = join(dir, `${name}.gguf`);
      writeFileSync(path, bytes);
      const ll = await loadWllama(path, 64);
      const got: number[] = [];
      try {
        for (const c of LETTERS) got.push((await ll.complete(c, 1, { withIds: true })).tokens[0]);
      } finally {
        await ll.exit();
      }
      expect(got).toEqual(expected);
    });
  }
});
