// The CI-sized training config end to end: tokenizer, both phases (vocabulary grown by the chat
// markers), a resumable checkpoint, and GGUFs that our parser reads and our runtime serves with the
// same logits as the trainer's own forward.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseGGUF } from '../../runtime/gguf.ts';
import { createRuntime } from '../../runtime/index.ts';
import { loadConfig } from '../../scripts/train/config.ts';
import { runTraining } from '../../scripts/train/loop.ts';
import { TrainModel } from '../../scripts/train/model.ts';

const repo = join(import.meta.dirname, '..', '..');
const root = mkdtempSync(join(tmpdir(), 'edgelm-train-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('train: CI config', () => {
  it('runs both phases, resumes from a checkpoint, writes GGUFs the runtime serves with the trainer logits', async () => {
    const cfg = loadConfig(join(repo, 'configs/train/ci.json'));
    cfg.out.f32 = 'out/ci.gguf';
    cfg.out.q8_0 = 'out/ci-q8_0.gguf';
    const quiet = () => {};
    // stop part-way through pretraining, then resume to the end
    const first = await runTraining(cfg, { root, fresh: true, stopAfter: 3, log: quiet });
    expect(first.files).toEqual([]);
    expect(first.state.phase).toBe('pretrain');
    expect(first.state.step).toBe(3);
    const lines: string[] = [];
    const r = await runTraining(cfg, { root, log: (s) => lines.push(s) });
    expect(lines.some((l) => l.startsWith('resuming'))).toBe(true);
    expect(r.files.length).toBe(2);
    expect(r.state.pretrainSteps).toBe(cfg.pretrain.steps);
    expect(existsSync(join(root, 'checkpoints/ci/pretrain-end/state.bin'))).toBe(true);

    const bytes = readFileSync(join(root, 'out/ci.gguf'));
    const f = parseGGUF(bytes);
    expect(f.get('general.architecture')).toBe('llama');
    expect(f.get('llama.embedding_length')).toBe(cfg.model.dim);
    expect(f.get('llama.block_count')).toBe(cfg.model.nLayers);
    expect(f.get('edgelm.train.steps')).toBe(cfg.pretrain.steps + cfg.instruct.steps);
    expect(JSON.parse(f.get('edgelm.train.config') as string).seed).toBe(cfg.seed);
    const vocab = (f.get('tokenizer.ggml.tokens') as string[]).length;
    expect(f.tensor('token_embd.weight')?.dims).toEqual([cfg.model.dim, vocab]);
    expect(f.tensor('blk.0.ffn_down.weight')?.dims).toEqual([cfg.model.ffnDim, cfg.model.dim]);
    const q8 = parseGGUF(readFileSync(join(root, 'out/ci-q8_0.gguf')));
    expect(q8.tensor('blk.0.attn_q.weight')?.type).toBe(8);

    // the runtime's logits for a prompt equal the trainer's forward on the same weights
    const rt = createRuntime(new WebAssembly.Module(readFileSync(join(repo, 'build/kernels.wasm'))));
    const lm = rt.loadModel(bytes);
    const ids = lm.chatPromptIds([{ role: 'user', content: 'what is 12 plus 7' }]);
    const seq = lm.model.newSequence();
    const got = lm.model.prefill(seq, ids, true);
    const T = ids.length;
    const mc = { ...cfg.model, vocabSize: vocab };
    const tm = new TrainModel(mc, 1, T);
    const params = new Float32Array(tm.nParams);
    for (const t of tm.tensors) {
      const src = f.tensor(t.name);
      if (!src) throw new Error(`missing ${t.name}`);
      params.set(new Float32Array(new Uint8Array(src.data).buffer), t.offset);
    }
    tm.setParams(params);
    const want = tm.forward(Int32Array.from(ids));
    let worst = 0;
    for (let i = 0; i < T * vocab; i++) worst = Math.max(worst, Math.abs(got[i] - want[i]));
    expect(worst).toBeLessThan(1e-3); // f32 both sides, different summation orders
  });
});
