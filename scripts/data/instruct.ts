/**
 * Instruction-tuning data generated from templates and small tables, with a held-out split of
 * combinations never seen in training.
 *
 * Kinds, and what is held out:
 * - `fact-list`  "what are the days of the week" → "the days of the week are: monday, …"
 *                held out: one whole question template, plus a few (template, topic) pairs
 * - `fact-count` "how many days are in a week" → "there are 7 days in a week"
 *                held out: one (template, item) pair per item
 * - `next`       "what comes after monday" → "the day after monday is tuesday" (days and months,
 *                after and before) — held out: one template per (item, direction)
 * - `next-number` "what number comes after 37" → "the number after 37 is 38"
 *                held out: numbers never asked about in training (in either direction)
 * - `add`        "what is 23 plus 45" → "23 plus 45 is 68" — held out: number pairs {a, b} never
 *                seen in training in either order
 * - `compare`    "which is bigger, 37 or 52" → "52 is bigger" — held out: pairs {a, b}
 * - `reverse`    "spell c a t backwards" → "t a c" — held out: words never used by `reverse` or
 *                `count` in training
 * - `count`      "how many letters are in c a t" → "3 letters" — held out: as `reverse`
 *
 * Words for `reverse` and `count` are written letter by letter: a BPE token hides its letters
 * from a model this small, so asking it to spell an unseen whole-word token would test memory, not
 * the skill. Numbers stay one token per digit because the BPE trainer does not merge digits.
 * Everything is lowercase and deterministic in the seed.
 *
 * Rendering: `<|user|>{prompt}<|assistant|>{response}<|end|>`; the loss counts only the response
 * and `<|end|>`.
 */
import { loadAddresses } from './sotu.ts';

/** Start of a user prompt. */
export const USER = '<|user|>';
/** End of the prompt / start of the assistant's response. */
export const ASSISTANT = '<|assistant|>';
/** End of the response (the model's EOS). */
export const END = '<|end|>';
/** The three chat markers, in the order they join the vocabulary. */
export const CHAT_SPECIALS = [USER, ASSISTANT, END] as const;

/**
 * Jinja chat template stored in the GGUF (`tokenizer.chat_template`). System messages are dropped
 * (the model never saw any); a user turn already ends with the start-of-response marker.
 */
export const CHAT_TEMPLATE =
  "{% for m in messages %}{% if m.role == 'user' %}" +
  USER +
  '{{ m.content }}' +
  ASSISTANT +
  "{% elif m.role == 'assistant' %}{{ m.content }}" +
  END +
  '{% endif %}{% endfor %}';

export type PairKind =
  | 'fact-list'
  | 'fact-count'
  | 'next'
  | 'next-number'
  | 'add'
  | 'compare'
  | 'reverse'
  | 'count';

export const PAIR_KINDS: readonly PairKind[] = [
  'fact-list',
  'fact-count',
  'next',
  'next-number',
  'add',
  'compare',
  'reverse',
  'count',
];

export interface Pair {
  prompt: string;
  response: string;
  kind: PairKind;
}

export interface InstructSplits {
  train: Pair[];
  heldOut: Pair[];
}

export interface InstructOptions {
  /** Kinds with fewer training pairs are repeated (cycled) up to this many (default 1000). */
  minPerKind?: number;
  /** Held-out size for add, compare (default 100 each). */
  heldOutPairs?: number;
  /** Held-out words for reverse and for count (default 100 each, disjoint). */
  heldOutWords?: number;
  /** Training pairs for compare (default 6000), reverse and count (default 4000 each). */
  compareTrain?: number;
  wordTrain?: number;
}

/**
 * The text the model sees for one pair: the prompt part (not scored) and the response part
 * (scored, ends with END). Encode both with special tokens parsed.
 * @example
 * renderPair({ prompt: 'what is 2 plus 2', response: '2 plus 2 is 4', kind: 'add' })
 * // { prompt: '<|user|>what is 2 plus 2<|assistant|>', response: '2 plus 2 is 4<|end|>' }
 */
export function renderPair(p: { prompt: string; response: string }): { prompt: string; response: string } {
  return { prompt: USER + p.prompt + ASSISTANT, response: p.response + END };
}

/**
 * Plain text of pairs (prompt, space, response, newline), for adding to the BPE training text so the
 * vocabulary has the pieces the instructions use (e.g. every " x" single letter).
 * @example
 * trainByteBPE([sotu.trainText, instructCorpus(instructSplits(1).train)], 4093)
 */
export function instructCorpus(pairs: Pair[]): string {
  return pairs.map((p) => `${p.prompt} ${p.response}\n`).join('');
}

