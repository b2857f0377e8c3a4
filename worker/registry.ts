// The models an isolate serves: the bundled default (loaded on first use, reused) and optionally one
// from R2 (MODEL_BUCKET + MODEL_KEY), streamed into memory after its header checks out. A model that
// fails to load is a 503 naming why; the default model keeps serving.
//
// It also keeps the "in progress" marks: every generation step (a pending next() on the runtime's
// generator) is marked on entry and unmarked on a clean exit. A request killed for CPU mid-step
// never unmarks; stale() finds such marks so worker/index.ts can throw the WASM state away.
import { EdgeLMError, FormatError } from '../runtime/errors.ts';
import { parseGGUFHeader } from '../runtime/gguf.ts';
import type { KvType } from '../runtime/kernels.ts';
import { ApiError } from './errors.ts';
import type { Limits } from './limits.ts';
import type {
  GenEvent,
  GenOptions,
  ModelHandle,
  ModelInfoLike,
  ModelListing,
  ModelRegistry,
} from './model-handle.ts';

/** What the registry needs from the runtime (runtime/index.ts createRuntime satisfies it). */
export interface RuntimeLike {
  loadModel(
    bytes: Uint8Array,
    opts?: { budgetBytes?: number; maxContext?: number; maxSequences?: number; kvType?: KvType },
  ): ModelHandle & { generate(prompt: number[], opts?: GenOptions): AsyncGenerator<GenEvent> };
}

/** The slice of an R2 bucket the loader uses. */
export interface BucketLike {
  head(key: string): Promise<{ size: number } | null>;
  get(key: string): Promise<{ size: number; body: ReadableStream<Uint8Array> } | null>;
}

export interface RegistryConfig {
  /** makes fresh WASM state: called once, and again after a killed request */
  createRuntime: () => RuntimeLike;
  /** the bundled default model's GGUF bytes */
  defaultBytes: () => Uint8Array;
  defaultId: string;
  bucket?: BucketLike;
  /** R2 object key; also the model's id in the API */
  modelKey?: string;
  limits: Limits;
  /** seconds before a failed R2 load is tried again */
  retryFailedAfter?: number;
  log?: (e: Record<string, unknown>) => void;
}

interface Slot {
  id: string;
  source: 'bundle' | 'r2';
  model?: ModelHandle;
  loading?: Promise<ModelHandle>;
  error?: string;
  failedAt?: number;
}

/** Marks of generation steps in flight: id → tick at which the step was entered. */
export class InFlight {
  private nextId = 1;
  private tick = 0;
  readonly marks = new Map<number, number>();
  /** wraps a generator so each pending next() is marked */
  track(inner: AsyncGenerator<GenEvent>): AsyncGenerator<GenEvent> {
    const id = this.nextId++;
    const marks = this.marks;
    const self = this;
    return (async function* () {
      try {
        for (;;) {
          marks.set(id, ++self.tick);
          let r: IteratorResult<GenEvent>;
          try {
            r = await inner.next();
          } catch (e) {
            marks.delete(id);
            throw e;
          }
          marks.delete(id);
          if (r.done) return;
          yield r.value;
        }
      } finally {
        marks.delete(id);
        await inner.return(undefined);
      }
    })();
  }
  /**
   * True when a marked step has made no progress across `turns` event-loop turns. A live step
   * resumes within a turn or two (the runtime yields to the event loop between steps and computes
   * synchronously); a step whose request was killed never does.
   */
  async stale(turns = 4): Promise<boolean> {
    if (this.marks.size === 0) return false;
    const seen = new Map(this.marks);
    for (let i = 0; i < turns; i++) {
      await new Promise((r) => setTimeout(r, 0));
      for (const [id, tick] of seen) if (this.marks.get(id) !== tick) seen.delete(id);
      if (seen.size === 0) return false;
    }
    return true;
  }
}

/**
 * The runtime-backed ModelRegistry.
 * @example
 * const reg = new RuntimeRegistry({ createRuntime: () => createRuntime(kernels), defaultBytes: () => gguf,
 *   defaultId: 'edgelm-default', limits });
 * const { model } = await reg.get(undefined);
 */
export class RuntimeRegistry implements ModelRegistry {
  readonly defaultId: string;
  readonly inflight = new InFlight();
  private runtime: RuntimeLike | undefined;
  private readonly slots = new Map<string, Slot>();
  constructor(private readonly cfg: RegistryConfig) {
    this.defaultId = cfg.defaultId;
    this.slots.set(cfg.defaultId, { id: cfg.defaultId, source: 'bundle' });
    if (cfg.modelKey && cfg.bucket && cfg.modelKey !== cfg.defaultId)
      this.slots.set(cfg.modelKey, { id: cfg.modelKey, source: 'r2' });
  }

  list(): ModelListing[] {
    return [...this.slots.values()].map((s) => ({
      id: s.id,
      source: s.source,
      status: s.model ? 'loaded' : s.error ? 'unavailable' : 'not_loaded',
      info: s.model ? infoOf(s.model) : undefined,
      error: s.error,
    }));
  }

