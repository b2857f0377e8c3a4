// llama.cpp itself (wllama's compat build in Node, scripts/lib/wllama-node.ts) reads what writeGGUF
// writes: every metadata value type, alignments 64 and 8 (32 in ggml-llamacpp.test.ts); it loads the
// tiny model and generates. (Not tested here, because wllama only reports it on the next call, after
// a long wait: llama.cpp refuses a file holding an array of arrays — "gguf_init_from_reader: key
// 't.arr.nested' has invalid GGUF type 9" — which is why writeGGUF refuses to write one unless asked.)
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { GGMLType } from '../../runtime/ggml.ts';
import { parseGGUF } from '../../runtime/gguf.ts';
import { loadWllama } from '../../scripts/lib/wllama-node.ts';
import { allTypesMetadata, tinyModelGGUF } from '../helpers/gguf-fixtures.ts';

const dir = mkdtempSync(join(tmpdir(), 'edgelm-gguf-llamacpp-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const extra = (nested: boolean) => allTypesMetadata(nested).filter(([k]) => k.startsWith('t.'));

describe('llama.cpp reads our GGUF', () => {
  for (const [type, alignment] of [
    // (F16, Q8_0 and Q4_0 at alignment 32 are loaded by ggml-llamacpp.test.ts)
    [GGMLType.F32, 64],
    [GGMLType.Q8_0, 8],
  ] as const) {
    it(`type ${type}, alignment ${alignment}, every metadata value type: loads and generates`, async () => {
      const bytes = tinyModelGGUF({
        type,
        alignment,
        extraMetadata: extra(false),
        asciiBytes: true,
        seed: 3,
      });
      expect(parseGGUF(bytes).alignment).toBe(alignment);
      const path = join(dir, `t${type}-a${alignment}.gguf`);
      writeFileSync(path, bytes);
      const ll = await loadWllama(path, 128);
      try {
        const out = await ll.complete('hello', 4, { withIds: true });
        expect(out.tokens.length).toBe(4);
        for (const id of out.tokens) expect(id).toBeLessThan(288);
      } finally {
        await ll.exit();
      }
    });
  }
});
