// Bearer-token check against the API_KEYS secret. Both sides are hashed to 32 bytes first so the
// comparison takes the same time whatever the lengths; every configured key is compared (no early
// exit). Keys are never logged.

const enc = new TextEncoder();

async function sha256(s: string): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest('SHA-256', enc.encode(s)));
}

/** Splits the API_KEYS secret (comma or newline separated) into keys; empty → auth off. */
export function parseApiKeys(secret: unknown): string[] {
  if (typeof secret !== 'string') return [];
  return secret
    .split(/[,\n]/)
    .map((k) => k.trim())
    .filter((k) => k.length > 0);
}

/**
 * A checker for `Authorization: Bearer <key>` headers; resolves true when the token matches one of
 * the keys, comparing SHA-256 digests in constant time.
 * @example
 * const check = makeKeyChecker(['sk-1']);
 * await check('Bearer sk-1'); // true
 */
export function makeKeyChecker(keys: string[]): (authorization: string | undefined) => Promise<boolean> {
  const digests = Promise.all(keys.map(sha256));
  return async (authorization) => {
    const m = /^Bearer[ \t]+(.+)$/i.exec(authorization?.trim() ?? '');
    const given = await sha256(m ? m[1]!.trim() : '');
    let ok = 0;
    for (const d of await digests) {
      let diff = 0;
      for (let i = 0; i < d.length; i++) diff |= d[i]! ^ given[i]!;
      ok |= diff === 0 ? 1 : 0;
    }
    return m !== null && ok === 1;
  };
}
