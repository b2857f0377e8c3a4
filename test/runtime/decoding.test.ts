// Greedy, sampling, processors, options, stopping, streaming and abort — against direct
// computations on the float64 TinyLM (test/helpers/tiny-lm.ts) and hand-made distributions.
import { describe, expect, it } from 'vitest';
import { beamSearch } from '../../runtime/beam.ts';
import { ContextLengthError, OptionsError } from '../../runtime/errors.ts';
import {
  type GenerateEvent,
  type GenerateOptions,
  generate,
  resolveOptions,
  StopMatcher,
} from '../../runtime/generate.ts';
import { createRng } from '../../runtime/prng.ts';
import {
  argmax,
  logSoftmax,
  noRepeatNgramBans,
  processScores,
  sampleIndex,
  samplingDistribution,
  topKInto,
  topN,
} from '../../runtime/sample.ts';
import { TinyLM, TinyTokenizer, tinyTokenizer } from '../helpers/tiny-lm.ts';

async function collect(it: AsyncGenerator<GenerateEvent>) {
  const events: GenerateEvent[] = [];
  for await (const ev of it) events.push(ev);
  const done = events.at(-1);
  if (done?.type !== 'done') throw new Error('no done event');
  return { events, result: done.result, tokens: events.filter((e) => e.type === 'token') };
}

// forces `script[i]` as the i-th generated token (logit +10 vs −10), whatever the prompt
class ScriptLM {
  info: { vocabSize: number; contextLength: number };
  live = 0;
  private n = 0;
  constructor(
    V: number,
    private script: number[],
    private promptLen: number,
  ) {
    this.info = { vocabSize: V, contextLength: 512 };
  }
  private row(len: number) {
    const r = new Float32Array(this.info.vocabSize).fill(-10);
    const i = len - this.promptLen;
    r[this.script[i] ?? 1] = 10;
    return r;
  }
  newSequence() {
    this.live++;
    return { id: ++this.n, length: 0 };
  }
  fork(s: { length: number }) {
    this.live++;
    return { id: ++this.n, length: s.length };
  }
  free() {
    this.live--;
  }
  prefill(s: { length: number }, t: ArrayLike<number>) {
    s.length += t.length;
    return this.row(s.length);
  }
  decode(seqs: Array<{ length: number }>) {
    const out = new Float32Array(seqs.length * this.info.vocabSize);
    seqs.forEach((s, b) => {
      s.length++;
      out.set(this.row(s.length), b * this.info.vocabSize);
    });
    return out;
  }
}

const ctx = { vocabSize: 10, contextLength: 64, promptTokens: 4 };

