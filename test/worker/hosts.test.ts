// The same GGUF gives the same results inside workerd: the committed fixtures (test/fixtures/hosts, the
// GGUFs imported as Data, the kernels as CompiledWasm modules by wrangler.toml's rules) run through the
// public runtime API here and must match expected.json, which Node produced (make.ts) and which
// test/e2e/hosts.test.ts re-checks in Node and in headless Chromium. Cases and tolerances:
// test/fixtures/hosts/cases.ts.
import { describe, expect, it } from 'vitest';
import kernels from '../../build/kernels.wasm';
import kernelsRelaxed from '../../build/kernels-relaxed.wasm';
import {
  diffReport,
  type Expected,
  MODEL_NAMES,
  type ModelName,
  runHostCases,
} from '../fixtures/hosts/cases.ts';
import expectedJson from '../fixtures/hosts/expected.json';
import gpt2F32 from '../fixtures/hosts/gpt2-f32.gguf';
import gpt2Q8 from '../fixtures/hosts/gpt2-q8_0.gguf';
import llamaF32 from '../fixtures/hosts/llama-f32.gguf';
import llamaQ8 from '../fixtures/hosts/llama-q8_0.gguf';

const expected = expectedJson as Expected;
const ggufs: Record<ModelName, Uint8Array> = {
  'llama-f32': new Uint8Array(llamaF32),
  'llama-q8_0': new Uint8Array(llamaQ8),
  'gpt2-f32': new Uint8Array(gpt2F32),
  'gpt2-q8_0': new Uint8Array(gpt2Q8),
};

describe('workerd', () => {
  it('greedy, seeded sampling and beam search give the committed results, both kernels builds', async () => {
    const report = await runHostCases('workerd', { simd: kernels, relaxed: kernelsRelaxed }, ggufs);
    // workerd validates relaxed SIMD: both builds ran (the relaxed one within TOLERANCES of the plain)
    expect(report.relaxedAvailable).toBe(true);
    expect(report.runs).toHaveLength(MODEL_NAMES.length * 3 * 2);
    expect(diffReport(expected, report)).toEqual([]);
  });

  it('the comparison can fail: a changed token id is reported', async () => {
    const report = await runHostCases('workerd', { simd: kernels }, ggufs);
    const tampered: Expected = structuredClone(expected);
    tampered.runs[4]!.sequences[0]!.tokens[31]! ^= 1; // llama-q8_0 seeded sampling, last token
    const diffs = diffReport(tampered, report);
    expect(diffs).toHaveLength(1);
    expect(diffs[0]).toMatch(/^workerd simd llama-q8_0 sampled seq 0: tokens/);
  });
});
