'use strict';
// The official SDK's sessions and participants calls against an empty project
// (no live meetings yet; contract §4). Live-session tests come separately.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { RoomNotFoundError, ValidationError, isVideoSDKError } = require('@videosdk.live/server-sdk');
const { startMeridian } = require('./lib/harness');
const { sdkClient, rejection } = require('./lib/client');

let m;
let client;
let rec;
let room;
const UNKNOWN_SESSION = '0123456789abcdef01234567';

before(async () => {
  m = await startMeridian();
  ({ client, rec } = sdkClient(m));
  room = await client.rooms.create({ customRoomId: 'sessions-room' });
});
after(async () => {
  if (m) await m.stop();
});

function assert4xx(err, status) {
  assert.ok(isVideoSDKError(err), `expected a VideoSDKError, got ${err && err.stack}`);
  if (status) assert.equal(err.httpStatus, status, `${err.name}: ${err.message}`);
  else assert.ok(err.httpStatus >= 400 && err.httpStatus < 500, `4xx expected, got ${err.httpStatus}: ${err.message}`);
  assert.ok(err.message && !/^Request failed with status/.test(err.message), `server message reaches the SDK: ${err.message}`);
}

describe('SDK sessions.list', () => {
  it('returns an empty page for a project without sessions', async () => {
    const page = await client.sessions.list();
    const ex = rec.last();
    assert.equal(ex.method, 'GET');
    assert.equal(ex.path, '/v2/sessions');
    assert.equal(ex.status, 200);
    assert.deepEqual(page.data, []);
    assert.equal(page.total, 0);
    assert.equal(page.hasNextPage, false);
    assert.deepEqual(ex.json.pageInfo, { currentPage: 1, perPage: 20, lastPage: 1, total: 0 });
    assert.deepEqual(ex.json.data, []);
    const all = [];
    for await (const s of page) all.push(s);
    assert.deepEqual(all, []);
  });

  it('accepts every filter the SDK sends (roomId, customRoomId, status, dates, paging)', async () => {
    const page = await client.sessions.list({
      roomId: room.roomId,
      status: 'ended',
      startDate: Date.now() - 86400000,
      endDate: Date.now(),
      page: 1,
      perPage: 5,
    });
    const ex = rec.last();
    assert.equal(ex.query.roomId, room.roomId);
    assert.equal(ex.query.status, 'ended');
    assert.equal(ex.status, 200, ex.text);
    assert.deepEqual(page.data, []);
    assert.deepEqual(ex.json.pageInfo, { currentPage: 1, perPage: 5, lastPage: 1, total: 0 });

    const byCustom = await client.sessions.list({ customRoomId: 'sessions-room', status: 'ongoing' });
    assert.equal(rec.last().status, 200, rec.last().text);
    assert.deepEqual(byCustom.data, []);
    const byQuery = await client.sessions.list({ query: room.roomId });
    assert.equal(rec.last().status, 200, rec.last().text);
    assert.deepEqual(byQuery.data, []);
  });
});

describe('SDK sessions calls on an unknown session id', () => {
  it('sessions.get of an unknown 24-hex id is a RoomNotFoundError (HTTP 404)', async () => {
    const err = await rejection(client.sessions.get(UNKNOWN_SESSION));
    assert.equal(rec.last().path, `/v2/sessions/${UNKNOWN_SESSION}`);
    assert.ok(err instanceof RoomNotFoundError, `got ${err.name}`);
    assert4xx(err, 404);
  });

  it('sessions.listParticipants → 404', async () => {
    const err = await rejection(client.sessions.listParticipants(UNKNOWN_SESSION));
    assert.equal(rec.last().path, `/v2/sessions/${UNKNOWN_SESSION}/participants`);
    assert4xx(err, 404);
  });

  it('sessions.listActiveParticipants → 404', async () => {
    const err = await rejection(client.sessions.listActiveParticipants(UNKNOWN_SESSION));
    assert.equal(rec.last().path, `/v2/sessions/${UNKNOWN_SESSION}/participants/active`);
    assert4xx(err, 404);
  });

  it('sessions.getParticipant → 404', async () => {
    const err = await rejection(client.sessions.getParticipant(UNKNOWN_SESSION, 'lxvdplwt'));
    assert.equal(rec.last().path, `/v2/sessions/${UNKNOWN_SESSION}/participants/lxvdplwt`);
    assert4xx(err, 404);
  });

  it('sessions.getStats and sessions.getParticipantStats → 404', async () => {
    assert4xx(await rejection(client.sessions.getStats(UNKNOWN_SESSION)), 404);
    assert.equal(rec.last().path, `/v2/sessions/${UNKNOWN_SESSION}/stats`);
    assert4xx(await rejection(client.sessions.getParticipantStats(UNKNOWN_SESSION, 'lxvdplwt')), 404);
    assert.equal(rec.last().path, `/v2/sessions/${UNKNOWN_SESSION}/participant/lxvdplwt/stats`);
  });

  it('a malformed session id is a 4xx SDK error, not a server error', async () => {
    assert4xx(await rejection(client.sessions.get('not-a-session-id')));
  });
});

