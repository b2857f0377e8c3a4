// Limits from wrangler.toml [vars]; each is a string there, parsed once and checked here.
import type { KvType } from '../runtime/kernels.ts';

export interface Limits {
  /** largest `max_tokens` a request may ask for */
  maxTokens: number;
  /** largest prompt, in tokens (after the chat template) */
  maxPromptTokens: number;
  /** largest `num_beams` */
  maxBeams: number;
  /** largest `n` (choices per request, counting every prompt) */
  maxN: number;
  /** largest request body, in bytes (413 past it, before parsing) */
  maxBodyBytes: number;
  /** generations running at once per isolate (429 past it) */
  maxConcurrent: number;
  /** KV sequences across running requests (one per beam; 503 past it) */
  maxSequences: number;
  /** bound on max_tokens × beams × choices per request, so one request stays within the CPU limit */
  maxWorkTokens: number;
  /** context the KV cache is sized for (smaller of this and the model's) */
  maxContext: number;
  /** memory budget for one model's weights + KV cache + scratch, bytes */
  modelBudgetBytes: number;
  /** largest model object read from R2, bytes */
  r2MaxBytes: number;
  /**
   * memory of one isolate (JS heap + WASM memory; 128 MB on Workers): an R2 model whose object and
   * weights, held at once while it loads, pass 7/8 of it is refused from its header
   */
  isolateBytes: number;
  /** seconds in Retry-After on 429/503 */
  retryAfterSeconds: number;
  /** KV cache element type of every model loaded ('f16': half the KV memory, see runtime LoadOptions.kvType) */
  kvType: KvType;
}

export const DEFAULT_LIMITS: Limits = {
  maxTokens: 256,
  maxPromptTokens: 512,
  maxBeams: 8,
  maxN: 8,
  maxBodyBytes: 1 << 20,
  maxConcurrent: 4,
  maxSequences: 16,
  maxWorkTokens: 2048,
  maxContext: 1024,
  modelBudgetBytes: 96 << 20,
  r2MaxBytes: 64 << 20,
  isolateBytes: 128 << 20,
  retryAfterSeconds: 1,
  kvType: 'f32',
};

const VARS: Array<[Exclude<keyof Limits, 'kvType'>, string, number, number]> = [
  ['maxTokens', 'MAX_TOKENS', 1, 1 << 16],
  ['maxPromptTokens', 'MAX_PROMPT_TOKENS', 1, 1 << 20],
  ['maxBeams', 'MAX_BEAMS', 1, 64],
  ['maxN', 'MAX_N', 1, 64],
  ['maxBodyBytes', 'MAX_BODY_BYTES', 1024, 64 << 20],
  ['maxConcurrent', 'MAX_CONCURRENT', 1, 1024],
  ['maxSequences', 'MAX_SEQUENCES', 1, 1024],
  ['maxWorkTokens', 'MAX_WORK_TOKENS', 1, 1 << 24],
  ['maxContext', 'MAX_CONTEXT', 16, 1 << 20],
  ['modelBudgetBytes', 'MODEL_BUDGET_BYTES', 1 << 20, 2 ** 32],
  ['r2MaxBytes', 'R2_MAX_BYTES', 1024, 2 ** 32],
  ['isolateBytes', 'ISOLATE_BYTES', 1 << 20, 2 ** 32],
  ['retryAfterSeconds', 'RETRY_AFTER_SECONDS', 1, 3600],
];

/**
 * Reads the limits from a Worker's env ([vars] strings); a missing var keeps its default, a bad one
 * throws (a misconfigured deployment should fail loudly, not serve with a silent default).
 * @example
 * const limits = limitsFromEnv({ MAX_TOKENS: '128' }); // limits.maxTokens === 128
 */
export function limitsFromEnv(env: Record<string, unknown>): Limits {
  const out: Limits = { ...DEFAULT_LIMITS };
  for (const [key, name, min, max] of VARS) {
    const raw = env[name];
    if (raw === undefined || raw === null || raw === '') continue;
    const v = typeof raw === 'number' ? raw : Number(String(raw).trim());
    if (!Number.isInteger(v) || v < min || v > max)
      throw new Error(
        `wrangler.toml [vars] ${name} = ${JSON.stringify(raw)}: expected an integer in ${min}..${max}`,
      );
    out[key] = v;
  }
  const kv = env.KV_TYPE;
  if (kv !== undefined && kv !== null && kv !== '') {
    const t = String(kv).trim();
    if (t !== 'f32' && t !== 'f16')
      throw new Error(`wrangler.toml [vars] KV_TYPE = ${JSON.stringify(kv)}: expected "f32" or "f16"`);
    out.kvType = t;
  }
  return out;
}
