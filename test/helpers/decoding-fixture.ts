// A fixed set of seeded decoding runs on the TinyLM, returned as plain JSON: run in Node and inside
// workerd (test/runtime/decoding-workerd.test.ts) the results must be identical.
import { type GenerateOptions, generate } from '../../runtime/generate.ts';
import { TinyLM, tinyTokenizer } from './tiny-lm.ts';

export async function decodingFixture(): Promise<unknown[]> {
  const V = 12;
  const tok = tinyTokenizer(V);
  const out: unknown[] = [];
  const runs: Array<Partial<GenerateOptions>> = [
    { maxNewTokens: 40, temperature: 1, seed: 1, ignoreEos: true },
    { maxNewTokens: 40, temperature: 0.7, topK: 5, seed: 2 },
    { maxNewTokens: 40, temperature: 1.3, topP: 0.9, minP: 0.02, seed: 3, repetitionPenalty: 1.2 },
    { maxNewTokens: 40, temperature: 1, presencePenalty: 0.5, frequencyPenalty: 0.3, seed: 4, stop: ['ca'] },
    { maxNewTokens: 12, numBeams: 4, numReturnSequences: 3, lengthPenalty: 0.8, noRepeatNgramSize: 2 },
  ];
  for (const [i, opts] of runs.entries()) {
    const model = new TinyLM({ vocab: V, seed: 40 + i, scale: 1, eos: 0, eosBias: -1, contextLength: 64 });
    for await (const ev of generate(model, tok, [1, 2, 3], { ...opts, logprobs: true })) {
      if (ev.type === 'done') out.push(ev.result.sequences.map((s) => ({ ...s })));
      if (ev.type === 'token') out.push([ev.tokenId, ev.text, ev.logprob]);
    }
  }
  return out;
}
