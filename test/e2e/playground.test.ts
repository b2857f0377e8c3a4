// The playground page in headless Chromium (Debian's, through playwright-core), against the real
// handler and default model served from Node. The reference for the streamed text and the returned
// beams is the same request made over HTTP without the page.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { type Browser, chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serveWorkerInNode } from '../../scripts/bench-http.ts';

const artifacts = join(import.meta.dirname, '../../test-artifacts');
let server: Awaited<ReturnType<typeof serveWorkerInNode>>;
let browser: Browser;

beforeAll(async () => {
  server = await serveWorkerInNode();
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--no-first-run',
    ],
  });
});
afterAll(async () => {
  await browser?.close();
  await server?.close();
});

async function api(body: Record<string, unknown>) {
  const res = await fetch(`${server.url}/v1/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return (await res.json()) as any;
}

describe('playground', () => {
  it('greedy: the streamed text equals the API answer', async () => {
    const page = await browser.newPage();
    await page.goto(server.url);
    await page.fill('#prompt', 'The cat');
    await page.selectOption('#mode', 'greedy');
    await page.fill('#max_tokens', '12');
    await page.click('#run');
    await page.waitForSelector('#status:text("done")', { timeout: 30_000 });
    const ref = await api({ prompt: 'The cat', max_tokens: 12, temperature: 0 });
    expect(await page.textContent('#out')).toBe(ref.choices[0].text);
    expect(await page.textContent('#stats')).toMatch(/tokens in/);
    await page.close();
  });

  it('beam search: a tree with the right number of beams, returned sequences highlighted; screenshot', async () => {
    const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
    await page.goto(server.url);
    await page.fill('#prompt', 'Once upon a time');
    await page.selectOption('#mode', 'beam');
    await page.fill('#max_tokens', '8');
    await page.fill('#num_beams', '3');
    await page.fill('#n', '2');
    await page.click('#run');
    await page.waitForSelector('#status:text("done")', { timeout: 30_000 });
    expect(await page.textContent('#err')).toBe('');
    const ref = await api({
      prompt: 'Once upon a time',
      max_tokens: 8,
      num_beams: 3,
      n: 2,
      length_penalty: 1,
      early_stopping: false,
    });
    // one column per step; the first step holds all 3 beams, none holds more
    const perStep = await page.$$eval('#tree g.node[data-step]', (els) => {
      const m: Record<string, number> = {};
      for (const e of els) m[e.getAttribute('data-step')!] = (m[e.getAttribute('data-step')!] ?? 0) + 1;
      return m;
    });
    const counts = Object.values(perStep);
    expect(counts[0]).toBe(3);
    for (const c of counts) expect(c).toBeLessThanOrEqual(3);
    expect(counts.length).toBeGreaterThan(0);
    // the returned sequences, best first, as the API returns them
    const seqs = await page.$$eval('#seqs .seq', (els) => els.map((e) => e.textContent ?? ''));
    expect(seqs).toHaveLength(2);
    for (const [i, s] of seqs.entries()) expect(s.endsWith(`: ${ref.choices[i].text}`)).toBe(true);
    expect(await page.textContent('#out')).toBe(ref.choices[0].text);
    // the best sequence's path is highlighted from the first step on
    const highlighted = await page.$$eval('#tree g.node.ret[data-step]', (els) =>
      els.map((e) => Number(e.getAttribute('data-step'))),
    );
    expect(highlighted).toContain(1);
    // sequences that finished (left the running beams) end in a terminal node below the tree
    const finals = await page.$$eval('#tree g.node.end', (els) =>
      els.map((e) => Number(e.getAttribute('data-final'))),
    );
    expect(finals.every((f) => f === 0 || f === 1)).toBe(true);
    expect(await page.$$eval('#tree line.ret', (els) => els.length)).toBe(highlighted.length + finals.length);
    mkdirSync(artifacts, { recursive: true });
    await page.screenshot({ path: join(artifacts, 'playground-beam.png'), fullPage: true });
    await page.close();
  });

  it('chat: the streamed reply equals the chat API answer', async () => {
    const page = await browser.newPage();
    await page.goto(server.url);
    await page.selectOption('#endpoint', 'chat');
    await page.fill('#prompt', 'what comes after monday');
    await page.selectOption('#mode', 'greedy');
    await page.fill('#max_tokens', '10');
    await page.click('#run');
    await page.waitForSelector('#status:text("done")', { timeout: 30_000 });
    const res = await fetch(`${server.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        messages: [{ role: 'user', content: 'what comes after monday' }],
        max_tokens: 10,
        temperature: 0,
      }),
    });
    const ref = (await res.json()) as any;
    expect(await page.textContent('#out')).toBe(ref.choices[0].message.content);
    await page.close();
  });

  it('a server error shows in the page, and the next run works', async () => {
    const page = await browser.newPage();
    await page.goto(server.url);
    await page.selectOption('#mode', 'beam');
    await page.fill('#num_beams', '99');
    await page.click('#run');
    await page.waitForSelector('#status:text("error")', { timeout: 30_000 });
    expect(await page.textContent('#err')).toMatch(/num_beams/);
    await page.fill('#num_beams', '2');
    await page.click('#run');
    await page.waitForSelector('#status:text("done")', { timeout: 30_000 });
    await page.close();
  });
});
