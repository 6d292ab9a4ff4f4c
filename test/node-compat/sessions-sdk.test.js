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

// Every refusal has one exact status and says why: a different 4xx (or a
// generic SDK message instead of the server's) is a regression, not a pass.
function assertRefusal(err, status, messagePattern) {
  assert.ok(isVideoSDKError(err), `expected a VideoSDKError, got ${err && err.stack}`);
  assert.equal(err.httpStatus, status, `${err.name}: ${err.message}`);
  assert.match(err.message, messagePattern);
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
    assertRefusal(err, 404, /session "0123456789abcdef01234567" not found/);
  });

  it('sessions.listParticipants → 404', async () => {
    const err = await rejection(client.sessions.listParticipants(UNKNOWN_SESSION));
    assert.equal(rec.last().path, `/v2/sessions/${UNKNOWN_SESSION}/participants`);
    assertRefusal(err, 404, /session "0123456789abcdef01234567" not found/);
  });

  it('sessions.listActiveParticipants → 404', async () => {
    const err = await rejection(client.sessions.listActiveParticipants(UNKNOWN_SESSION));
    assert.equal(rec.last().path, `/v2/sessions/${UNKNOWN_SESSION}/participants/active`);
    assertRefusal(err, 404, /session "0123456789abcdef01234567" not found/);
  });

  it('sessions.getParticipant → 404', async () => {
    const err = await rejection(client.sessions.getParticipant(UNKNOWN_SESSION, 'lxvdplwt'));
    assert.equal(rec.last().path, `/v2/sessions/${UNKNOWN_SESSION}/participants/lxvdplwt`);
    assertRefusal(err, 404, /session "0123456789abcdef01234567" not found/);
  });

  it('sessions.getStats and sessions.getParticipantStats → 404', async () => {
    assertRefusal(await rejection(client.sessions.getStats(UNKNOWN_SESSION)), 404, /session "0123456789abcdef01234567" not found/);
    assert.equal(rec.last().path, `/v2/sessions/${UNKNOWN_SESSION}/stats`);
    assertRefusal(await rejection(client.sessions.getParticipantStats(UNKNOWN_SESSION, 'lxvdplwt')), 404, /session "0123456789abcdef01234567" not found/);
    assert.equal(rec.last().path, `/v2/sessions/${UNKNOWN_SESSION}/participant/lxvdplwt/stats`);
  });

  it('a malformed session id is a 400 naming the expected format, not a server error', async () => {
    assertRefusal(await rejection(client.sessions.get('not-a-session-id')), 400, /must be 24 lowercase hex characters/);
  });
});

describe('SDK sessions.end', () => {
  it('on a room without a live session is a 400 saying the room has no ongoing session', async () => {
    const err = await rejection(client.sessions.end({ roomId: room.roomId }));
    const ex = rec.last();
    assert.equal(ex.method, 'POST');
    assert.equal(ex.path, '/v2/sessions/end');
    assert.equal(ex.requestBody.roomId, room.roomId);
    assertRefusal(err, 400, /has no ongoing session/);
  });

  it('accepts the customRoomId and the legacy meetingId option, still erroring without a session', async () => {
    assertRefusal(await rejection(client.sessions.end({ roomId: 'sessions-room' })), 400, /has no ongoing session/);
    assertRefusal(await rejection(client.sessions.end({ meetingId: room.roomId, force: true })), 400, /has no ongoing session/);
    assert.equal(rec.last().requestBody.vsdkForceKill, true);
  });

  it('on an unknown room is a 404', async () => {
    assertRefusal(await rejection(client.sessions.end({ roomId: 'zzzz-zzzz-zzzz' })), 404, /not found/);
  });
});

describe('SDK sessions.removeParticipant', () => {
  it('by roomId without a live session is a 400 saying so', async () => {
    const err = await rejection(client.sessions.removeParticipant({ roomId: room.roomId, participantId: 'lxvdplwt' }));
    const ex = rec.last();
    assert.equal(ex.path, '/v2/sessions/participants/remove');
    assert.deepEqual(ex.requestBody, { roomId: room.roomId, participantId: 'lxvdplwt' });
    assertRefusal(err, 400, /has no ongoing session/);
  });

  it('by an unknown sessionId is a 404', async () => {
    assertRefusal(await rejection(client.sessions.removeParticipant({ sessionId: UNKNOWN_SESSION, participantId: 'lxvdplwt' })), 404, /session "0123456789abcdef01234567" not found/);
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

  it('participants.remove without a live session is a 400 saying so', async () => {
    assertRefusal(await rejection(client.participants.remove(room.roomId, 'lxvdplwt')), 400, /has no ongoing session/);
    assert.equal(rec.last().path, '/v2/sessions/participants/remove');
  });
});
