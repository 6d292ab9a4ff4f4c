'use strict';
// The official SDK's sessions calls against a live meeting: real pion
// participants (test/tools/participants) join through the join API and the
// edge, exchange media, and the SDK lists, inspects, kicks and ends.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const readline = require('node:readline');
const { startMeridian } = require('./lib/harness');
const { REST_TIME_RE, sdkClient } = require('./lib/client');

const PARTICIPANTS_BIN = process.env.MERIDIAN_PARTICIPANTS_BIN || path.resolve(__dirname, '../../bin/meridian-participants');

let m;
let client;
let rec;
let room;
let proc;
const lines = [];

function waitLine(pred, ms) {
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const tick = () => {
      const hit = lines.find(pred);
      if (hit) return resolve(hit);
      if (Date.now() - t0 > ms) return reject(new Error(`timed out; participant output so far: ${lines.join(' | ')}`));
      setTimeout(tick, 50);
    };
    tick();
  });
}

async function eventually(fn, ms = 10000) {
  const t0 = Date.now();
  let last;
  for (;;) {
    try {
      return await fn();
    } catch (e) {
      last = e;
    }
    if (Date.now() - t0 > ms) throw last;
    await new Promise((r) => setTimeout(r, 100));
  }
}

before(async () => {
  assert.ok(fs.existsSync(PARTICIPANTS_BIN), `participant tool not built at ${PARTICIPANTS_BIN} (make test-node builds it)`);
  m = await startMeridian();
  ({ client, rec } = sdkClient(m));
  room = await client.rooms.create({ customRoomId: 'live-room' });
  proc = spawn(PARTICIPANTS_BIN, ['-api', m.url, '-api-key', m.apiKey, '-api-secret', m.secret, '-room', room.roomId, '-ids', 'alice,bob,carol'],
    { stdio: ['pipe', 'pipe', 'pipe'] });
  readline.createInterface({ input: proc.stdout }).on('line', (l) => lines.push(l));
  readline.createInterface({ input: proc.stderr }).on('line', (l) => lines.push('stderr: ' + l));
  await waitLine((l) => l === 'READY', 30000);
});

after(async () => {
  if (proc && proc.exitCode === null) {
    proc.stdin.end();
    await new Promise((r) => proc.once('exit', r));
  }
  if (m) await m.stop();
});

describe('SDK sessions against a live meeting', () => {
  let sessionId;

  it('sessions.list shows one ongoing session for the room', async () => {
    const page = await eventually(async () => {
      const p = await client.sessions.list({ roomId: room.roomId });
      assert.equal(p.data.length, 1);
      assert.equal(p.data[0].status, 'ongoing');
      return p;
    });
    sessionId = page.data[0].id;
    assert.match(sessionId, /^[0-9a-f]{24}$/);
    assert.equal(page.data[0].roomId, room.roomId);
  });

  it('sessions.get returns the session with three participants and open timelogs', async () => {
    const s = await client.sessions.get(sessionId);
    assert.equal(s.id, sessionId);
    const ids = s.participants.map((p) => p.participantId).sort();
    assert.deepEqual(ids, ['alice', 'bob', 'carol']);
    for (const p of s.participants) {
      assert.equal(p.timelog.length, 1);
      assert.equal(p.timelog[0].end, null);
      assert.match(p.timelog[0].start, /Z$/);
    }
  });

  it('listParticipants and listActiveParticipants use the documented envelopes', async () => {
    const everyone = ['alice', 'bob', 'carol'];
    const pageInfo = { currentPage: 1, perPage: 20, lastPage: 1, total: 3 };
    const ids = (ps) => ps.map((p) => p.participantId).sort();

    // Contract §2.4: /participants answers { pageInfo, data } where data is
    // ONE session object (not an array). The SDK flattens it, so the wire
    // shape is checked on the recorded response, the flattening on the Page.
    const parts = await client.sessions.listParticipants(sessionId);
    const px = rec.last();
    assert.equal(px.path, `/v2/sessions/${sessionId}/participants`);
    assert.equal(px.status, 200, px.text);
    assert.deepEqual(Object.keys(px.json).sort(), ['data', 'pageInfo']);
    assert.deepEqual(px.json.pageInfo, pageInfo);
    assert.equal(Array.isArray(px.json.data), false, `data is a session object: ${px.text}`);
    assert.equal(px.json.data.id, sessionId);
    assert.equal(px.json.data.roomId, room.roomId);
    assert.equal(px.json.data.status, 'ongoing');
    assert.equal(px.json.data.end, null);
    assert.deepEqual(ids(px.json.data.participants), everyone);
    assert.deepEqual(ids(parts.data), everyone);
    assert.equal(parts.total, 3);

    // /participants/active: data is an ARRAY holding the one live session,
    // whose participants carry the active-only extras (§4).
    const active = await client.sessions.listActiveParticipants(sessionId);
    const ax = rec.last();
    assert.equal(ax.path, `/v2/sessions/${sessionId}/participants/active`);
    assert.equal(ax.status, 200, ax.text);
    assert.deepEqual(Object.keys(ax.json).sort(), ['data', 'pageInfo']);
    assert.deepEqual(ax.json.pageInfo, pageInfo);
    assert.equal(Array.isArray(ax.json.data), true, `data is an array of sessions: ${ax.text}`);
    assert.equal(ax.json.data.length, 1);
    const live = ax.json.data[0];
    assert.equal(live.id, sessionId);
    assert.equal(live._id, sessionId);
    assert.equal(live.status, 'ongoing');
    assert.equal(live.links.get_all_participants, `${m.url}/v2/sessions/${sessionId}/participants`);
    assert.deepEqual(ids(live.participants), everyone);
    for (const p of live.participants) {
      assert.equal(p.mode, 'SEND_AND_RECV', `${p.participantId} mode`);
      assert.deepEqual(p.events, { mic: [], webcam: [], screenShare: [], screenShareAudio: [] });
      assert.equal(p.timelog.length, 1);
      assert.equal(p.timelog[0].end, null);
    }
    assert.deepEqual(ids(active.data), everyone);
    assert.equal(active.total, 3);
  });

  it('removeParticipant kicks bob from the media plane', async () => {
    await client.sessions.removeParticipant({ roomId: room.roomId, participantId: 'bob' });
    await waitLine((l) => l === 'LEFT bob', 10000);
    const s = await client.sessions.get(sessionId);
    const bob = s.participants.find((p) => p.participantId === 'bob');
    assert.notEqual(bob.timelog[0].end, null);
    const active = await client.sessions.listActiveParticipants(sessionId);
    assert.deepEqual(active.data.map((p) => p.participantId).sort(), ['alice', 'carol'], 'bob no longer active');
    assert.equal(active.total, 2);
  });

  it('sessions.end closes the session and disconnects everyone', async () => {
    await client.sessions.end({ roomId: room.roomId });
    await waitLine((l) => l === 'LEFT alice', 10000);
    await waitLine((l) => l === 'LEFT carol', 10000);
    const s = await eventually(async () => {
      const x = await client.sessions.get(sessionId);
      assert.equal(x.status, 'ended');
      return x;
    });
    assert.match(s.end, REST_TIME_RE, 'end time set');
    for (const p of s.participants) assert.match(p.timelog[p.timelog.length - 1].end, REST_TIME_RE, `${p.participantId} closed`);
  });
});
