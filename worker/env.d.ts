declare module '*.wasm' {
  const mod: WebAssembly.Module;
  export default mod;
}
declare module '*.gguf' {
  const data: ArrayBuffer;
  export default data;
}
