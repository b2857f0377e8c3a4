// Worker side of DataParallel (scripts/train/parallel.ts): one model, gradients on request.
import { parentPort, workerData } from 'node:worker_threads';
import type { Batch } from './data.ts';
import { type ModelConfig, TrainModel } from './model.ts';

const { cfg, B, T } = workerData as { cfg: ModelConfig; B: number; T: number };
const model = new TrainModel(cfg, B, T);
const port = parentPort as NonNullable<typeof parentPort>;
port.on('message', (m: { params: Float32Array; batches: Batch[]; gscale: number }) => {
  model.setParams(m.params);
  model.zeroGrads();
  let loss = 0;
  for (const b of m.batches) loss += model.step(b.tokens, b.targets, b.weights, m.gscale);
  const grads = model.gradView().slice();
  port.postMessage({ loss, grads }, [grads.buffer]);
});
port.postMessage('ready');