describe('SDK sessions.end', () => {
  it('on a room without a live session is an SDK error (4xx with a message)', async () => {
    const err = await rejection(client.sessions.end({ roomId: room.roomId }));
    const ex = rec.last();
    assert.equal(ex.method, 'POST');
    assert.equal(ex.path, '/v2/sessions/end');
    assert.equal(ex.requestBody.roomId, room.roomId);
    assert4xx(err);
  });

  it('accepts the customRoomId and the legacy meetingId option, still erroring without a session', async () => {
    assert4xx(await rejection(client.sessions.end({ roomId: 'sessions-room' })));
    assert4xx(await rejection(client.sessions.end({ meetingId: room.roomId, force: true })));
    assert.equal(rec.last().requestBody.vsdkForceKill, true);
  });

  it('on an unknown room is a 404', async () => {
    assert4xx(await rejection(client.sessions.end({ roomId: 'zzzz-zzzz-zzzz' })), 404);
  });
});

describe('SDK sessions.removeParticipant', () => {
  it('by roomId without a live session is a 4xx SDK error', async () => {
    const err = await rejection(client.sessions.removeParticipant({ roomId: room.roomId, participantId: 'lxvdplwt' }));
    const ex = rec.last();
    assert.equal(ex.path, '/v2/sessions/participants/remove');
    assert.deepEqual(ex.requestBody, { roomId: room.roomId, participantId: 'lxvdplwt' });
    assert4xx(err);
  });

  it('by an unknown sessionId is a 404', async () => {
    assert4xx(await rejection(client.sessions.removeParticipant({ sessionId: UNKNOWN_SESSION, participantId: 'lxvdplwt' })), 404);
  });

  it('without roomId/sessionId the SDK refuses locally (no request)', async () => {
    const before = rec.log.length;
    const err = await rejection(client.sessions.removeParticipant({ participantId: 'lxvdplwt' }));
    assert.ok(err instanceof ValidationError);
    assert.equal(rec.log.length, before);
  });
});

describe('SDK participants (room-scoped view of the live session)', () => {
  it('participants.list resolves the live session via GET /v2/sessions?status=ongoing and returns an empty page', async () => {
    const page = await client.participants.list(room.roomId);
    const ex = rec.last();
    assert.equal(ex.path, '/v2/sessions');
    assert.deepEqual(ex.query, { roomId: room.roomId, status: 'ongoing', perPage: '1' });
    assert.equal(ex.status, 200, ex.text);
    assert.deepEqual(page.data, []);
    assert.equal(page.total, 0);
  });

  it('participants.get without a live session is a RoomNotFoundError', async () => {
    const err = await rejection(client.participants.get(room.roomId, 'lxvdplwt'));
    assert.ok(err instanceof RoomNotFoundError, `got ${err.name}: ${err.message}`);
    assert.equal(rec.last().status, 200, 'the session lookup itself succeeded');
  });

  it('participants.remove without a live session is a 4xx SDK error', async () => {
    assert4xx(await rejection(client.participants.remove(room.roomId, 'lxvdplwt')));
    assert.equal(rec.last().path, '/v2/sessions/participants/remove');
  });
});
