// edgelm kernels: one WASM module, raw pointers into one linear memory.
// built twice (scripts/build.mjs): plain SIMD128 and SIMD128 + relaxed SIMD (ASC_FEATURE_RELAXED_SIMD).
export * from './gemm';
export * from './quant';
export * from './ops';
export * from './attention';
export * from './pack';
export { f32ToF16 } from './simd';

/** first byte past the module's static data: the JS arena starts here (aligned up). */
export function heapBase(): usize {
  return __heap_base;
}

/** 1 in the relaxed-SIMD build, 0 in the plain one. */
export function relaxedBuild(): i32 {
  return ASC_FEATURE_RELAXED_SIMD ? 1 : 0;
}
