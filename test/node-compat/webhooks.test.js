'use strict';
// Webhook key material clients fetch: the Standard Webhooks signing secret and
// the RSA public key for `videosdk-signature` (contract §11.2).

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const { startMeridian } = require('./lib/harness');
const { call, docsToken, sdkClient } = require('./lib/client');

let m;
before(async () => {
  m = await startMeridian();
});
after(async () => {
  if (m) await m.stop();
});

describe('webhook keys', () => {
  it('GET /v2/webhooks/signing-secret returns {"secret":"whsec_..."} (stable across calls)', async () => {
    const token = docsToken(m.apiKey, m.secret);
    const res = await call(m.url, 'GET', '/v2/webhooks/signing-secret', { token });
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(Object.keys(res.json), ['secret']);
    assert.match(res.json.secret, /^whsec_[A-Za-z0-9+/]+={0,2}$/);
    const key = Buffer.from(res.json.secret.slice('whsec_'.length), 'base64');
    assert.ok(key.length >= 24 && key.length <= 64, `secret decodes to ${key.length} bytes`);
    const again = await call(m.url, 'GET', '/v2/webhooks/signing-secret', { token });
    assert.equal(again.json.secret, res.json.secret);
  });

  it('GET /v2/public/rsa-public-key returns a PEM in publicKey that crypto.createPublicKey accepts', async () => {
    const res = await call(m.url, 'GET', '/v2/public/rsa-public-key', { token: docsToken(m.apiKey, m.secret) });
    assert.equal(res.status, 200, res.text);
    const pem = res.json.publicKey;
    assert.match(pem, /^-----BEGIN (RSA )?PUBLIC KEY-----\n/);
    const key = crypto.createPublicKey(pem);
    assert.equal(key.type, 'public');
    assert.equal(key.asymmetricKeyType, 'rsa');
    assert.ok(key.asymmetricKeyDetails.modulusLength >= 2048, `modulus ${key.asymmetricKeyDetails.modulusLength} bits`);
  });

  it('the SDK fetches the same key with webhooks.getPublicKey()', async () => {
    const { client, rec } = sdkClient(m);
    const pem = await client.webhooks.getPublicKey();
    assert.equal(rec.last().path, '/v2/public/rsa-public-key');
    const direct = await call(m.url, 'GET', '/v2/public/rsa-public-key', { token: docsToken(m.apiKey, m.secret) });
    assert.equal(pem, direct.json.publicKey);
    assert.equal(crypto.createPublicKey(pem).asymmetricKeyType, 'rsa');
  });
});