  async get(id: string | undefined): Promise<{ id: string; model: ModelHandle }> {
    const slot = this.slots.get(id ?? this.defaultId);
    if (!slot)
      throw new ApiError(404, `model ${JSON.stringify(id)} does not exist; GET /v1/models lists the models`, {
        param: 'model',
        code: 'model_not_found',
      });
    if (slot.model) return { id: slot.id, model: slot.model };
    const retryAfter = this.cfg.retryFailedAfter ?? 30;
    if (slot.error && slot.failedAt !== undefined) {
      const wait = Math.ceil(retryAfter - (Date.now() - slot.failedAt) / 1000);
      if (wait > 0) throw unavailable(slot, wait);
    }
    slot.loading ??= this.load(slot);
    try {
      const model = await slot.loading;
      return { id: slot.id, model };
    } catch (e) {
      slot.error =
        e instanceof ApiError || e instanceof EdgeLMError ? e.message : 'internal error while loading';
      slot.failedAt = Date.now();
      this.cfg.log?.({ level: 'error', event: 'model_load_failed', model: slot.id, error: String(e) });
      throw unavailable(slot, retryAfter);
    } finally {
      slot.loading = undefined;
    }
  }

  private async load(slot: Slot): Promise<ModelHandle> {
    const bytes = slot.source === 'bundle' ? this.cfg.defaultBytes() : await this.fetchR2(slot.id);
    this.runtime ??= this.cfg.createRuntime();
    const { limits } = this.cfg;
    const loaded = this.runtime.loadModel(bytes, {
      budgetBytes: limits.modelBudgetBytes,
      maxContext: limits.maxContext,
      maxSequences: limits.maxSequences,
      kvType: limits.kvType,
    });
    const inflight = this.inflight;
    const model: ModelHandle = {
      info: loaded.info,
      tokenizer: loaded.tokenizer,
      chatTemplate: loaded.chatTemplate,
      generate: (ids, opts) => inflight.track(loaded.generate(ids, opts)),
    };
    slot.model = model;
    slot.error = undefined;
    slot.failedAt = undefined;
    return model;
  }

  // streams the object into one buffer of its size; the header is parsed (and so validated against
  // the object's length) as soon as enough bytes are in, before the rest is read
  private async fetchR2(key: string): Promise<Uint8Array> {
    const bucket = this.cfg.bucket!;
    const max = this.cfg.limits.r2MaxBytes;
    const head = await bucket.head(key);
    if (!head) throw new ApiError(503, `R2 object ${JSON.stringify(key)} was not found in MODEL_BUCKET`);
    if (head.size > max)
      throw new ApiError(
        503,
        `R2 object ${JSON.stringify(key)} is ${head.size} bytes, over R2_MAX_BYTES (${max})`,
      );
    const obj = await bucket.get(key);
    if (!obj) throw new ApiError(503, `R2 object ${JSON.stringify(key)} disappeared while loading`);
    const size = obj.size;
    if (size > max)
      throw new ApiError(
        503,
        `R2 object ${JSON.stringify(key)} is ${size} bytes, over R2_MAX_BYTES (${max})`,
      );
    const bytes = new Uint8Array(size);
    const reader = obj.body.getReader();
    let at = 0;
    let headerOk = false;
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        if (at + value.length > size)
          throw new FormatError(`R2 object is longer than its stated ${size} bytes`);
        bytes.set(value, at);
        at += value.length;
        if (!headerOk) {
          const file = parseGGUFHeader(bytes.subarray(0, at), size);
          if (file) {
            headerOk = true;
            const weights = file.tensors.reduce((a, t) => a + t.byteSize, 0);
            if (weights > this.cfg.limits.modelBudgetBytes)
              throw new ApiError(
                503,
                `R2 model ${JSON.stringify(key)} has ${weights} bytes of weights, over MODEL_BUDGET_BYTES (${this.cfg.limits.modelBudgetBytes})`,
              );
            // while it loads, the object and the weights copied into WASM memory are both alive:
            // past the isolate's memory that is an out-of-memory kill, not an error anyone can read
            const room = Math.floor((this.cfg.limits.isolateBytes / 8) * 7);
            if (size + weights > room)
              throw new ApiError(
                503,
                `R2 model ${JSON.stringify(key)} needs ${size + weights} bytes while loading (the ${size}-byte object and ${weights} bytes of weights at once), over 7/8 of ISOLATE_BYTES (${this.cfg.limits.isolateBytes}); use a smaller or more quantised model`,
              );
          }
        }
      }
    } catch (e) {
      await reader.cancel().catch(() => {});
      throw e;
    }
    if (at !== size) throw new FormatError(`R2 object ended after ${at} of ${size} bytes (truncated)`);
    if (!headerOk) throw new FormatError('R2 object has no complete GGUF header');
    return bytes;
  }
}

function infoOf(m: ModelHandle): ModelInfoLike {
  const i = m.info;
  return {
    architecture: i.architecture,
    vocabSize: i.vocabSize,
    contextLength: i.contextLength,
    quantization: i.quantization,
    parameters: i.parameters,
    memory: i.memory,
  };
}

function unavailable(slot: Slot, retryAfter: number): ApiError {
  return new ApiError(
    503,
    `model ${JSON.stringify(slot.id)} is unavailable: ${slot.error ?? 'failed to load'}`,
    {
      code: 'model_unavailable',
      retryAfter: Math.max(1, retryAfter),
    },
  );
}
