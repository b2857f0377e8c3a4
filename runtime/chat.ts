// Chat prompts (shared by the runtime API and the Worker): the model's own `tokenizer.chat_template` (untrusted: it comes from the model file)
// rendered with @huggingface/jinja under limits, then tokenized so that special-token strings are
// parsed in the template's text but stay plain text inside message contents.
import { Environment, Interpreter, Template } from '@huggingface/jinja';
import { ChatTemplateError, OptionsError } from './errors.ts';

/** What chat prompts need of a tokenizer (runtime/tokenizer.ts's Tokenizer has it). */
export interface ChatTokenizer {
  readonly vocabSize: number;
  readonly bos: number | undefined;
  readonly eos: number | undefined;
  readonly addBos: boolean;
  encode(text: string, opts?: { parseSpecial?: boolean; addBos?: boolean }): number[];
  decode(ids: ArrayLike<number>, opts?: { skipSpecial?: boolean }): string;
  isSpecial(id: number): boolean;
}
type TokenizerLike = ChatTokenizer;

export interface ChatMessage {
  role: string;
  content: string;
}

/** Caps on one template render. */
export interface RenderLimits {
  /** interpreter steps (node evaluations) */
  maxSteps: number;
  /** characters of any string the template builds, and of the output */
  maxOutputChars: number;
  /** largest integer value the template may compute (bounds range(), indent widths, …) */
  maxInt: number;
  /** elements that all range() calls together may produce */
  maxRangeItems: number;
}

export const RENDER_LIMITS: RenderLimits = {
  maxSteps: 200_000,
  maxOutputChars: 1 << 20,
  maxInt: 1_000_000,
  maxRangeItems: 10_000,
};

class TemplateLimitError extends Error {}

// counts evaluations and checks every value the template computes
class LimitedInterpreter extends Interpreter {
  steps = 0;
  constructor(
    env: Environment,
    private readonly limits: RenderLimits,
  ) {
    super(env);
  }
  override evaluate(statement: Parameters<Interpreter['evaluate']>[0], env: Environment) {
    if (++this.steps > this.limits.maxSteps)
      throw new TemplateLimitError(`chat template ran past ${this.limits.maxSteps} steps`);
    const v = super.evaluate(statement, env);
    const raw = (v as { value: unknown }).value;
    if (typeof raw === 'string' && raw.length > this.limits.maxOutputChars)
      throw new TemplateLimitError(
        `chat template built a string over ${this.limits.maxOutputChars} characters`,
      );
    if (typeof raw === 'number' && Number.isInteger(raw) && Math.abs(raw) > this.limits.maxInt)
      throw new TemplateLimitError(`chat template computed an integer over ${this.limits.maxInt}`);
    return v;
  }
}

const parsedTemplates = new Map<string, Template>();

function parseTemplate(source: string): Template {
  let t = parsedTemplates.get(source);
  if (!t) {
    try {
      t = new Template(source);
    } catch (e) {
      throw new ChatTemplateError(`the model's chat template does not parse: ${(e as Error).message}`);
    }
    if (parsedTemplates.size > 8) parsedTemplates.clear();
    parsedTemplates.set(source, t);
  }
  return t;
}

/**
 * Renders a Jinja chat template with caps on steps, string sizes, integers and range(); a template
 * that breaks a cap or throws becomes a ChatTemplateError (`rejected` when the template's own
 * `raise_exception` refused the messages), never a hang.
 * @example
 * renderTemplate('{% for m in messages %}{{ m.content }}{% endfor %}', { messages: [{ role: 'user', content: 'hi' }] }); // 'hi'
 */