describe('resolveOptions', () => {
  it('fills documented defaults', () => {
    const r = resolveOptions({ seed: 1 }, ctx);
    expect(r).toMatchObject({
      mode: 'greedy',
      maxNewTokens: 60, // min(256, 64 − 4)
      minNewTokens: 0,
      temperature: 0,
      topK: 0,
      topP: 1,
      minP: 0,
      repetitionPenalty: 1,
      numBeams: 1,
      lengthPenalty: 1,
      earlyStopping: false,
      numReturnSequences: 1,
      noRepeatNgramSize: 0,
      ignoreEos: false,
      seed: 1,
    });
    expect(resolveOptions({ topP: 0.9 }, ctx)).toMatchObject({ mode: 'sample', temperature: 1 });
    expect(resolveOptions({ numBeams: 4 }, ctx).mode).toBe('beam');
    expect(resolveOptions({ temperature: 0.7 }, ctx).mode).toBe('sample');
  });

  const bad: Array<[Partial<GenerateOptions> | Record<string, unknown>, string]> = [
    [{ numBeams: 0 }, 'numBeams'],
    [{ numBeams: 17 }, 'numBeams'],
    [{ numBeams: 2.5 }, 'numBeams'],
    [{ topP: 1.5 }, 'topP'],
    [{ topP: 0 }, 'topP'],
    [{ temperature: -1 }, 'temperature'],
    [{ temperature: Number.NaN }, 'temperature'],
    [{ topK: -1 }, 'topK'],
    [{ minP: 2 }, 'minP'],
    [{ numReturnSequences: 3, numBeams: 2 }, 'numReturnSequences'],
    [{ numBeams: 4, temperature: 0.8 }, 'numBeams'],
    [{ numBeams: 4, topK: 5 }, 'numBeams'],
    [{ minNewTokens: 10, maxNewTokens: 5 }, 'minNewTokens'],
    [{ maxNewTokens: 0 }, 'maxNewTokens'],
    [{ maxNewTokens: '5' } as unknown as Record<string, unknown>, 'maxNewTokens'],
    [{ repetitionPenalty: 0 }, 'repetitionPenalty'],
    [{ presencePenalty: 3 }, 'presencePenalty'],
    [{ frequencyPenalty: Number.POSITIVE_INFINITY }, 'frequencyPenalty'],
    [{ seed: 1.5 }, 'seed'],
    [{ stop: ['ok', ''] }, 'stop'],
    [{ stop: 'x' } as unknown as Record<string, unknown>, 'stop'],
    [{ stop: Array(17).fill('s') }, 'stop'],
    [{ stopTokenIds: [10] }, 'stopTokenIds'],
    [{ stopTokenIds: [-1] }, 'stopTokenIds'],
    [{ topLogprobs: 3 }, 'topLogprobs'],
    [{ logprobs: true, topLogprobs: 21 }, 'topLogprobs'],
    [{ logprobs: true, topLogprobs: 2, numBeams: 2 }, 'topLogprobs'],
    [{ earlyStopping: 'sometimes' } as unknown as Record<string, unknown>, 'earlyStopping'],
    [{ noRepeatNgramSize: -2 }, 'noRepeatNgramSize'],
    [{ lengthPenalty: Number.NaN }, 'lengthPenalty'],
    [{ beams: 4 } as Record<string, unknown>, 'beams'],
    [JSON.parse('{"__proto__": {"numBeams": 8}}'), '__proto__'],
  ];
  for (const [o, field] of bad) {
    it(`rejects ${JSON.stringify(o)} naming ${field}`, () => {
      let err: unknown;
      try {
        resolveOptions(o as Partial<GenerateOptions>, ctx);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(OptionsError);
      expect((err as OptionsError).field).toBe(field);
    });
  }

  it('throws ContextLengthError when prompt + maxNewTokens exceeds the context', () => {
    expect(() => resolveOptions({ maxNewTokens: 61 }, ctx)).toThrow(ContextLengthError);
    expect(() => resolveOptions({}, { ...ctx, promptTokens: 64 })).toThrow(ContextLengthError);
    expect(resolveOptions({ maxNewTokens: 60 }, ctx).maxNewTokens).toBe(60);
  });
});

describe('prng', () => {
  it('matches the reference C xoshiro128** (same splitmix32 seeding, gcc) bit for bit', () => {
    // values printed by xoshiro128starstar.c (Blackman & Vigna) seeded as runtime/prng.ts does
    const golden: Record<number, number[]> = {
      0: [3809008728, 1133695204, 53579671, 2891528803, 139681546, 2203266335],
      42: [2837322924, 544945897, 479756282, 3500138142, 339756180, 113173290],
      123456789012345: [272480461, 1579693150, 2769739828, 749590635, 244142036, 2778684656],
    };
    for (const [seed, want] of Object.entries(golden)) {
      const r = createRng(Number(seed));
      expect(want.map(() => r.nextU32())).toEqual(want);
    }
  });
  it('gives uniforms in [0, 1) with mean 1/2 and variance 1/12 (±5 standard errors over 200k draws)', () => {
    const r = createRng(9);
    const n = 200_000;
    let s = 0;
    let s2 = 0;
    for (let i = 0; i < n; i++) {
      const u = r.next();
      expect(u >= 0 && u < 1).toBe(true);
      s += u;
      s2 += u * u;
    }
    const mean = s / n;
    expect(Math.abs(mean - 0.5)).toBeLessThan(5 * Math.sqrt(1 / 12 / n));
    expect(Math.abs(s2 / n - mean * mean - 1 / 12)).toBeLessThan(0.002);
  });
});

// direct implementations of the warpers, written from their definitions with full sorts
function directDistribution(x: number[], T: number, k: number, p: number, minP: number): number[] {
  let z = x.map((v) => v / T);
  const softmax = (a: number[]) => {
    const m = Math.max(...a.filter((v) => v > -Infinity));
    const e = a.map((v) => (v > -Infinity ? Math.exp(v - m) : 0));
    const s = e.reduce((u, v) => u + v, 0);
    return e.map((v) => v / s);
  };
  if (k > 0) {
    const kth = [...z].sort((a, b) => b - a)[Math.min(k, z.length) - 1];
    z = z.map((v) => (v >= kth ? v : -Infinity));
  }
  if (p < 1) {
    const pr = softmax(z);
    const order = pr.map((_v, i) => i).sort((a, b) => pr[b] - pr[a] || a - b);
    let cum = 0;
    const keep = new Set<number>();
    for (const i of order) {
      if (cum >= p) break;
      keep.add(i);
      cum += pr[i];
    }
    z = z.map((v, i) => (keep.has(i) ? v : -Infinity));
  }
  if (minP > 0) {
    const pr = softmax(z);
    const mx = Math.max(...pr);
    z = z.map((v, i) => (pr[i] >= minP * mx ? v : -Infinity));
  }
  return softmax(z);
}

describe('samplers', () => {
  it('top-k / top-p / min-p / temperature distributions equal the direct computation (1e-12)', () => {
    const rng = createRng(5);
    let truncated = 0;
    for (let trial = 0; trial < 300; trial++) {
      const V = 2 + Math.floor(rng.next() * 40);
      // every other trial draws from a few integer logits, so equal probabilities (ties) are common
      const x = Array.from({ length: V }, () =>
        trial % 2 ? Math.floor(rng.next() * 4) : (rng.next() - 0.5) * 8,
      );
      const T = [0.3, 1, 2][trial % 3];
      const k = rng.next() < 0.5 ? Math.floor(rng.next() * (V + 2)) : 0;
      const p = rng.next() < 0.5 ? 0.05 + rng.next() * 0.95 : 1;
      const minP = rng.next() < 0.4 ? rng.next() * 0.5 : 0;
      const got = samplingDistribution(Float64Array.from(x), { temperature: T, topK: k, topP: p, minP });
      const want = directDistribution(x, T, k, p, minP);
      for (let i = 0; i < V; i++) expect(Math.abs(got[i] - want[i])).toBeLessThanOrEqual(1e-12);
      if (want.filter((v) => v > 0).length < V) truncated++;
    }
    expect(truncated).toBeGreaterThan(100);
  });

  it('draws by inverse CDF and matches the distribution empirically (±5σ per bin, 100k draws)', () => {
    const p = Float64Array.from([0.5, 0, 0.3, 0.2]);
    const at = (u: number) => sampleIndex(p, { next: () => u, nextU32: () => 0 });
    expect([at(0), at(0.49), at(0.5), at(0.79), at(0.8), at(0.999)]).toEqual([0, 0, 2, 2, 3, 3]);
    const rng = createRng(11);
    const n = 100_000;
    const hist = [0, 0, 0, 0];
    for (let i = 0; i < n; i++) hist[sampleIndex(p, rng)]++;
    for (let i = 0; i < 4; i++) {
      expect(Math.abs(hist[i] / n - p[i])).toBeLessThanOrEqual(
        5 * Math.sqrt((p[i] * (1 - p[i])) / n) + 1e-12,
      );
    }
  });

  it('logSoftmax (table-based exp) equals the Math.exp computation within 1e-13 on wide rows', () => {
    const rng = createRng(17);
    for (let trial = 0; trial < 50; trial++) {
      const spread = [1, 30, 700][trial % 3];
      const x = Float32Array.from({ length: 3000 }, () => (rng.next() - 0.5) * spread);
      const m = Math.max(...x);
      const lse = m + Math.log(x.reduce((a, v) => a + Math.exp(v - m), 0));
      const got = logSoftmax(x);
      for (let i = 0; i < x.length; i++) expect(Math.abs(got[i] - (x[i] - lse))).toBeLessThanOrEqual(1e-13);
    }
  });

  it('topKInto equals a full sort (value desc, index asc), skipping -Infinity and NaN', () => {
    const rng = createRng(23);
    for (let trial = 0; trial < 300; trial++) {
      const n = Math.floor(rng.next() * 60);
      // few distinct values, so ties are common
      const x = Float32Array.from({ length: n }, () => {
        const u = rng.next();
        return u < 0.1 ? Number.NEGATIVE_INFINITY : u < 0.15 ? Number.NaN : Math.floor(u * 8);
      });
      const k = 1 + Math.floor(rng.next() * 12);
      const idx = new Int32Array(k);
      const val = new Float64Array(k);
      const got = topKInto(x, k, idx, val);
      const want = Array.from(x, (v, i) => [i, v] as const)
        .filter(([, v]) => v > Number.NEGATIVE_INFINITY)
        .sort((a, b) => b[1] - a[1] || a[0] - b[0])
        .slice(0, k);
      expect(got).toBe(want.length);
      expect(Array.from(idx.subarray(0, got))).toEqual(want.map(([i]) => i));
    }
  });

  it('argmax / topN / logSoftmax', () => {
    expect(argmax([1, 3, 3, 2])).toBe(1);
    expect(topN([0.1, 0.7, 0.2, 0.7], 3)).toEqual([
      [1, 0.7],
      [3, 0.7],
      [2, 0.2],
    ]);
    const lp = logSoftmax([1, 2, 3]);
    const z = Math.log(Math.exp(1) + Math.exp(2) + Math.exp(3));
    expect(Array.from(lp)).toEqual(
      [1 - z, 2 - z, 3 - z].map((v, i) => (Math.abs(v - lp[i]) < 1e-15 ? lp[i] : v)),
    );
  });
});

describe('processors', () => {
  it('no-repeat-n-gram bans equal brute force over every n-gram', () => {
    const rng = createRng(3);
    for (let trial = 0; trial < 300; trial++) {
      const len = Math.floor(rng.next() * 12);
      const hist = Array.from({ length: len }, () => Math.floor(rng.next() * 3));
      const n = 1 + Math.floor(rng.next() * 4);
      const want = new Set<number>();
      for (let t = 0; t < 3; t++) {
        const ext = hist.concat(t);
        if (ext.length < n) continue;
        const last = ext.slice(-n).join(',');
        for (let i = 0; i + n <= hist.length; i++) if (hist.slice(i, i + n).join(',') === last) want.add(t);
      }
      expect(new Set(noRepeatNgramBans(hist, n))).toEqual(want);
    }
  });

  it('repetition (HF), presence/frequency (OpenAI), min-new-tokens and vocab masks', () => {
    const x = Float64Array.from([2, -2, 1, -1, 0.5, 3]);
    const counts = new Map([
      [4, 2],
      [2, 1],
    ]);
    processScores(x, [0, 1], [4, 2, 4], counts, {
      repetitionPenalty: 2,
      presencePenalty: 0.5,
      frequencyPenalty: 0.25,
      noRepeatNgramSize: 0,
      minNewTokens: 5,
      eosIds: [3],
      vocabLimit: 5,
    });
    // 0: 2/2; 1: −2·2; 2: 1/2 − 0.5 − 0.25; 3: EOS banned; 4: 0.5/2 − 0.5 − 0.5; 5: past the vocabulary
    expect(Array.from(x)).toEqual([1, -4, -0.25, -Infinity, -0.75, -Infinity]);
  });
});

describe('greedy and sampling through generate()', () => {
  const V = 12;
  const tok = tinyTokenizer(V);

  it('greedy = argmax of the reference forward at every step; logprobs are the model log-softmax (1e-12)', async () => {
    const model = new TinyLM({ vocab: V, seed: 4, eos: 0, eosBias: -3, contextLength: 64 });
    const prompt = [3, 5, 1];
    const { result, tokens } = await collect(
      generate(model, tok, prompt, { maxNewTokens: 12, logprobs: true, topLogprobs: 3 }),
    );
    const seq = result.sequences[0].tokens;
    let sum = 0;
    for (let i = 0; i < seq.length; i++) {
      const lp = logSoftmax(model.fullLogits(prompt.concat(seq.slice(0, i))));
      expect(seq[i]).toBe(argmax(lp));
      const ev = tokens[i] as Extract<GenerateEvent, { type: 'token' }>;
      expect(Math.abs(ev.logprob! - lp[seq[i]])).toBeLessThanOrEqual(1e-12);
      expect(ev.topLogprobs!.map((t) => t.id)).toEqual(topN(lp, 3).map(([id]) => id));
      sum += lp[seq[i]];
    }
    expect(Math.abs(result.sequences[0].score - sum)).toBeLessThanOrEqual(1e-9);
    expect(result.completionTokens).toBe(seq.length);
    expect(tokens.map((t) => (t as { text: string }).text).join('')).toBe(result.sequences[0].text);
    expect(model.stats.live).toBe(0);
  });

  it('numBeams = 1 beam search equals greedy (earlyStopping true and false)', async () => {
    for (let s = 0; s < 40; s++) {
      const model = new TinyLM({ vocab: V, seed: 100 + s, eos: 0, eosBias: 1, contextLength: 64 });
      const prompt = [1 + (s % 5)];
      const g = await collect(generate(model, tok, prompt, { maxNewTokens: 10 }));
      for (const earlyStopping of [true, false]) {
        const it = beamSearch(model, tok, prompt, {
          numBeams: 1,
          lengthPenalty: 1,
          earlyStopping,
          maxNewTokens: 10,
          numReturnSequences: 1,
          stop: [],
          repetitionPenalty: 1,
          presencePenalty: 0,
          frequencyPenalty: 0,
          noRepeatNgramSize: 0,
          minNewTokens: 0,
          eosIds: [0],
          vocabLimit: V,
        });
        let r = await it.next();
        while (!r.done) r = await it.next();
        expect(r.value.hypotheses[0].tokens).toEqual(g.result.sequences[0].tokens);
      }
    }
  });

  it('seeded sampling is reproducible, and different seeds differ', async () => {
    const model = new TinyLM({ vocab: V, seed: 8, scale: 0.7, contextLength: 64 });
    const opts = { maxNewTokens: 30, temperature: 1, topK: 8, topP: 0.95, ignoreEos: true };
    const a = await collect(generate(model, tok, [1], { ...opts, seed: 1234 }));
    const b = await collect(generate(model, tok, [1], { ...opts, seed: 1234 }));
    const c = await collect(generate(model, tok, [1], { ...opts, seed: 1235 }));
    expect(a.result.sequences[0].tokens).toEqual(b.result.sequences[0].tokens);
    expect(a.result.sequences[0].text).toBe(b.result.sequences[0].text);
    expect(a.result.sequences[0].tokens).not.toEqual(c.result.sequences[0].tokens);
  });

  it('sampled tokens follow samplingDistribution of the processed reference logits', async () => {
    // replay: the k-th draw uses the k-th uniform of the same seeded stream
    const model = new TinyLM({ vocab: V, seed: 21, scale: 0.8, contextLength: 64 });
    const opts = {
      maxNewTokens: 20,
      temperature: 0.9,
      topP: 0.8,
      minP: 0.05,
      repetitionPenalty: 1.3,
      seed: 77,
    };
    const { result } = await collect(generate(model, tok, [2, 3], { ...opts, ignoreEos: true }));
    const rng = createRng(77);
    const toks = result.sequences[0].tokens;
    for (let i = 0; i < toks.length; i++) {
      const x = model.fullLogits([2, 3, ...toks.slice(0, i)]);
      processScores(x, [2, 3], toks.slice(0, i), undefined, {
        repetitionPenalty: 1.3,
        presencePenalty: 0,
        frequencyPenalty: 0,
        noRepeatNgramSize: 0,
        minNewTokens: 0,
        eosIds: [],
        vocabLimit: V,
      });
      const p = samplingDistribution(x, { temperature: 0.9, topK: 0, topP: 0.8, minP: 0.05 });
      expect(p[toks[i]]).toBeGreaterThan(0);
      expect(sampleIndex(p, rng)).toBe(toks[i]);
    }
  });

  it('minNewTokens keeps EOS out; EOS ends with finishReason stop and is the last token', async () => {
    const model = new TinyLM({ vocab: V, seed: 31, eos: 0, eosBias: 40, contextLength: 64 });
    const r0 = await collect(generate(model, tok, [1], { maxNewTokens: 10 }));
    expect(r0.result.sequences[0].tokens).toEqual([0]);
    expect(r0.result.sequences[0].finishReason).toBe('stop');
    const r = await collect(generate(model, tok, [1], { maxNewTokens: 10, minNewTokens: 4 }));
    const t = r.result.sequences[0].tokens;
    expect(t.slice(0, 4)).not.toContain(0);
    expect(t.length).toBe(5);
    expect(t[4]).toBe(0);
    const r2 = await collect(generate(model, tok, [1], { maxNewTokens: 6, ignoreEos: true }));
    expect(r2.result.sequences[0].tokens.length).toBe(6);
    expect(r2.result.sequences[0].finishReason).toBe('length');
  });
});

describe('stopping and streaming', () => {
  it('a stop string spanning tokens never reaches the output; held text is released when it is not a stop', async () => {
    // pieces: 1 'a', 2 'b', 3 'c', 4 ' ', 5 'ab', 6 'ca'
    const tok = tinyTokenizer(12);
    const script = [1, 6, 2, 3, 5, 3, 1]; // "a" "ca" "b" "c" "ab" "c" "a" → "acabcabca"
    const model = new ScriptLM(12, script, 1);
    const r = await collect(generate(model, tok, [4], { maxNewTokens: 7, stop: ['bca'] }));
    expect(r.result.sequences[0].text).toBe('aca');
    expect(r.result.sequences[0].finishReason).toBe('stop');
    // 'b' and 'c' are held back as a possible start of 'bca'; 'ab' completes it
    expect(r.tokens.map((t) => (t as { text: string }).text)).toEqual(['a', 'ca', '', '', '']);
    expect(r.result.sequences[0].tokens).toEqual([1, 6, 2, 3, 5]);
    const r2 = await collect(generate(model, tok, [4], { maxNewTokens: 7, stop: ['bcx', 'cc'] }));
    expect(r2.result.sequences[0].text).toBe('acabcabca');
    expect(r2.tokens.map((t) => (t as { text: string }).text).join('')).toBe('acabcabca');
    expect(r2.result.sequences[0].finishReason).toBe('length');
    expect(model.live).toBe(0);
  });

  it('StopMatcher holds back exactly the longest suffix that could start a stop string', () => {
    const m = new StopMatcher(['abc', 'xx']);
    expect(m.push('zab', false)).toEqual({ text: 'z', stopped: false });
    expect(m.push('x', false)).toEqual({ text: 'ab', stopped: false });
    expect(m.push('y', false)).toEqual({ text: 'xy', stopped: false });
    expect(m.push('abc', false)).toEqual({ text: '', stopped: true });
  });

  it('stop token ids end the sequence', async () => {
    const tok = tinyTokenizer(12);
    const model = new ScriptLM(12, [1, 2, 3, 7, 1], 1);
    const r = await collect(generate(model, tok, [4], { maxNewTokens: 5, stopTokenIds: [7] }));
    expect(r.result.sequences[0].tokens).toEqual([1, 2, 3, 7]);
    expect(r.result.sequences[0].finishReason).toBe('stop');
  });

  it('never emits a broken UTF-8 character when a token ends mid-character', async () => {
    const e = new TextEncoder().encode('é€'); // c3 a9 e2 82 ac
    const tok = new TinyTokenizer(['</s>', 'a', e.slice(0, 1), e.slice(1, 3), e.slice(3, 5)], { eos: 0 });
    const model = new ScriptLM(5, [1, 2, 3, 4, 0], 1);
    const r = await collect(generate(model, tok, [1], { maxNewTokens: 5 }));
    const texts = r.tokens.map((t) => (t as { text: string }).text);
    expect(texts.join('')).toBe('aé€');
    for (const t of texts) expect(t).not.toContain('\uFFFD');
  });

  it('stops promptly with finishReason abort when the signal fires between steps', async () => {
    const V = 12;
    const model = new TinyLM({ vocab: V, seed: 5, contextLength: 512 });
    const ac = new AbortController();
    let n = 0;
    const events: GenerateEvent[] = [];
    for await (const ev of generate(model, tinyTokenizer(V), [1], {
      maxNewTokens: 400,
      ignoreEos: true,
      signal: ac.signal,
    })) {
      events.push(ev);
      if (ev.type === 'token' && ++n === 3) ac.abort();
    }
    const done = events.at(-1) as Extract<GenerateEvent, { type: 'done' }>;
    expect(done.result.sequences[0].finishReason).toBe('abort');
    expect(done.result.sequences[0].tokens.length).toBe(3);
    expect(model.stats.live).toBe(0);
    // a signal fired from a timer (another task) is seen: generation yields to the event loop
    const ac2 = new AbortController();
    setTimeout(() => ac2.abort(), 1);
    const r = await collect(
      generate(model, tinyTokenizer(V), [1], { maxNewTokens: 400, ignoreEos: true, signal: ac2.signal }),
    );
    expect(r.result.sequences[0].finishReason).toBe('abort');
    expect(r.result.sequences[0].tokens.length).toBeLessThan(400);
    // already aborted: nothing runs
    const r3 = await collect(generate(model, tinyTokenizer(V), [1], { maxNewTokens: 5, signal: ac.signal }));
    expect(r3.result.sequences[0]).toMatchObject({ tokens: [], finishReason: 'abort' });
    expect(model.stats.live).toBe(0);
  });

  it('rejects empty or out-of-vocabulary prompts with OptionsError', async () => {
    const model = new TinyLM({ vocab: 5, seed: 1 });
    await expect(collect(generate(model, tinyTokenizer(5), [], {}))).rejects.toBeInstanceOf(OptionsError);
    await expect(collect(generate(model, tinyTokenizer(5), [9], {}))).rejects.toBeInstanceOf(OptionsError);
  });
});

describe('beam search through generate()', () => {
  const V = 10;
  const tok = tinyTokenizer(V);

  it('streams beams events whose parent links rebuild each beam, then replays the best, then done', async () => {
    const model = new TinyLM({ vocab: V, seed: 12, eos: 0, eosBias: 0.5, contextLength: 64 });
    const { events, result } = await collect(
      generate(model, tok, [1, 2], { numBeams: 4, numReturnSequences: 3, maxNewTokens: 8, logprobs: true }),
    );
    const beams = events.filter((e) => e.type === 'beams') as Array<
      Extract<GenerateEvent, { type: 'beams' }>
    >;
    expect(beams.length).toBeGreaterThan(0);
    for (let i = 0; i < beams.length; i++) {
      expect(beams[i].step).toBe(i + 1);
      expect(beams[i].beams.length).toBeLessThanOrEqual(4);
      for (const b of beams[i].beams) {
        const parent = i === 0 ? [] : beams[i - 1].beams[b.parent].tokens;
        expect(b.tokens.slice(0, -1)).toEqual(parent);
      }
      const scores = beams[i].beams.map((b) => b.score);
      expect(scores).toEqual([...scores].sort((a, b) => b - a));
    }
    expect(result.sequences.length).toBe(3);
    const sc = result.sequences.map((s) => s.score);
    expect(sc).toEqual([...sc].sort((a, b) => b - a));
    const tokenEvents = events.filter((e) => e.type === 'token') as Array<
      Extract<GenerateEvent, { type: 'token' }>
    >;
    expect(tokenEvents.map((e) => e.tokenId)).toEqual(result.sequences[0].tokens);
    expect(tokenEvents.map((e) => e.text).join('')).toBe(result.sequences[0].text);
    // the per-token logprobs sum to the score × length term (lengthPenalty 1)
    const sum = tokenEvents.reduce((s, e) => s + e.logprob!, 0);
    expect(Math.abs(sum / result.sequences[0].tokens.length - result.sequences[0].score)).toBeLessThanOrEqual(
      1e-9,
    );
    expect(result.completionTokens).toBe(result.sequences.reduce((n, s) => n + s.tokens.length, 0));
    expect(model.stats.live).toBe(0);
    expect(model.stats.maxDecodeRows).toBeLessThanOrEqual(4);
  });

  it('frees every sequence when the consumer stops iterating early, and on abort', async () => {
    const model = new TinyLM({ vocab: V, seed: 13, contextLength: 64 });
    for await (const ev of generate(model, tok, [1], { numBeams: 3, maxNewTokens: 20, ignoreEos: true })) {
      if (ev.type === 'beams' && ev.step === 3) break;
    }
    expect(model.stats.live).toBe(0);
    const ac = new AbortController();
    const events: GenerateEvent[] = [];
    for await (const ev of generate(model, tok, [1], {
      numBeams: 3,
      numReturnSequences: 2,
      maxNewTokens: 20,
      ignoreEos: true,
      signal: ac.signal,
    })) {
      events.push(ev);
      if (ev.type === 'beams' && ev.step === 4) ac.abort();
    }
    const done = events.at(-1) as Extract<GenerateEvent, { type: 'done' }>;
    expect(done.result.sequences.length).toBe(2);
    expect(done.result.sequences[0].finishReason).toBe('abort');
    expect(done.result.sequences[0].tokens.length).toBe(4);
    expect(model.stats.live).toBe(0);
  });
});

describe('degenerate rows', () => {
  it('a model row of NaN is an error, not a hang or a bad token id', async () => {
    const model = new ScriptLM(5, [1, 2], 1);
    const bad = {
      ...model,
      info: model.info,
      newSequence: () => model.newSequence(),
      free: () => model.free(),
      fork: () => model.fork({ length: 0 }),
    } as any;
    bad.prefill = () => new Float32Array(5).fill(Number.NaN);
    bad.decode = () => new Float32Array(5).fill(Number.NaN);
    await expect(collect(generate(bad, tinyTokenizer(5), [1], { maxNewTokens: 3 }))).rejects.toThrow(
      /no finite logit/,
    );
    await expect(
      collect(generate(bad, tinyTokenizer(5), [1], { maxNewTokens: 3, numBeams: 2 })),
    ).rejects.toThrow(/finite/);
    expect(model.live).toBe(0);
  });

  it('beam search with every continuation banned returns the running beams', async () => {
    // vocabulary 3, noRepeatNgramSize 1: each token may appear once (prompt included) — the search runs dry
    const model = new TinyLM({ vocab: 3, seed: 2 });
    const { result } = await collect(
      generate(model, tinyTokenizer(3), [0], {
        maxNewTokens: 5,
        numBeams: 2,
        noRepeatNgramSize: 1,
        ignoreEos: true,
      }),
    );
    expect(result.sequences.length).toBeGreaterThan(0);
    for (const s of result.sequences) expect(new Set([0, ...s.tokens]).size).toBe(s.tokens.length + 1);
  });
});
