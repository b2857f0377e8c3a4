import { createHash } from 'node:crypto';
import { Template } from '@huggingface/jinja';
import { describe, expect, it } from 'vitest';
import { compileChatTemplate } from '../../runtime/chat.ts';
import {
  CHAT_TEMPLATE,
  DAYS,
  instructSplits,
  MONTHS,
  PAIR_KINDS,
  type Pair,
  renderPair,
} from '../../scripts/data/instruct.ts';
import { loadAddresses, sotuSplit } from '../../scripts/data/sotu.ts';

const s1 = instructSplits(1);
const byKind = (ps: Pair[], k: string) => ps.filter((p) => p.kind === k);
const nums = (s: string) => (s.match(/\d+/g) ?? []).map(Number);
const pairKey = (a: number, b: number) => (a < b ? `${a},${b}` : `${b},${a}`);
// the letter-by-letter word in a reverse/count prompt
const wordOf = (prompt: string) => prompt.match(/((?:\b[a-z] )+[a-z]\b)/)![1].replace(/ /g, '');

describe('instruction set', () => {
  it('is deterministic in the seed', () => {
    expect(instructSplits(1)).toEqual(s1);
    const s2 = instructSplits(2);
    expect(s2.train.slice(0, 50)).not.toEqual(s1.train.slice(0, 50));
    expect(s2.heldOut).not.toEqual(s1.heldOut);
  });

  it('has thousands of training pairs and a held-out set for every kind', () => {
    expect(s1.train.length).toBeGreaterThan(20_000);
    for (const k of PAIR_KINDS) {
      expect(byKind(s1.train, k).length, k).toBeGreaterThanOrEqual(1000);
      expect(byKind(s1.heldOut, k).length, k).toBeGreaterThanOrEqual(10);
    }
    expect(byKind(s1.heldOut, 'add').length).toBe(100);
    expect(byKind(s1.heldOut, 'compare').length).toBe(100);
    expect(byKind(s1.heldOut, 'reverse').length).toBe(100);
    expect(byKind(s1.heldOut, 'count').length).toBe(100);
    for (const p of [...s1.train, ...s1.heldOut]) {
      expect(p.prompt).toBe(p.prompt.toLowerCase());
      expect(p.response).toBe(p.response.toLowerCase());
      expect(p.response.length).toBeLessThan(160);
    }
  });

  it('never shows a held-out prompt in training', () => {
    const trainPrompts = new Set(s1.train.map((p) => p.prompt));
    for (const p of s1.heldOut) expect(trainPrompts.has(p.prompt), p.prompt).toBe(false);
  });

  it('holds out number pairs, numbers and words that training never uses', () => {
    for (const kind of ['add', 'compare'] as const) {
      const train = new Set(
        byKind(s1.train, kind).map((p) => pairKey(...(nums(p.prompt) as [number, number]))),
      );
      for (const p of byKind(s1.heldOut, kind)) {
        const [a, b] = nums(p.prompt);
        expect(train.has(pairKey(a, b)), `${kind} ${a},${b}`).toBe(false);
      }
    }
    const trainNums = new Set(byKind(s1.train, 'next-number').map((p) => nums(p.prompt)[0]));
    for (const p of byKind(s1.heldOut, 'next-number')) expect(trainNums.has(nums(p.prompt)[0])).toBe(false);
    const trainWords = new Set(
      [...byKind(s1.train, 'reverse'), ...byKind(s1.train, 'count')].map((p) => wordOf(p.prompt)),
    );
    for (const p of [...byKind(s1.heldOut, 'reverse'), ...byKind(s1.heldOut, 'count')]) {
      expect(trainWords.has(wordOf(p.prompt)), wordOf(p.prompt)).toBe(false);
    }
  });

  it('answers correctly (checked by recomputing each answer from the prompt)', () => {
    for (const p of [...s1.train, ...s1.heldOut]) {
      const n = nums(p.prompt);
      switch (p.kind) {
        case 'add':
          expect(p.response).toBe(`${n[0]} plus ${n[1]} is ${n[0] + n[1]}`);
          break;
        case 'compare': {
          const adj = /smaller/.test(p.prompt) ? 'smaller' : /larger/.test(p.prompt) ? 'larger' : 'bigger';
          expect(p.response).toBe(
            `${adj === 'smaller' ? Math.min(n[0], n[1]) : Math.max(n[0], n[1])} is ${adj}`,
          );
          break;
        }
        case 'reverse': {
          const w = wordOf(p.prompt);
          expect(p.response.replace(/ /g, '')).toBe([...w].reverse().join(''));
          break;
        }
        case 'count':
          expect(p.response).toBe(`${wordOf(p.prompt).length} letters`);
          break;
        case 'next-number': {
          const after = /after|plus/.test(p.prompt);
          expect(p.response).toBe(
            `the number ${after ? 'after' : 'before'} ${n[0]} is ${n[0] + (after ? 1 : -1)}`,
          );
          break;
        }
        case 'next': {
          const list = DAYS.some((d) => p.prompt.endsWith(` ${d}`)) ? DAYS : MONTHS;
          const x = list.find((d) => p.prompt.endsWith(` ${d}`))!;
          const after = /after|follows/.test(p.prompt);
          const y = list[(list.indexOf(x) + (after ? 1 : list.length - 1)) % list.length];
          expect(p.response).toBe(
            `the ${list === DAYS ? 'day' : 'month'} ${after ? 'after' : 'before'} ${x} is ${y}`,
          );
          break;
        }
        default:
          break;
      }
    }
  });

  it('is frozen for seed 1: the shipped model was trained and evaluated on exactly this split', () => {
    // changing the generator changes weights/default.gguf's held-out set: retrain before updating these
    const h = (x: unknown) => createHash('sha256').update(JSON.stringify(x)).digest('hex').slice(0, 16);
    expect(h(s1.heldOut)).toBe('dce15a1ebb46eab2');
    expect(h(s1.train)).toBe('347abc5578b6f718');
  });

  it('renders with the chat template exactly as renderPair does', () => {
    const p = s1.heldOut[0];
    const r = renderPair(p);
    const messages = [
      { role: 'user', content: p.prompt },
      { role: 'assistant', content: p.response },
    ];
    expect(new Template(CHAT_TEMPLATE).render({ messages })).toBe(r.prompt + r.response);
    const chat = compileChatTemplate(CHAT_TEMPLATE);
    expect(
      chat([
        { role: 'system', content: 'ignored' },
        { role: 'user', content: p.prompt },
      ]),
    ).toBe(r.prompt);
  });
});

describe('State of the Union data', () => {
  it('splits by address, deterministically, about 5 % held out', () => {
    const all = loadAddresses();
    expect(all.length).toBe(233);
    expect(all[0].year).toBe(1790);
    const s = sotuSplit();
    expect(s.train.length + s.validation.length).toBe(all.length);
    const frac = s.validationText.length / (s.trainText.length + s.validationText.length);
    expect(frac).toBeGreaterThan(0.02);
    expect(frac).toBeLessThan(0.1);
    const trainKeys = new Set(s.train.map((a) => `${a.year} ${a.name}`));
    for (const a of s.validation) expect(trainKeys.has(`${a.year} ${a.name}`)).toBe(false);
    expect(sotuSplit().validationText).toBe(s.validationText);
    expect(/[\u2018\u2019\u201C\u201D]/.test(s.trainText)).toBe(false);
    expect(/ {2}/.test(s.trainText)).toBe(false);
    // frozen: the shipped model's validation loss is measured on exactly this text
    const h = (x: string) => createHash('sha256').update(x).digest('hex').slice(0, 16);
    expect(h(s.validationText)).toBe('ead8fc6dae635668');
    expect(h(s.trainText)).toBe('148750ca5a44d07f');
  });
});