export function renderTemplate(
  source: string,
  context: Record<string, unknown>,
  limits: RenderLimits = RENDER_LIMITS,
): string {
  const template = parseTemplate(source);
  let rangeItems = 0;
  const env = new Environment();
  const raised: { message?: string } = {};
  const globals: Record<string, unknown> = {
    false: false,
    true: true,
    none: null,
    False: false,
    True: true,
    None: null,
    raise_exception: (msg: unknown) => {
      raised.message = String(msg);
      throw new Error(String(msg));
    },
    range: (start: number, stop?: number, step = 1) => {
      if (stop === undefined) {
        stop = start;
        start = 0;
      }
      if (![start, stop, step].every(Number.isInteger) || step === 0)
        throw new Error('range() takes integers and a non-zero step');
      const n = Math.max(0, Math.ceil((stop - start) / step));
      rangeItems += n;
      if (rangeItems > limits.maxRangeItems)
        throw new TemplateLimitError(`chat template's range() went past ${limits.maxRangeItems} items`);
      return Array.from({ length: n }, (_, i) => start + i * step);
    },
    strftime_now: (format: unknown) => strftimeNow(String(format)),
  };
  for (const [k, v] of Object.entries(globals)) env.set(k, v);
  for (const [k, v] of Object.entries(context)) {
    if (k in globals) continue;
    env.set(k, v);
  }
  let out: unknown;
  try {
    out = new LimitedInterpreter(env, limits).run(template.parsed).value;
  } catch (e) {
    if (raised.message !== undefined)
      throw new ChatTemplateError(`the model's chat template rejected the messages: ${raised.message}`, {
        rejected: true,
      });
    const why = e instanceof TemplateLimitError ? e.message : `rendering failed: ${(e as Error)?.message}`;
    throw new ChatTemplateError(`the model's chat template could not be rendered (${why})`);
  }
  if (typeof out !== 'string') throw new ChatTemplateError('the chat template did not produce text');
  return out;
}

// enough of strftime for templates that print today's date
function strftimeNow(format: string): string {
  const d = new Date();
  const months = ['January', 'February', 'March', 'April', 'May', 'June', 'July', 'August', 'September'];
  months.push('October', 'November', 'December');
  const pad = (n: number) => String(n).padStart(2, '0');
  return format.slice(0, 200).replace(/%([dmYbBHMS%])/g, (_, c: string) => {
    if (c === 'd') return pad(d.getUTCDate());
    if (c === 'm') return pad(d.getUTCMonth() + 1);
    if (c === 'Y') return String(d.getUTCFullYear());
    if (c === 'b') return months[d.getUTCMonth()]!.slice(0, 3);
    if (c === 'B') return months[d.getUTCMonth()]!;
    if (c === 'H') return pad(d.getUTCHours());
    if (c === 'M') return pad(d.getUTCMinutes());
    if (c === 'S') return pad(d.getUTCSeconds());
    return '%';
  });
}

/** Prompt format used when the model file carries no chat template (documented in docs/worker.md). */
export const FALLBACK_TEMPLATE =
  "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}";

// message contents are replaced by these markers while rendering, so the rendered text can be
// split back into template text (specials parsed) and user text (specials literal)
const MARK_OPEN = '\uE000m';
const MARK_CLOSE = 'x\uE001';

interface Piece {
  text: string;
  fromUser: boolean;
}

const specialCache = new WeakMap<TokenizerLike, Array<{ text: string; id: number }>>();

// the special tokens' strings, longest first, for splitting template text
function specialPieces(tok: TokenizerLike): Array<{ text: string; id: number }> {
  let list = specialCache.get(tok);
  if (!list) {
    list = [];
    for (let id = 0; id < tok.vocabSize; id++) {
      if (!tok.isSpecial(id)) continue;
      const text = tok.decode([id], { skipSpecial: false });
      if (text.length > 0) list.push({ text, id });
    }
    list.sort((a, b) => b.text.length - a.text.length);
    specialCache.set(tok, list);
  }
  return list;
}

/**
 * Renders chat messages with the model's template and tokenizes the result: special-token strings
 * written by the template become special tokens; the same strings inside a message stay text.
 * Adds BOS when the tokenizer wants one and the template did not write it.
 * @example
 * const ids = chatPromptIds(model.tokenizer, model.chatTemplate, [{ role: 'user', content: 'hi' }]);
 */
