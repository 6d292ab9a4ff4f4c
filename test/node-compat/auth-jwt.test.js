'use strict';
// JWT authentication exactly as VideoSDK clients do it: tokens minted with
// `jsonwebtoken` and sent in `Authorization` with no scheme (contract §1).

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const jwt = require('jsonwebtoken');
const { startMeridian } = require('./lib/harness');
const { ROOM_ID_RE, DOC_ID_RE, REST_TIME_RE, docsToken, legacyToken, noneToken, call, assertJsonError } = require('./lib/client');

let m;
before(async () => {
  m = await startMeridian();
});
after(async () => {
  if (m) await m.stop();
});

const now = () => Math.floor(Date.now() / 1000);

describe('JWT auth on POST /v2/rooms (plain fetch, Authorization without "Bearer")', () => {
  it('accepts a token minted with the exact jsonwebtoken snippet from the VideoSDK docs', async () => {
    const token = docsToken(m.apiKey, m.secret);
    const claims = jwt.decode(token);
    assert.equal(claims.version, 2);
    assert.deepEqual(claims.roles, ['crawler']);
    assert.equal(claims.exp - claims.iat, 120 * 60);

    const res = await call(m.url, 'POST', '/v2/rooms', { token, body: {} });
    assert.equal(res.status, 200, res.text);
    assert.match(res.headers.get('content-type'), /application\/json/);
    const room = res.json;
    assert.match(room.roomId, ROOM_ID_RE);
    assert.match(room.id, DOC_ID_RE);
    assert.match(room.userId, DOC_ID_RE);
    assert.equal(room.disabled, false);
    assert.match(room.createdAt, REST_TIME_RE);
    assert.match(room.updatedAt, REST_TIME_RE);
    assert.equal(room.links.get_room, `${m.url}/v2/rooms/${room.roomId}`);
    assert.equal(room.links.get_session, `${m.url}/v2/sessions/`);
  });

  it('accepts a legacy token {apikey, permissions, iat} with no version, roles or exp', async () => {
    const token = legacyToken(m.apiKey, m.secret);
    const claims = jwt.decode(token);
    assert.equal(claims.version, undefined);
    assert.equal(claims.roles, undefined);
    assert.equal(claims.exp, undefined);
    const res = await call(m.url, 'POST', '/v2/rooms', { token, body: { customRoomId: 'legacy-token-room' } });
    assert.equal(res.status, 200, res.text);
    assert.match(res.json.roomId, ROOM_ID_RE);
    assert.equal(res.json.customRoomId, 'legacy-token-room');
  });

  it('accepts the sample-app call: POST with Content-Type: application/json and no body', async () => {
    const res = await fetch(`${m.url}/v2/rooms`, {
      method: 'POST',
      headers: { authorization: docsToken(m.apiKey, m.secret), 'Content-Type': 'application/json' },
    });
    const text = await res.text();
    assert.equal(res.status, 200, text);
    assert.match(JSON.parse(text).roomId, ROOM_ID_RE);
  });

  it('ignores Content-Type: application/json on a GET without a body', async () => {
    const res = await call(m.url, 'GET', '/v2/rooms', {
      token: docsToken(m.apiKey, m.secret),
      headers: { 'Content-Type': 'application/json' },
    });
    assert.equal(res.status, 200, res.text);
  });

  it('also accepts the docs token with an optional "Bearer " prefix', async () => {
    const res = await call(m.url, 'POST', '/v2/rooms', { token: `Bearer ${docsToken(m.apiKey, m.secret)}`, body: {} });
    assert.equal(res.status, 200, res.text);
  });

  it('rejects an rtc-only (meeting) token with 403', async () => {
    const token = jwt.sign({ apikey: m.apiKey, permissions: ['allow_join'], version: 2, roles: ['rtc'] }, m.secret, {
      expiresIn: '10m',
      algorithm: 'HS256',
    });
    const res = await call(m.url, 'POST', '/v2/rooms', { token, body: {} });
    assertJsonError(res, 403);
  });

  it('rejects a token signed with the wrong secret with 401', async () => {
    const token = docsToken(m.apiKey, `${m.secret}-wrong`);
    const res = await call(m.url, 'POST', '/v2/rooms', { token, body: {} });
    assertJsonError(res, 401);
  });

  it('rejects an unsigned alg:none token with 401', async () => {
    const token = noneToken({ apikey: m.apiKey, permissions: ['allow_join'], version: 2, roles: ['crawler'], iat: now(), exp: now() + 600 });
    const res = await call(m.url, 'POST', '/v2/rooms', { token, body: {} });
    assertJsonError(res, 401);
  });

  it('rejects an alg:none token that carries a valid HS256 signature with 401', async () => {
    const good = docsToken(m.apiKey, m.secret);
    const [, payload, sig] = good.split('.');
    const header = Buffer.from(JSON.stringify({ alg: 'none', typ: 'JWT' })).toString('base64url');
    const res = await call(m.url, 'POST', '/v2/rooms', { token: `${header}.${payload}.${sig}`, body: {} });
    assertJsonError(res, 401);
  });

  it('rejects an expired token with 401', async () => {
    const token = jwt.sign(
      { apikey: m.apiKey, permissions: ['allow_join'], version: 2, roles: ['crawler'], iat: now() - 3600, exp: now() - 600 },
      m.secret,
      { algorithm: 'HS256' },
    );
    const res = await call(m.url, 'POST', '/v2/rooms', { token, body: {} });
    assertJsonError(res, 401);
  });

  it('rejects a token for an unknown API key with 401', async () => {
    const token = docsToken('00000000-0000-4000-8000-000000000000', m.secret);
    const res = await call(m.url, 'POST', '/v2/rooms', { token, body: {} });
    assertJsonError(res, 401);
  });

  it('rejects a request with no Authorization header with 401', async () => {
    const res = await call(m.url, 'POST', '/v2/rooms', { body: {} });
    assertJsonError(res, 401);
  });

  it('rejects a garbage Authorization value with 401', async () => {
    const res = await call(m.url, 'GET', '/v2/rooms', { token: 'not-a-jwt' });
    assertJsonError(res, 401);
  });
});
