// minimal types for `cloudflare:test` (from @cloudflare/vitest-plugin) as these tests use it; the
// plugin's own declarations pull in @cloudflare/workers-types, which clash with the DOM lib here
declare module 'cloudflare:test' {
  export const SELF: { fetch(input: string | Request | URL, init?: RequestInit): Promise<Response> };
  export const env: Record<string, unknown>;
}
