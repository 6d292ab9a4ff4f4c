'use strict';
// Every rooms call of the official @videosdk.live/server-sdk against Meridian
// (contract §3): rooms.create / get / list / validate / end(= deactivate).

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { VideoSDK, RoomNotFoundError, isVideoSDKError } = require('@videosdk.live/server-sdk');
const { startMeridian } = require('./lib/harness');
const { ROOM_ID_RE, DOC_ID_RE, REST_TIME_RE, docsToken, legacyToken, sdkClient, rejection, call } = require('./lib/client');

let m;
let client;
let rec;
before(async () => {
  m = await startMeridian();
  ({ client, rec } = sdkClient(m));
});
after(async () => {
  if (m) await m.stop();
});

describe('SDK rooms.create', () => {
  it('sends POST /v2/rooms with an SDK-minted token and returns the room', async () => {
    const room = await client.rooms.create({ customRoomId: 'sdk-create-1' });
    const ex = rec.last();
    assert.equal(ex.method, 'POST');
    assert.equal(ex.path, '/v2/rooms');
    assert.deepEqual(ex.requestBody, { customRoomId: 'sdk-create-1' });
    assert.equal(ex.status, 200);
    assert.match(room.roomId, ROOM_ID_RE);
    assert.equal(room.customRoomId, 'sdk-create-1');
    assert.match(room.id, DOC_ID_RE);
    assert.match(room.userId, DOC_ID_RE);
    assert.equal(room.disabled, false);
    assert.match(room.createdAt, REST_TIME_RE);
    assert.equal(room.links.get_room, `${m.url}/v2/rooms/${room.roomId}`);
  });

  it('is idempotent on customRoomId: creating again returns the same room', async () => {
    const a = await client.rooms.create({ customRoomId: 'sdk-idempotent' });
    const b = await client.rooms.create({ customRoomId: 'sdk-idempotent' });
    assert.equal(b.roomId, a.roomId);
    assert.equal(b.id, a.id);
    assert.equal(b.customRoomId, 'sdk-idempotent');
    const c = await client.rooms.create({ customRoomId: 'sdk-idempotent-other' });
    assert.notEqual(c.roomId, a.roomId);
  });

  it('creates a room with no options (the SDK sends an empty object)', async () => {
    const room = await client.rooms.create();
    assert.deepEqual(rec.last().requestBody, {});
    assert.match(room.roomId, ROOM_ID_RE);
    assert.equal(room.customRoomId, undefined, 'no customRoomId key when none was given');
  });

  it('accepts the README quick-start call rooms.create({ geoFence: "us002" })', async () => {
    const room = await client.rooms.create({ geoFence: 'us002' });
    assert.match(room.roomId, ROOM_ID_RE);
  });

  it('maps SDK webhook / autoCloseConfig options to the wire shape and Meridian accepts them', async () => {
    const room = await client.rooms.create({
      customRoomId: 'sdk-with-config',
      webhook: { url: 'https://example.com/hooks/video', events: ['participant-joined', 'recording-*'] },
      autoCloseConfig: { type: 'session-end-and-deactivate', afterInactiveSeconds: 60 },
      allowedParticipantIds: ['demo-1', 'demo-2'],
      multiComposition: { recording: true, hls: false, rtmp: false },
    });
    assert.deepEqual(rec.last().requestBody.webhook, {
      endPoint: 'https://example.com/hooks/video',
      events: ['participant-joined', 'recording-*'],
    });
    assert.deepEqual(rec.last().requestBody.autoCloseConfig, { type: 'session-end-and-deactivate', duration: 60 });
    assert.equal(rec.last().status, 200);
    assert.match(room.roomId, ROOM_ID_RE);
    // Meridian echoes the stored configuration (contract §3.1 allows it), so
    // the echo must be exactly what the SDK sent: a missing or mangled field
    // here is a room that will not call its webhook or close as asked.
    assert.deepEqual(room.webhook, {
      endPoint: 'https://example.com/hooks/video',
      events: ['participant-joined', 'recording-*'],
    });
    assert.deepEqual(room.autoCloseConfig, { type: 'session-end-and-deactivate', duration: 60 });
    assert.deepEqual(room.allowedParticipantIds, ['demo-1', 'demo-2']);
    assert.deepEqual(room.multiComposition, { recording: true, hls: false, rtmp: false });
    // ...and it is stored, not just reflected: a later get returns the same.
    const got = await client.rooms.get(room.roomId);
    assert.deepEqual(got.webhook, room.webhook);
    assert.deepEqual(got.autoCloseConfig, room.autoCloseConfig);
  });

  it('works with a client built from a pre-minted docs-snippet token (no apiKey/secret)', async () => {
    const byToken = new VideoSDK({ token: docsToken(m.apiKey, m.secret), apiEndpoint: m.url, maxRetries: 0 });
    const room = await byToken.rooms.create({ customRoomId: 'sdk-by-docs-token' });
    assert.match(room.roomId, ROOM_ID_RE);
  });

  it('works with a client built from a legacy token (no version/roles/exp)', async () => {
    const byToken = new VideoSDK({ token: legacyToken(m.apiKey, m.secret), apiEndpoint: m.url, maxRetries: 0 });
    const page = await byToken.rooms.list({ perPage: 1 });
    assert.ok(page.total >= 1);
  });
});