/** mulberry32: small seeded PRNG, uniform in [0, 1). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function shuffle<T>(xs: T[], rand: () => number): T[] {
  for (let i = xs.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [xs[i], xs[j]] = [xs[j], xs[i]];
  }
  return xs;
}

const pick = <T>(xs: readonly T[], rand: () => number): T => xs[Math.floor(rand() * xs.length)];

// ---- tables ----

export const DAYS = ['monday', 'tuesday', 'wednesday', 'thursday', 'friday', 'saturday', 'sunday'];
export const MONTHS = [
  'january',
  'february',
  'march',
  'april',
  'may',
  'june',
  'july',
  'august',
  'september',
  'october',
  'november',
  'december',
];
const COLOURS = ['red', 'orange', 'yellow', 'green', 'blue', 'indigo', 'violet'];
const PLANETS = ['mercury', 'venus', 'earth', 'mars', 'jupiter', 'saturn', 'uranus', 'neptune'];
const SEASONS = ['spring', 'summer', 'autumn', 'winter'];

// list facts: the nouns a question may use, and the one answer
const LIST_TOPICS: Array<{ nouns: string[]; answer: string }> = [
  {
    nouns: [
      'colours in the rainbow',
      'colours of the rainbow',
      'colors of the rainbow',
      'colors in the rainbow',
    ],
    answer: `the colours in the rainbow are: ${COLOURS.join(', ')}`,
  },
  {
    nouns: ['days of the week', 'days in a week', 'seven days of the week'],
    answer: `the days of the week are: ${DAYS.join(', ')}`,
  },
  {
    nouns: ['months of the year', 'months in a year', 'twelve months of the year'],
    answer: `the months of the year are: ${MONTHS.join(', ')}`,
  },
  {
    nouns: ['planets in the solar system', 'planets of the solar system', 'planets'],
    answer: `the planets in the solar system are: ${PLANETS.join(', ')}`,
  },
  {
    nouns: ['seasons of the year', 'four seasons', 'seasons'],
    answer: `the seasons of the year are: ${SEASONS.join(', ')}`,
  },
];
const LIST_TEMPLATES = [
  'what are the {n}',
  'list the {n}',
  'name the {n}',
  'tell me the {n}',
  'can you list the {n}',
  'which are the {n}',
  'please name the {n}',
  'give me the {n}',
  'what are all the {n}',
  'name all the {n}',
  'can you tell me the {n}',
];

// count facts: unit, container as asked, container as answered, number
const COUNT_ITEMS: Array<[string, string, number]> = [
  ['days', 'a week', 7],
  ['months', 'a year', 12],
  ['colours', 'the rainbow', 7],
  ['planets', 'the solar system', 8],
  ['seasons', 'a year', 4],
  ['hours', 'a day', 24],
  ['minutes', 'an hour', 60],
  ['seconds', 'a minute', 60],
  ['days', 'a year', 365],
  ['legs', 'a spider', 8],
  ['legs', 'a dog', 4],
  ['wheels', 'a bicycle', 2],
  ['sides', 'a triangle', 3],
  ['sides', 'a square', 4],
  ['letters', 'the alphabet', 26],
];
const COUNT_TEMPLATES = [
  'how many {u} are in {c}',
  'how many {u} are there in {c}',
  'how many {u} does {c} have',
  'what is the number of {u} in {c}',
  'tell me how many {u} are in {c}',
];

const NEXT_TEMPLATES = {
  after: [
    'what comes after {x}',
    'what {k} comes after {x}',
    'which {k} follows {x}',
    'what is the {k} after {x}',
    'what {k} is after {x}',
    'name the {k} after {x}',
  ],
  before: [
    'what comes before {x}',
    'what {k} comes before {x}',
    'which {k} precedes {x}',
    'what is the {k} before {x}',
    'what {k} is before {x}',
    'name the {k} before {x}',
  ],
};
const NUMBER_NEXT_TEMPLATES = {
  after: [
    'what number comes after {x}',
    'what comes after {x}',
    'what is the number after {x}',
    'what is {x} plus one',
  ],
  before: [
    'what number comes before {x}',
    'what comes before {x}',
    'what is the number before {x}',
    'what is {x} minus one',
  ],
};
const ADD_TEMPLATES = [
  'what is {a} plus {b}',
  'what is {a} + {b}',
  'add {a} and {b}',
  'what is the sum of {a} and {b}',
  '{a} plus {b}',
];
const COMPARE_TEMPLATES: Array<[string, 'bigger' | 'larger' | 'smaller']> = [
  ['which is bigger, {a} or {b}', 'bigger'],
  ['which number is bigger, {a} or {b}', 'bigger'],
  ['which is larger, {a} or {b}', 'larger'],
  ['which is smaller, {a} or {b}', 'smaller'],
  ['which number is smaller, {a} or {b}', 'smaller'],
];
const REVERSE_TEMPLATES = [
  'spell {w} backwards',
  'reverse the letters {w}',
  'write {w} backwards',
  'what is {w} backwards',
];
const LETTER_COUNT_TEMPLATES = [
  'how many letters are in {w}',
  'count the letters in {w}',
  'how many letters does {w} have',
];

const fill = (t: string, vars: Record<string, string | number>): string =>
  t.replace(/\{(\w)\}/g, (_, k: string) => String(vars[k]));

/** A word written letter by letter: "cat" → "c a t". */
export const spaced = (w: string): string => w.split('').join(' ');

