/**
 * Data parallelism over two cores: a worker thread holds its own copy of the model (its own WASM
 * instance) and computes the gradient of half the micro-batches while the main thread does the
 * other half; the main thread sums the gradients and steps the optimizer. Parameters go out and
 * gradients come back as transferred Float32Arrays each step (a few MB: ~ms against ~1 s steps).
 */
import { Worker } from 'node:worker_threads';
import type { Batch } from './data.ts';
import type { ModelConfig } from './model.ts';

interface Reply {
  loss: number;
  grads: Float32Array;
}

export class DataParallel {
  private pending: ((r: Reply) => void) | undefined;
  private failed: ((e: Error) => void) | undefined;

  private constructor(private readonly worker: Worker) {
    worker.on('message', (m: Reply) => {
      const p = this.pending;
      this.pending = undefined;
      p?.(m);
    });
    worker.on('error', (e: Error) => this.failed?.(e));
  }

  /** Start the worker with a model of this shape (no optimizer state there). */
  static async start(cfg: ModelConfig, B: number, T: number): Promise<DataParallel> {
    const w = new Worker(new URL('./worker.ts', import.meta.url), { workerData: { cfg, B, T } });
    await new Promise<void>((resolve, reject) => {
      w.once('message', () => resolve());
      w.once('error', reject);
    });
    return new DataParallel(w);
  }

  /** Gradient (scaled by gscale) and Σ weight·loss of `batches` at `params`, computed in the worker. */
  run(params: Float32Array, batches: Batch[], gscale: number): Promise<Reply> {
    return new Promise((resolve, reject) => {
      this.pending = resolve;
      this.failed = reject;
      const p = params.slice();
      this.worker.postMessage({ params: p, batches, gscale }, [p.buffer]);
    });
  }

  async close(): Promise<void> {
    await this.worker.terminate();
  }
}
