// scripts/generate.ts end to end on a random GGUF model: --json output (greedy equals the library's
// greedy run; beams return sorted sequences) and typed errors for bad flags.
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { createRuntime } from '../../runtime/index.ts';
import { randomModel } from '../helpers/random-model.ts';

const run = promisify(execFile);
const dir = mkdtempSync(join(tmpdir(), 'edgelm-cli-'));
const file = join(dir, 'tiny.gguf');
writeFileSync(
  file,
  randomModel({
    arch: 'llama',
    dim: 32,
    nLayers: 1,
    nHeads: 4,
    ffnDim: 64,
    vocab: 300,
    context: 64,
    seed: 5,
    scale: 3,
  }),
);
const cli = (args: string[]) =>
  run('node_modules/.bin/tsx', ['scripts/generate.ts', '--model', file, ...args]);

describe('scripts/generate.ts', () => {
  it('--json greedy: same tokens as the library, prompt ids, timings', async () => {
    const { stdout } = await cli(['--prompt', 'hello', '--max-tokens', '6', '--json']);
    const out = JSON.parse(stdout);
    const lm = createRuntime(new WebAssembly.Module(readFileSync('build/kernels.wasm'))).loadModel(
      readFileSync(file),
    );
    const ids = lm.promptIds('hello');
    let tokens: number[] = [];
    for await (const ev of lm.generate(ids, { maxNewTokens: 6 }))
      if (ev.type === 'done') tokens = ev.result.sequences[0].tokens;
    expect(out.promptTokens).toEqual(ids);
    expect(out.tokens).toEqual(tokens);
    expect(out.sequences[0].tokens).toEqual(tokens);
    expect(typeof out.text).toBe('string');
    expect(out.timings.prefillMs).toBeGreaterThanOrEqual(0);
    expect(['stop', 'length']).toContain(out.finishReason);
  });

  it('--json beams: numReturn sequences sorted by score', async () => {
    const { stdout } = await cli([
      '--prompt',
      'abc',
      '--max-tokens',
      '6',
      '--beams',
      '3',
      '--num-return',
      '3',
      '--early-stopping',
      'never',
      '--length-penalty',
      '0.7',
      '--no-repeat-ngram',
      '2',
      '--json',
    ]);
    const out = JSON.parse(stdout);
    expect(out.sequences.length).toBe(3);
    const scores = out.sequences.map((s: { score: number }) => s.score);
    expect(scores).toEqual([...scores].sort((a: number, b: number) => b - a));
  });

  it('bad options exit 1 naming the option', async () => {
    const err = await cli(['--prompt', 'x', '--beams', '4', '--temperature', '0.9']).catch((e) => e);
    expect(err.code).toBe(1);
    expect(err.stderr).toContain('OptionsError (numBeams)');
    const err2 = await cli(['--prompt', 'x', '--max-tokens', '1000']).catch((e) => e);
    expect(err2.code).toBe(1);
    expect(err2.stderr).toContain('ContextLengthError');
  });
});
