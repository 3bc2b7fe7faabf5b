import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, request } from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { startGateway } from './harness/gateway.js';

describe('bodies stream through the gateway, both ways, without buffering', () => {
  it('relays each response chunk as the upstream sends it', async (t) => {
    let release: () => void = () => undefined;
    const released = new Promise<void>((resolve) => { release = resolve; });
    const upstream = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write('data: first\n\n');
      void released.then(() => res.end('data: second\n\n'));
    });
    upstream.listen(0, '127.0.0.1');
    await once(upstream, 'listening');
    const gw = await startGateway({
      upstreams: { sse: { targets: [`http://127.0.0.1:${(upstream.address() as AddressInfo).port}`] } },
      routes: [{ name: 'events', match: { path: '/events' }, upstream: 'sse', public: true }],
    });
    t.after(async () => { release(); await gw.close(); upstream.closeAllConnections(); upstream.close(); });
    const res = await fetch(`${gw.url}/events`);
    assert.equal(res.status, 200);
    const reader = res.body?.getReader();
    assert.ok(reader !== undefined);
    const first = await reader.read();
    assert.equal(new TextDecoder().decode(first.value as Uint8Array), 'data: first\n\n', 'the first event arrives while the upstream still holds the second');
    release();
    let rest = '';
    for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) rest += new TextDecoder().decode(chunk.value as Uint8Array);
    assert.equal(rest, 'data: second\n\n');
  });

  it('forwards request body chunks before the upload has finished', async (t) => {
    let sawFirst: (text: string) => void = () => undefined;
    const firstChunk = new Promise<string>((resolve) => { sawFirst = resolve; });
    const upstream = createServer((req, res) => {
      let body = '';
      req.once('data', (c: Buffer) => sawFirst(c.toString()));
      req.on('data', (c: Buffer) => { body += c.toString(); });
      req.on('end', () => res.end(`got ${body.length}`));
    });
    upstream.listen(0, '127.0.0.1');
    await once(upstream, 'listening');
    const gw = await startGateway({
      upstreams: { up: { targets: [`http://127.0.0.1:${(upstream.address() as AddressInfo).port}`] } },
      routes: [{ name: 'upload', match: { methods: ['POST'], path: '/upload' }, upstream: 'up', public: true }],
    });
    t.after(async () => { await gw.close(); upstream.closeAllConnections(); upstream.close(); });
    const req = request(`${gw.url}/upload`, { method: 'POST', headers: { 'transfer-encoding': 'chunked' } });
    const response = new Promise<string>((resolve, reject) => {
      req.on('response', (res) => { let text = ''; res.on('data', (c: Buffer) => { text += c.toString(); }); res.on('end', () => resolve(text)); });
      req.on('error', reject);
    });
    req.write('part-one;');
    assert.equal(await firstChunk, 'part-one;', 'the upstream sees the first chunk while the client is still uploading');
    req.end('part-two');
    assert.equal(await response, 'got 17');
  });
});
