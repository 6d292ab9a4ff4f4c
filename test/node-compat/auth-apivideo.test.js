'use strict';
// api.video-style authentication: exchange the API secret for a Bearer access
// token + single-use refresh token, and HTTP Basic `<secret>:`.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { startMeridian } = require('./lib/harness');
const { call, assertJsonError } = require('./lib/client');

let m;
before(async () => {
  m = await startMeridian();
});
after(async () => {
  if (m) await m.stop();
});

// This file's server has no rooms: a list is exactly the empty page (contract
// §2.4, lastPage is 1 when total is 0), so an auth path that answered some
// other body with 200 fails here.
const EMPTY_ROOMS = { pageInfo: { currentPage: 1, perPage: 20, lastPage: 1, total: 0 }, data: [] };

function assertTokenPair(res) {
  assert.equal(res.status, 200, res.text);
  const body = res.json;
  assert.equal(body.token_type, 'Bearer');
  assert.equal(body.expires_in, 3600);
  assert.equal(typeof body.access_token, 'string');
  assert.ok(body.access_token.length > 0);
  assert.equal(typeof body.refresh_token, 'string');
  assert.ok(body.refresh_token.length > 0);
  assert.notEqual(body.access_token, body.refresh_token);
  return body;
}

const basic = (user, pass = '') => `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}`;

describe('POST /auth/api-key and /auth/refresh', () => {
  let pair;

  it('exchanges the API secret for {token_type, expires_in, access_token, refresh_token}', async () => {
    pair = assertTokenPair(await call(m.url, 'POST', '/auth/api-key', { body: { apiKey: m.secret } }));
  });

  it('the access token works as "Authorization: Bearer ..." on GET /v2/rooms', async () => {
    const res = await call(m.url, 'GET', '/v2/rooms', { token: `Bearer ${pair.access_token}` });
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(res.json, EMPTY_ROOMS);
  });

  it('refresh returns a new pair, the new pair works, and the old refresh token is then rejected (401)', async () => {
    const next = assertTokenPair(await call(m.url, 'POST', '/auth/refresh', { body: { refreshToken: pair.refresh_token } }));
    assert.notEqual(next.refresh_token, pair.refresh_token);
    const res = await call(m.url, 'GET', '/v2/rooms', { token: `Bearer ${next.access_token}` });
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(res.json, EMPTY_ROOMS);

    assertJsonError(await call(m.url, 'POST', '/auth/refresh', { body: { refreshToken: pair.refresh_token } }), 401);

    // The rotated token is itself good for exactly one more refresh.
    const third = assertTokenPair(await call(m.url, 'POST', '/auth/refresh', { body: { refreshToken: next.refresh_token } }));
    assert.notEqual(third.refresh_token, next.refresh_token);
    assertJsonError(await call(m.url, 'POST', '/auth/refresh', { body: { refreshToken: next.refresh_token } }), 401);
  });

  it('a wrong secret gets 401', async () => {
    assertJsonError(await call(m.url, 'POST', '/auth/api-key', { body: { apiKey: `${m.secret}x` } }), 401);
  });

  it('an unknown refresh token gets 401', async () => {
    assertJsonError(await call(m.url, 'POST', '/auth/refresh', { body: { refreshToken: 'bm90LWEtcmVmcmVzaC10b2tlbg' } }), 401);
  });

  it('a missing apiKey / refreshToken gets 400 naming the field', async () => {
    assertJsonError(await call(m.url, 'POST', '/auth/api-key', { body: {} }), 400, /apiKey/);
    assertJsonError(await call(m.url, 'POST', '/auth/refresh', { body: {} }), 400, /refreshToken/);
  });
});

describe('HTTP Basic auth', () => {
  it('"<secret>:" works on GET /v2/rooms', async () => {
    const res = await call(m.url, 'GET', '/v2/rooms', { token: basic(m.secret) });
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(res.json, EMPTY_ROOMS);
  });

  it('a wrong secret gets 401', async () => {
    assertJsonError(await call(m.url, 'GET', '/v2/rooms', { token: basic('wrong-secret') }), 401);
  });
});