describe('SDK rooms.get', () => {
  let room;
  before(async () => {
    room = await client.rooms.create({ customRoomId: 'sdk-get-room' });
  });

  it('fetches by roomId (GET /v2/rooms/{roomId}) with an embedded user object', async () => {
    const got = await client.rooms.get(room.roomId);
    assert.equal(rec.last().path, `/v2/rooms/${room.roomId}`);
    assert.equal(got.roomId, room.roomId);
    assert.equal(got.customRoomId, 'sdk-get-room');
    assert.equal(got.id, room.id);
    assert.equal(got.disabled, false);
    // Contract §3.3/§3.4: get embeds the project owner as `user` (email and
    // name are empty for Meridian projects) instead of `userId`.
    assert.deepEqual(got.user, { email: '', name: '', discontinuedReason: null, id: room.userId });
    assert.equal(got.userId, undefined);
  });

  it('fetches by customRoomId and by document id', async () => {
    assert.equal((await client.rooms.get('sdk-get-room')).roomId, room.roomId);
    assert.equal((await client.rooms.get(room.id)).roomId, room.roomId);
  });

  it('surfaces an unknown room as RoomNotFoundError (HTTP 404)', async () => {
    const err = await rejection(client.rooms.get('zzzz-zzzz-zzzz'));
    assert.ok(err instanceof RoomNotFoundError, `got ${err.name}: ${err.message}`);
    assert.equal(err.httpStatus, 404);
    assert.ok(err.message && !/^Request failed/.test(err.message), 'server message reaches the SDK error');
  });
});

describe('SDK rooms.list', () => {
  const mine = ['sdk-list-a', 'sdk-list-b', 'sdk-list-c', 'sdk-list-d'];
  let created;
  before(async () => {
    created = [];
    for (const id of mine) created.push(await client.rooms.create({ customRoomId: id }));
  });

  it('pages with perPage=2: pageInfo has currentPage/perPage/lastPage/total', async () => {
    const first = await client.rooms.list({ perPage: 2 });
    const ex = rec.last();
    assert.equal(ex.method, 'GET');
    assert.equal(ex.path, '/v2/rooms');
    assert.equal(ex.query.perPage, '2');
    const info = ex.json.pageInfo;
    assert.ok(info, `response has pageInfo: ${ex.text}`);
    assert.equal(info.currentPage, 1);
    assert.equal(info.perPage, 2);
    assert.ok(info.total >= mine.length, `total ${info.total} counts the ${mine.length} rooms just created`);
    assert.equal(info.lastPage, Math.max(1, Math.ceil(info.total / 2)));
    assert.equal(first.data.length, 2);
    assert.equal(first.total, info.total);
    assert.equal(first.hasNextPage, true);

    // Walk every page explicitly and check each envelope.
    const seen = new Map();
    for (let page = 1; page <= info.lastPage; page++) {
      const p = await client.rooms.list({ page, perPage: 2 });
      const pi = rec.last().json.pageInfo;
      assert.equal(rec.last().query.page, String(page));
      assert.deepEqual(pi, { currentPage: page, perPage: 2, lastPage: info.lastPage, total: info.total });
      const expected = page < info.lastPage ? 2 : info.total - 2 * (info.lastPage - 1);
      assert.equal(p.data.length, expected, `page ${page} size`);
      assert.equal(p.hasNextPage, page < info.lastPage);
      for (const r of p.data) {
        assert.match(r.roomId, ROOM_ID_RE);
        assert.deepEqual(r.user, { email: '', name: '', discontinuedReason: null, id: created[0].userId }, 'list items embed `user`');
        assert.equal(r.userId, undefined);
        assert.ok(!seen.has(r.id), `room ${r.roomId} appears on one page only`);
        seen.set(r.id, r);
      }
    }
    assert.equal(seen.size, info.total);
    for (const r of created) assert.ok(seen.has(r.id), `created room ${r.customRoomId} is listed`);
  });

  it('without paging parameters the defaults are page 1, perPage 20', async () => {
    const page = await client.rooms.list();
    const ex = rec.last();
    assert.deepEqual(ex.query, {});
    const info = ex.json.pageInfo;
    assert.equal(info.currentPage, 1);
    assert.equal(info.perPage, 20);
    assert.equal(info.lastPage, Math.max(1, Math.ceil(info.total / 20)));
    assert.equal(page.data.length, Math.min(20, info.total));
  });

  it('a page past the end is empty but keeps pageInfo', async () => {
    const first = await client.rooms.list({ perPage: 2 });
    const { lastPage, total } = rec.last().json.pageInfo;
    const beyond = await client.rooms.list({ page: lastPage + 1, perPage: 2 });
    assert.equal(beyond.data.length, 0);
    assert.deepEqual(rec.last().json.pageInfo, { currentPage: lastPage + 1, perPage: 2, lastPage, total });
    assert.ok(first.data.length > 0);
  });

  it('the SDK async iterator walks all pages (follows nextCursor)', async () => {
    const page = await client.rooms.list({ perPage: 2 });
    const ids = [];
    for await (const r of page) ids.push(r.id);
    assert.equal(ids.length, page.total);
    assert.equal(new Set(ids).size, ids.length);
  });

  it('filters with query= (exact roomId or customRoomId)', async () => {
    const byCustom = await client.rooms.list({ query: 'sdk-list-b' });
    assert.equal(rec.last().query.query, 'sdk-list-b');
    assert.deepEqual(
      byCustom.data.map((r) => r.roomId),
      [created[1].roomId],
    );
    const byRoomId = await client.rooms.list({ query: created[2].roomId });
    assert.deepEqual(
      byRoomId.data.map((r) => r.customRoomId),
      ['sdk-list-c'],
    );
  });
});

