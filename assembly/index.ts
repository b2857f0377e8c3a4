// edgelm kernels: one WASM module, raw pointers into one linear memory.
export * from './ops';
