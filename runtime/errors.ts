/**
 * Typed errors thrown by the runtime. Each carries a stable `code`, a `hint` that says what to do
 * next, and where known the offending `field` (option or key) or byte `offset`.
 * @example
 * try { parseGGUF(bytes) } catch (e) { if (e instanceof FormatError) console.error(e.message, e.offset) }
 */
export class EdgeLMError extends Error {
  code: string;
  hint?: string;
  field?: string;
  offset?: number;
  constructor(code: string, message: string, opts: { hint?: string; field?: string; offset?: number } = {}) {
    super(opts.hint ? `${message} (${opts.hint})` : message);
    this.name = new.target.name;
    this.code = code;
    this.hint = opts.hint;
    this.field = opts.field;
    this.offset = opts.offset;
  }
}
/** Bad bytes in a model file or checkpoint. */
export class FormatError extends EdgeLMError {
  constructor(message: string, opts: { hint?: string; field?: string; offset?: number } = {}) {
    super('invalid_format', message, opts);
  }
}
/** Valid input that edgelm does not support (tensor type, architecture, option). */
export class UnsupportedError extends EdgeLMError {
  constructor(message: string, opts: { hint?: string; field?: string; offset?: number } = {}) {
    super('unsupported', message, opts);
  }
}
/** The request or model would exceed a memory budget. */
export class BudgetError extends EdgeLMError {
  constructor(message: string, opts: { hint?: string; field?: string } = {}) {
    super('budget_exceeded', message, opts);
  }
}
/** A generation option is out of range or contradicts another. */
export class OptionsError extends EdgeLMError {
  constructor(message: string, opts: { hint?: string; field?: string } = {}) {
    super('invalid_option', message, opts);
  }
}
/** The prompt plus the requested tokens do not fit the context. */
export class ContextLengthError extends EdgeLMError {
  constructor(message: string, opts: { hint?: string; field?: string } = {}) {
    super('context_length_exceeded', message, opts);
  }
}
/** Generation stopped because its AbortSignal fired. */
export class AbortError extends EdgeLMError {
  constructor(message = 'generation aborted') {
    super('aborted', message);
  }
}
/**
 * A model's chat template failed: it does not parse, broke a rendering limit, or (`rejected`) its
 * own `raise_exception` refused the messages.
 */
export class ChatTemplateError extends EdgeLMError {
  rejected: boolean;
  constructor(message: string, opts: { rejected?: boolean } = {}) {
    super('chat_template_error', message, { field: opts.rejected ? 'messages' : 'tokenizer.chat_template' });
    this.rejected = opts.rejected ?? false;
  }
}
