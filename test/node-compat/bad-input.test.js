'use strict';
// Bad input and unknown resources: clear JSON errors with the right status
// (contract §2.7), never a 5xx or a dropped connection.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { isVideoSDKError } = require('@videosdk.live/server-sdk');
const { startMeridian } = require('./lib/harness');
const { call, assertJsonError, docsToken, sdkClient, rejection } = require('./lib/client');

const MiB = 1024 * 1024;

let m;
let token;
before(async () => {
  m = await startMeridian();
  token = docsToken(m.apiKey, m.secret);
});
after(async () => {
  if (m) await m.stop();
});

/** A syntactically valid JSON body of exactly `size` bytes. */
function jsonBodyOfSize(size) {
  const head = '{"customRoomId":"';
  const tail = '"}';
  return head + 'a'.repeat(size - head.length - tail.length) + tail;
}

async function postRooms(rawBody) {
  try {
    return await call(m.url, 'POST', '/v2/rooms', { token, rawBody });
  } catch (e) {
    // A network-level failure is what a client sees if the server drops the connection.
    return { status: `network error: ${e.cause?.code || e.message}` };
  }
}

describe('malformed request bodies on POST /v2/rooms', () => {
  it('malformed JSON → 400 with a message', async () => {
    assertJsonError(await postRooms('{"customRoomId": '), 400);
    assertJsonError(await postRooms('{bad json}'), 400);
  });

  it('customRoomId: 5 → 400 naming the field', async () => {
    assertJsonError(await postRooms('{"customRoomId": 5}'), 400, /customRoomId/);
  });

  it('a JSON array or trailing data → 400', async () => {
    assertJsonError(await postRooms('[]'), 400);
    assertJsonError(await postRooms('{} {}'), 400);
  });

  it('invalid field values → 400 naming the field', async () => {
    assertJsonError(await postRooms('{"customRoomId": ""}'), 400, /customRoomId/);
    assertJsonError(await postRooms('{"geoFence": "mars001"}'), 400, /geoFence/);
    assertJsonError(await postRooms('{"webhook": {"endPoint": "not a url", "events": []}}'), 400, /endPoint/);
    assertJsonError(await postRooms('{"autoCloseConfig": {"type": "whenever"}}'), 400, /autoCloseConfig/);
  });

  it('a body of exactly 1 MiB is read (and judged on content, not size)', async () => {
    const res = await postRooms(jsonBodyOfSize(MiB));
    assertJsonError(res, 400, /customRoomId/);
  });

  it('a body of 1 MiB + 1 byte → 413 with a JSON message', async () => {
    const res = await postRooms(jsonBodyOfSize(MiB + 1));
    assertJsonError(res, 413);
  });

  it('a 4 MiB body → the client receives the 413 (5 of 5 tries), not a connection reset', async () => {
    const outcomes = [];
    for (let i = 0; i < 5; i++) outcomes.push((await postRooms(jsonBodyOfSize(4 * MiB))).status);
    assert.deepEqual(
      outcomes,
      [413, 413, 413, 413, 413],
      'an oversized upload must get the 413 response; a reset means the server closed the socket with the ' +
        'request body still unread (no drain / lingering close), so the kernel sent RST and the 413 was lost',
    );
  });
});

describe('unknown resources', () => {
  it('GET of an unknown room → 404 with a message', async () => {
    assertJsonError(await call(m.url, 'GET', '/v2/rooms/zzzz-zzzz-zzzz', { token }), 404);
  });

  it('validate of an unknown room → 400 with a readable body', async () => {
    const res = await call(m.url, 'GET', '/v2/rooms/validate/zzzz-zzzz-zzzz', { token });
    assertJsonError(res, 400);
  });

  it('an unknown /v2 route → 404 JSON', async () => {
    assertJsonError(await call(m.url, 'GET', '/v2/no-such-thing', { token }), 404);
  });
});