describe('SDK rooms.validate', () => {
  let room;
  before(async () => {
    room = await client.rooms.create({ customRoomId: 'sdk-validate-room' });
  });

  it('reports a known roomId as valid (GET /v2/rooms/validate/{roomId}) with the room', async () => {
    const v = await client.rooms.validate(room.roomId);
    assert.equal(rec.last().method, 'GET');
    assert.equal(rec.last().path, `/v2/rooms/validate/${room.roomId}`);
    assert.equal(v.valid, true);
    assert.equal(v.roomId, room.roomId);
    assert.equal(v.room.roomId, room.roomId);
    assert.equal(v.room.disabled, false);
    assert.equal(v.room.userId, room.userId);
  });

  it('resolves a customRoomId to its roomId', async () => {
    const v = await client.rooms.validate('sdk-validate-room');
    assert.equal(v.valid, true);
    assert.equal(v.roomId, room.roomId);
  });

  it('reports an unknown room as { valid: false } (server answers 400)', async () => {
    const v = await client.rooms.validate('abcd-efgh-ijkl');
    assert.deepEqual(v, { valid: false, roomId: 'abcd-efgh-ijkl' });
    assert.equal(rec.last().status, 400);
  });

  it('POST /v2/rooms/validate/{roomId} is served too (endpoint index lists POST)', async () => {
    const token = client.generateToken();
    const ok = await call(m.url, 'POST', `/v2/rooms/validate/${room.roomId}`, { token });
    assert.equal(ok.status, 200, ok.text);
    assert.equal(ok.json.roomId, room.roomId);
    const bad = await call(m.url, 'POST', '/v2/rooms/validate/abcd-efgh-ijkl', { token });
    assert.equal(bad.status, 400, bad.text);
  });
});

describe('SDK rooms.end (POST /v2/rooms/deactivate)', () => {
  let room;
  before(async () => {
    room = await client.rooms.create({ customRoomId: 'sdk-deactivate-room' });
  });

  it('rejects a customRoomId with 402 (RoomNotFoundError), as upstream does', async () => {
    const err = await rejection(client.rooms.end('sdk-deactivate-room'));
    assert.ok(err instanceof RoomNotFoundError, `got ${err.name}: ${err.message}`);
    assert.equal(err.httpStatus, 402);
    assert.equal((await client.rooms.get(room.roomId)).disabled, false, 'room still enabled');
  });

  it('deactivates by roomId and returns the disabled room with legacy meetingId/userMeetingId', async () => {
    const res = await client.rooms.end(room.roomId);
    const ex = rec.last();
    assert.equal(ex.method, 'POST');
    assert.equal(ex.path, '/v2/rooms/deactivate');
    assert.deepEqual(ex.requestBody, { roomId: room.roomId });
    assert.equal(res.disabled, true);
    assert.equal(res.meetingId, room.roomId);
    assert.equal(res.userMeetingId, 'sdk-deactivate-room');
    assert.equal(res.id, room.id);
  });

  it('afterwards the room shows disabled: true on get, list and validate', async () => {
    assert.equal((await client.rooms.get(room.roomId)).disabled, true);
    const listed = await client.rooms.list({ query: room.roomId });
    assert.equal(listed.data.length, 1);
    assert.equal(listed.data[0].disabled, true);
    const v = await client.rooms.validate(room.roomId);
    assert.equal(v.valid, true, 'a disabled room still validates (200 with disabled: true, contract §3.2)');
    assert.equal(v.room.disabled, true);
  });

  it('an unknown roomId is RoomNotFoundError (HTTP 404) naming the room', async () => {
    const err = await rejection(client.rooms.end('zzzz-zzzz-zzzz'));
    assert.ok(isVideoSDKError(err), `got ${err}`);
    assert.ok(err instanceof RoomNotFoundError, `got ${err.name}: ${err.message}`);
    assert.equal(err.httpStatus, 404);
    assert.match(err.message, /room "zzzz-zzzz-zzzz" not found/);
  });
});
