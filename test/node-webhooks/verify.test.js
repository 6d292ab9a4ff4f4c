// Verifies webhooks that Meridian's Go dispatcher really sent, using the public
// APIs receivers use: `standardwebhooks` (Webhook#verify) and
// `@videosdk.live/server-sdk` (vsdk.webhooks.verify / verifySync).
//
// The fixtures are written by the Go test TestNodeVerification in
// control/webhooks, which runs this file with MERIDIAN_WEBHOOK_FIXTURES set.
// Run alone, every test is skipped.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');
const { Webhook } = require('standardwebhooks');
const { VideoSDK, WebhookVerificationError } = require('@videosdk.live/server-sdk');

const dir = process.env.MERIDIAN_WEBHOOK_FIXTURES;
const skip = dir ? false : 'MERIDIAN_WEBHOOK_FIXTURES is not set (go test ./control/webhooks -run TestNodeVerification sets it)';
const fx = dir ? JSON.parse(fs.readFileSync(path.join(dir, 'fixtures.json'), 'utf8')) : { cases: [] };

// A client pointed at nothing: verification must not need the network when
// the key is pinned.
function pinnedClient() {
  return new VideoSDK({ apiKey: 'unused', secret: 'unused', apiEndpoint: 'http://127.0.0.1:9', webhookPublicKey: fx.publicKeyPem });
}

function tamper(buf) {
  const out = Buffer.from(buf);
  out[out.length - 3] ^= 1;
  return out;
}

test('fixtures are present', { skip }, () => {
  assert.ok(fx.cases.length >= 3, 'expected at least three delivered requests');
  assert.match(fx.publicKeyPem, /^-----BEGIN PUBLIC KEY-----\n/);
  assert.match(fx.secret, /^whsec_/);
});

for (const c of fx.cases) {
  const body = Buffer.from(c.bodyBase64, 'base64');
  const id = c.headers['webhook-id'];

  test(`${id}: body is what JSON.stringify(JSON.parse(body)) gives`, { skip }, () => {
    const text = body.toString('utf8');
    assert.equal(JSON.stringify(JSON.parse(text)), text);
  });

  test(`${id}: standardwebhooks Webhook#verify`, { skip }, () => {
    const wh = new Webhook(fx.secret);
    const payload = wh.verify(body, c.headers);
    assert.equal(payload.webhookType, c.eventType);
    assert.throws(() => wh.verify(tamper(body), c.headers));
    assert.throws(() => wh.verify(body, { ...c.headers, 'webhook-id': id + 'x' }));
  });

  test(`${id}: @videosdk.live/server-sdk webhooks.verifySync`, { skip }, () => {
    const vsdk = pinnedClient();
    const ev = vsdk.webhooks.verifySync(body, c.headers['videosdk-signature'], fx.publicKeyPem);
    assert.equal(ev.type, c.eventType);
    assert.equal(ev.webhookType, c.eventType);
    assert.deepEqual(ev.data, JSON.parse(body.toString('utf8')).data);
    // The SDK also accepts the body as a string.
    vsdk.webhooks.verifySync(body.toString('utf8'), c.headers['videosdk-signature'], fx.publicKeyPem);
    assert.throws(() => vsdk.webhooks.verifySync(tamper(body), c.headers['videosdk-signature'], fx.publicKeyPem), WebhookVerificationError);
  });

  test(`${id}: @videosdk.live/server-sdk webhooks.verify with the pinned key`, { skip }, async () => {
    const ev = await pinnedClient().webhooks.verify(body, [c.headers['videosdk-signature']]);
    assert.equal(ev.type, c.eventType);
    await assert.rejects(pinnedClient().webhooks.verify(body, undefined), WebhookVerificationError);
  });
}

// The SDK fetches the key from GET /v2/public/rsa-public-key and reads
// `publicKey`: serve exactly that shape and let it fetch.
test('@videosdk.live/server-sdk fetches the key from /v2/public/rsa-public-key', { skip }, async () => {
  const seen = [];
  const server = http.createServer((req, res) => {
    seen.push(req.url);
    if (req.url.split('?')[0].replace(/\/$/, '') !== '/v2/public/rsa-public-key') {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ publicKey: fx.publicKeyPem }));
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const vsdk = new VideoSDK({ apiKey: 'k', secret: 's', apiEndpoint: `http://127.0.0.1:${server.address().port}`, maxRetries: 0 });
    for (const c of fx.cases) {
      const ev = await vsdk.webhooks.verify(Buffer.from(c.bodyBase64, 'base64'), c.headers['videosdk-signature']);
      assert.equal(ev.type, c.eventType);
    }
    assert.equal(seen.length, 1, 'the key is fetched once and cached');
  } finally {
    server.close();
  }
});