describe('documented paths with trailing slashes', () => {
  it('GET /v2/rooms/ and /v2/sessions/ answer like the slash-less paths', async () => {
    for (const p of ['/v2/rooms/', '/v2/sessions/']) {
      const res = await call(m.url, 'GET', p, { token });
      assert.equal(res.status, 200, `${p}: ${res.text}`);
      const bare = await call(m.url, 'GET', p.slice(0, -1), { token });
      assert.equal(bare.status, 200, `${p.slice(0, -1)}: ${bare.text}`);
      // Same body as the slash-less path, and that body is the list envelope.
      assert.deepEqual(res.json, bare.json, p);
      assert.deepEqual(Object.keys(res.json).sort(), ['data', 'pageInfo'], p);
      const { total } = res.json.pageInfo;
      assert.equal(Number.isInteger(total), true, `${p} total ${total}`);
      assert.deepEqual(res.json.pageInfo, { currentPage: 1, perPage: 20, lastPage: Math.max(1, Math.ceil(total / 20)), total }, p);
      assert.equal(res.json.data.length, Math.min(20, total), p);
    }
  });
});

describe('egress routes: bad input and unknown ids', () => {
  // egress-sdk.test.js drives these routes against a live meeting; here they
  // only meet bad input, which must be a clear JSON error that names the field.
  let roomId;
  before(async () => {
    const res = await call(m.url, 'POST', '/v2/rooms', { token, body: {} });
    roomId = res.json.roomId;
  });

  for (const [method, path, body, status, pattern] of [
    ['POST', '/v2/recordings/start', { roomId: 'abcd-efgh-ijkl' }, 404, /not found/],
    ['POST', '/v2/recordings/end', { roomId: 'abcd-efgh-ijkl' }, 404, /not found/],
    ['POST', '/v2/hls/start', {}, 400, /roomId/],
    ['GET', '/v2/recordings/0123456789abcdef01234567', undefined, 404, /not found/],
    ['GET', '/v2/hls/abcd-efgh-ijkl/active', undefined, 404, /not found/],
  ]) {
    it(`${method} ${path} → ${status} JSON`, async () => {
      assertJsonError(await call(m.url, method, path, { token, body }), status, pattern);
    });
  }

  it('a bad config or output names the field; no live session is a 400', async () => {
    const bad = [
      ['/v2/recordings/start', { roomId, config: { layout: { type: 'DIAGONAL' } } }, /config\.layout\.type/],
      ['/v2/hls/start', { roomId, config: { layout: { gridSize: 26 } } }, /config\.layout\.gridSize/],
      ['/v2/livestreams/start', { roomId, outputs: [{ url: 'http://x.example/live' }] }, /outputs\[0\]\.url/],
      ['/v2/recordings/participant/track/start', { roomId, participantId: 'p', kind: 'smell' }, /kind/],
      ['/v2/recordings/start', { roomId }, /no live session/],
    ];
    for (const [path, body, pattern] of bad) {
      assertJsonError(await call(m.url, 'POST', path, { token, body }), 400, pattern);
    }
  });

  it('lists answer the documented envelope, with or without the trailing slash', async () => {
    for (const p of ['/v2/recordings', '/v2/recordings/participant', '/v2/hls', '/v2/hls/', '/v2/livestreams', '/v2/livestreams/']) {
      const res = await call(m.url, 'GET', p, { token });
      assert.equal(res.status, 200, `${p}: ${res.text}`);
      assert.deepEqual(res.json, { pageInfo: { currentPage: 1, perPage: 20, lastPage: 1, total: 0 }, data: [] }, p);
    }
  });

  it('the SDK surfaces recordings.get() of an unknown id as a VideoSDKError with httpStatus 404', async () => {
    const { client } = sdkClient(m);
    const err = await rejection(client.recordings.get('0123456789abcdef01234567'));
    assert.ok(isVideoSDKError(err), String(err));
    assert.equal(err.httpStatus, 404);
    assert.ok(err.message && !/^Request failed/.test(err.message), err.message);
  });
});