let wordCache: string[] | undefined;

/**
 * Word pool for `reverse` and `count`: lowercase a–z words of 3–8 letters that occur at least 3
 * times in the State of the Union text, sorted.
 * @example
 * wordPool().includes('nation') // true
 */
export function wordPool(): string[] {
  if (wordCache) return wordCache;
  const counts = new Map<string, number>();
  for (const a of loadAddresses()) {
    for (const m of a.text.toLowerCase().matchAll(/\b[a-z]{3,8}\b/g))
      counts.set(m[0], (counts.get(m[0]) ?? 0) + 1);
  }
  wordCache = [...counts]
    .filter(([, c]) => c >= 3)
    .map(([w]) => w)
    .sort();
  return wordCache;
}

/** Unordered pair key. */
const pairKey = (a: number, b: number): string => (a < b ? `${a},${b}` : `${b},${a}`);

/**
 * Sample `n` distinct unordered pairs {a, b}, a ≠ b, of two-digit numbers.
 */
function samplePairs(n: number, rand: () => number, allowEqual: boolean): Set<string> {
  const out = new Set<string>();
  while (out.size < n) {
    const a = 10 + Math.floor(rand() * 90);
    const b = 10 + Math.floor(rand() * 90);
    if (a === b && !allowEqual) continue;
    out.add(pairKey(a, b));
  }
  return out;
}

function upsample(pairs: Pair[], min: number, rand: () => number): Pair[] {
  if (pairs.length === 0 || pairs.length >= min) return pairs;
  const out: Pair[] = [];
  while (out.length < min) out.push(...shuffle(pairs.slice(), rand));
  return out.slice(0, min);
}

/**
 * Generate the instruction pairs: a shuffled training set and a held-out set of unseen combinations
 * (see the file comment for what is held out per kind). Deterministic in `seed`.
 * @example
 * const { train, heldOut } = instructSplits(1);
 * // heldOut.find((p) => p.kind === 'add') → { prompt: 'what is 23 plus 45', response: '23 plus 45 is 68', kind: 'add' }
 */