export function chatPromptIds(
  tok: TokenizerLike,
  template: string | undefined,
  messages: ChatMessage[],
  limits: RenderLimits = RENDER_LIMITS,
): { ids: number[]; text: string } {
  const source = template ?? FALLBACK_TEMPLATE;
  const marked = messages.map((m, i) => ({ role: m.role, content: `${MARK_OPEN}${i}${MARK_CLOSE}` }));
  const tokenText = (id: number | undefined) =>
    id === undefined ? '' : tok.decode([id], { skipSpecial: false });
  const context = {
    messages: marked,
    add_generation_prompt: true,
    bos_token: tokenText(tok.bos),
    eos_token: tokenText(tok.eos),
  };
  const rendered = renderTemplate(source, context, limits);
  const text = renderTemplate(source, { ...context, messages }, limits);
  const pieces = splitMarked(rendered, messages);
  let ids: number[];
  if (pieces && pieces.map((p) => p.text).join('') === text) {
    // the template placed each content verbatim: user text is known exactly
    ids = tokenizePieces(tok, pieces);
  } else {
    // the template transformed the contents (trim, upper, …): tokenize the real rendering, and
    // refuse it if it holds special tokens the template alone (with markers) did not write
    ids = tokenizePieces(tok, [{ text, fromUser: false }]);
    const specialIds = new Set(specialPieces(tok).map((s) => s.id));
    const fromTemplate = tokenizePieces(tok, [{ text: rendered, fromUser: false }]).filter((id) =>
      specialIds.has(id),
    );
    const found = ids.filter((id) => specialIds.has(id));
    if (found.length !== fromTemplate.length || found.some((id, i) => id !== fromTemplate[i])) {
      const specials = specialPieces(tok);
      const at = messages.findIndex((m) =>
        specials.some((s) => m.content.toLowerCase().includes(s.text.toLowerCase())),
      );
      const param = at >= 0 ? `messages[${at}].content` : 'messages';
      throw new OptionsError(
        `${param} would put special tokens into the prompt through the model's chat template`,
        {
          field: param,
        },
      );
    }
  }
  if (tok.addBos && tok.bos !== undefined && ids[0] !== tok.bos) ids.unshift(tok.bos);
  return { ids, text };
}

function splitMarked(rendered: string, messages: ChatMessage[]): Piece[] | null {
  const pieces: Piece[] = [];
  const seen = new Set<number>();
  let at = 0;
  for (;;) {
    const open = rendered.indexOf(MARK_OPEN, at);
    if (open < 0) break;
    const close = rendered.indexOf(MARK_CLOSE, open);
    if (close < 0) return null;
    const digits = rendered.slice(open + MARK_OPEN.length, close);
    const idx = /^\d{1,4}$/.test(digits) ? Number(digits) : -1;
    const m = idx >= 0 ? messages[idx] : undefined;
    if (!m || seen.has(idx)) return null;
    seen.add(idx);
    pieces.push({ text: rendered.slice(at, open), fromUser: false });
    pieces.push({ text: m.content, fromUser: true });
    at = close + MARK_CLOSE.length;
  }
  pieces.push({ text: rendered.slice(at), fromUser: false });
  if (rendered.indexOf(MARK_CLOSE, at) >= 0) return null;
  return pieces;
}

// plain runs (template text and user text joined) are encoded without special parsing; special
// strings found in template text become their ids
function tokenizePieces(tok: TokenizerLike, pieces: Piece[]): number[] {
  const specials = specialPieces(tok);
  const firstChars = new Set(specials.map((s) => s.text[0]));
  const ids: number[] = [];
  let plain = '';
  const flush = () => {
    if (plain.length > 0)
      for (const id of tok.encode(plain, { parseSpecial: false, addBos: false })) ids.push(id);
    plain = '';
  };
  for (const p of pieces) {
    if (p.fromUser) {
      plain += p.text;
      continue;
    }
    let i = 0;
    let start = 0;
    while (i < p.text.length) {
      const s = firstChars.has(p.text[i]) ? specials.find((sp) => p.text.startsWith(sp.text, i)) : undefined;
      if (s) {
        plain += p.text.slice(start, i);
        flush();
        ids.push(s.id);
        i += s.text.length;
        start = i;
      } else i++;
    }
    plain += p.text.slice(start);
  }
  flush();
  return ids;
}

/**
 * Compiles a chat template into a renderer (same limits as `renderTemplate`).
 * @example
 * const render = compileChatTemplate(model.chatTemplate!, { bos: '<s>', eos: '</s>' });
 * render([{ role: 'user', content: 'hi' }]);
 */
export function compileChatTemplate(
  source: string,
  tokens: { bos?: string; eos?: string } = {},
): (messages: ChatMessage[], opts?: { addGenerationPrompt?: boolean }) => string {
  parseTemplate(source);
  return (messages, opts = {}) =>
    renderTemplate(source, {
      messages,
      add_generation_prompt: opts.addGenerationPrompt ?? true,
      bos_token: tokens.bos ?? '',
      eos_token: tokens.eos ?? '',
    });
}
