// llama.cpp (wllama's compat build in Node) against our runtime on one GGUF: greedy tokens with
// teacher forcing. At each step we compute our top-2 logits; where the gap is at least `margin`
// llama.cpp's token must be our top token; either way we feed llama.cpp's token, so the two never
// fork after a near-tie. Returns what the caller asserts on.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Runtime } from '../../runtime/index.ts';
import { loadWllama } from '../../scripts/lib/wllama-node.ts';

export interface LlamaCppComparison {
  /** llama.cpp's greedy tokens */
  theirs: number[];
  /** prompt tokens: llama.cpp's count, and our ids */
  theirPromptTokens: number;
  ourPromptIds: number[];
  /** steps whose margin was clear, with our top token and theirs */
  clear: Array<{ step: number; ours: number; theirs: number }>;
}

export async function compareWithLlamaCpp(
  runtime: Runtime,
  bytes: Uint8Array,
  o: {
    dir: string;
    name: string;
    prompt: string;
    n: number;
    context: number;
    margin: (top: number) => number;
  },
): Promise<LlamaCppComparison> {
  const path = join(o.dir, `${o.name.replace(/[^a-z0-9]+/gi, '-')}.gguf`);
  writeFileSync(path, bytes);
  const ll = await loadWllama(path, o.context);
  const res = await ll.complete(o.prompt, o.n, { withIds: true });
  await ll.exit();

  const m = runtime.loadModel(bytes, { maxSequences: 1 });
  const ids = m.promptIds(o.prompt);
  const seq = m.model.newSequence();
  let logits = m.model.prefill(seq, ids);
  const clear: LlamaCppComparison['clear'] = [];
  for (let i = 0; i < res.tokens.length; i++) {
    let a = 0;
    let b = -1;
    for (let v = 1; v < logits.length; v++) {
      if (logits[v] > logits[a]) {
        b = a;
        a = v;
      } else if (b < 0 || logits[v] > logits[b]) b = v;
    }
    if (logits[a] - logits[b] >= o.margin(logits[a])) clear.push({ step: i, ours: a, theirs: res.tokens[i] });
    logits = m.model.decode([seq], [res.tokens[i]]);
  }
  m.model.free(seq);
  m.dispose();
  return { theirs: res.tokens, theirPromptTokens: res.promptTokens, ourPromptIds: ids, clear };
}