export function instructSplits(seed: number, opts: InstructOptions = {}): InstructSplits {
  const rand = rng(seed);
  const minPerKind = opts.minPerKind ?? 1000;
  const nPairs = opts.heldOutPairs ?? 100;
  const nWords = opts.heldOutWords ?? 100;
  const compareTrain = opts.compareTrain ?? 6000;
  const wordTrain = opts.wordTrain ?? 4000;
  const train: Record<PairKind, Pair[]> = {
    'fact-list': [],
    'fact-count': [],
    next: [],
    'next-number': [],
    add: [],
    compare: [],
    reverse: [],
    count: [],
  };
  const heldOut: Pair[] = [];

  // fact-list: one template wholly held out, plus one random (template, topic) per topic
  {
    const kind = 'fact-list';
    const heldTemplate = Math.floor(rand() * LIST_TEMPLATES.length);
    LIST_TOPICS.forEach((topic) => {
      const combos: Array<[number, string]> = [];
      LIST_TEMPLATES.forEach((_, ti) => {
        for (const n of topic.nouns) combos.push([ti, n]);
      });
      const extra = combos.filter(([ti]) => ti !== heldTemplate);
      const [xt, xn] = pick(extra, rand);
      for (const [ti, n] of combos) {
        const p: Pair = { prompt: fill(LIST_TEMPLATES[ti], { n }), response: topic.answer, kind };
        const held = ti === heldTemplate || (ti === xt && n === xn);
        (held ? heldOut : train[kind]).push(p);
      }
    });
  }

  // fact-count: per item, one template held out
  for (const [u, c, num] of COUNT_ITEMS) {
    const kind = 'fact-count';
    const held = Math.floor(rand() * COUNT_TEMPLATES.length);
    COUNT_TEMPLATES.forEach((t, ti) => {
      const p: Pair = { prompt: fill(t, { u, c }), response: `there are ${num} ${u} in ${c}`, kind };
      (ti === held ? heldOut : train[kind]).push(p);
    });
  }

  // next: days and months, after and before; per (item, direction) one template held out
  for (const [k, list] of [
    ['day', DAYS],
    ['month', MONTHS],
  ] as const) {
    for (const dir of ['after', 'before'] as const) {
      list.forEach((x, i) => {
        const y = list[(i + (dir === 'after' ? 1 : list.length - 1)) % list.length];
        const ts = NEXT_TEMPLATES[dir];
        const held = Math.floor(rand() * ts.length);
        ts.forEach((t, ti) => {
          const p: Pair = {
            prompt: fill(t, { k, x }),
            response: `the ${k} ${dir} ${x} is ${y}`,
            kind: 'next',
          };
          (ti === held ? heldOut : train.next).push(p);
        });
      });
    }
  }

  // next-number: numbers 11..98; some numbers held out entirely (asked in neither direction)
  {
    const nums = shuffle(
      Array.from({ length: 88 }, (_, i) => i + 11),
      rand,
    );
    const held = new Set(nums.slice(0, 10));
    for (let x = 11; x <= 98; x++) {
      for (const dir of ['after', 'before'] as const) {
        const y = dir === 'after' ? x + 1 : x - 1;
        const response = `the number ${dir} ${x} is ${y}`;
        const ts = NUMBER_NEXT_TEMPLATES[dir];
        if (held.has(x)) {
          heldOut.push({ prompt: fill(pick(ts, rand), { x }), response, kind: 'next-number' });
        } else {
          for (const t of ts)
            train['next-number'].push({ prompt: fill(t, { x }), response, kind: 'next-number' });
        }
      }
    }
  }

  // add: all ordered two-digit pairs except the held-out unordered pairs
  {
    const held = samplePairs(nPairs, rand, true);
    const heldList = [...held].sort();
    for (const key of heldList) {
      let [a, b] = key.split(',').map(Number);
      if (rand() < 0.5) [a, b] = [b, a];
      heldOut.push({
        prompt: fill(pick(ADD_TEMPLATES, rand), { a, b }),
        response: `${a} plus ${b} is ${a + b}`,
        kind: 'add',
      });
    }
    for (let a = 10; a <= 99; a++) {
      for (let b = 10; b <= 99; b++) {
        if (held.has(pairKey(a, b))) continue;
        train.add.push({
          prompt: fill(pick(ADD_TEMPLATES, rand), { a, b }),
          response: `${a} plus ${b} is ${a + b}`,
          kind: 'add',
        });
      }
    }
  }

  // compare: held-out unordered pairs; training samples other pairs
  {
    const held = samplePairs(nPairs, rand, false);
    const cmp = (a: number, b: number): Pair => {
      const [t, adj] = pick(COMPARE_TEMPLATES, rand);
      const ans = adj === 'smaller' ? Math.min(a, b) : Math.max(a, b);
      return { prompt: fill(t, { a, b }), response: `${ans} is ${adj}`, kind: 'compare' };
    };
    for (const key of [...held].sort()) {
      let [a, b] = key.split(',').map(Number);
      if (rand() < 0.5) [a, b] = [b, a];
      heldOut.push(cmp(a, b));
    }
    while (train.compare.length < compareTrain) {
      const a = 10 + Math.floor(rand() * 90);
      const b = 10 + Math.floor(rand() * 90);
      if (a === b || held.has(pairKey(a, b))) continue;
      train.compare.push(cmp(a, b));
    }
  }

  // reverse and count: held-out words (disjoint sets) are used by neither in training
  {
    const words = shuffle(wordPool().slice(), rand);
    const heldRev = words.slice(0, nWords);
    const heldCnt = words.slice(nWords, 2 * nWords);
    const rest = words.slice(2 * nWords);
    const rev = (w: string): Pair => ({
      prompt: fill(pick(REVERSE_TEMPLATES, rand), { w: spaced(w) }),
      response: spaced(w.split('').reverse().join('')),
      kind: 'reverse',
    });
    const cnt = (w: string): Pair => ({
      prompt: fill(pick(LETTER_COUNT_TEMPLATES, rand), { w: spaced(w) }),
      response: `${w.length} letters`,
      kind: 'count',
    });
    for (const w of heldRev) heldOut.push(rev(w));
    for (const w of heldCnt) heldOut.push(cnt(w));
    for (let i = 0; i < wordTrain; i++) {
      train.reverse.push(rev(rest[i % rest.length]));
      train.count.push(cnt(rest[(i + 7919) % rest.length]));
    }
  }

  const all: Pair[] = [];
  for (const kind of PAIR_KINDS) all.push(...upsample(train[kind], minPerKind, rand));
  return { train: shuffle(all, rand), heldOut };
}
