'use strict';
// The official SDK's recording, HLS and RTMP resources against `meridian dev`
// (control plane + in-process edge with egress) while real pion participants
// (test/tools/participants) publish: every call goes over HTTP to the routes
// of videosdk-v2.md §5-10, and the files it reports are downloaded.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');
const readline = require('node:readline');
const { startMeridian } = require('./lib/harness');
const { DOC_ID_RE, sdkClient, rejection } = require('./lib/client');

const PARTICIPANTS_BIN = process.env.MERIDIAN_PARTICIPANTS_BIN || path.resolve(__dirname, '../../bin/meridian-participants');

// Egress runs ffmpeg on the edge: without it the suite skips, unless CI
// requires it (MERIDIAN_REQUIRE_FFMPEG=1), where a missing ffmpeg fails.
const haveFFmpeg = ['ffmpeg', 'ffprobe'].every((b) => spawnSync(b, ['-version']).status === 0);
if (!haveFFmpeg && process.env.MERIDIAN_REQUIRE_FFMPEG === '1') {
  throw new Error('ffmpeg/ffprobe not found; MERIDIAN_REQUIRE_FFMPEG=1 makes this a failure');
}

let m;
let client;
let rec;
let room;
let proc;
let sessionId;
const lines = [];

async function eventually(fn, ms = 30000) {
  const t0 = Date.now();
  let last;
  for (;;) {
    try {
      return await fn();
    } catch (e) {
      last = e;
    }
    if (Date.now() - t0 > ms) throw last;
    await new Promise((r) => setTimeout(r, 200));
  }
}

function waitLine(pred, ms) {
  return eventually(async () => assert.ok(lines.find(pred), `participant output: ${lines.join(' | ')}`), ms);
}

// Downloads url with no credentials (as a player or webhook receiver would).
async function download(url) {
  const res = await fetch(url);
  assert.equal(res.status, 200, `GET ${url}`);
  return { type: res.headers.get('content-type'), body: Buffer.from(await res.arrayBuffer()) };
}

function probe(buf, name) {
  const file = path.join(fs.mkdtempSync(path.join(require('node:os').tmpdir(), 'egress-sdk-')), name);
  fs.writeFileSync(file, buf);
  const r = spawnSync('ffprobe', ['-v', 'error', '-print_format', 'json', '-show_streams', '-show_format', file], { encoding: 'utf8' });
  fs.rmSync(path.dirname(file), { recursive: true, force: true });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

before(async () => {
  if (!haveFFmpeg) return;
  assert.ok(fs.existsSync(PARTICIPANTS_BIN), `participant tool not built at ${PARTICIPANTS_BIN} (make test-node builds it)`);
  m = await startMeridian();
  ({ client, rec } = sdkClient(m));
  room = await client.rooms.create({ customRoomId: 'egress-room' });
  proc = spawn(PARTICIPANTS_BIN, ['-api', m.url, '-api-key', m.apiKey, '-api-secret', m.secret, '-room', room.roomId, '-ids', 'alice,bob'],
    { stdio: ['pipe', 'pipe', 'pipe'] });
  readline.createInterface({ input: proc.stdout }).on('line', (l) => lines.push(l));
  readline.createInterface({ input: proc.stderr }).on('line', (l) => lines.push('stderr: ' + l));
  await waitLine((l) => l === 'READY', 30000);
  const page = await eventually(async () => {
    const p = await client.sessions.list({ roomId: room.roomId, status: 'ongoing' });
    assert.equal(p.data.length, 1);
    return p;
  });
  sessionId = page.data[0].id;
});

after(async () => {
  if (proc && proc.exitCode === null) {
    proc.stdin.end();
    await new Promise((r) => proc.once('exit', r));
  }
  if (m) await m.stop();
});

describe('SDK egress resources', { skip: !haveFFmpeg && 'ffmpeg not installed' }, () => {
  it('recordings: start, stop by room, list, get with a downloadable MP4, delete', async () => {
    const handle = await client.recordings.start(room.roomId, { composition: { layout: 'grid', quality: 'low' } });
    const sx = rec.last();
    assert.equal(sx.path, '/v2/recordings/start');
    assert.equal(sx.text, '"Recording started successfully"');
    assert.deepEqual(sx.requestBody.config, { layout: { type: 'GRID' }, quality: 'low' });
    assert.equal(handle.roomId, room.roomId);

    const running = await client.recordings.list({ roomId: room.roomId });
    assert.equal(running.data.length, 1);
    assert.equal(running.data[0].status, 'running');
    assert.equal(running.data[0].sessionId, sessionId);
    const id = running.data[0].id;
    assert.match(id, DOC_ID_RE);

    await sleep(2500);
    await client.recordings.stop(handle);
    const ex = rec.last();
    assert.equal(ex.path, '/v2/recordings/end');
    assert.equal(ex.text, '"Recording ended successfully"');

    const done = await eventually(async () => {
      const r = await client.recordings.get(id);
      assert.equal(r.status, 'stopped');
      assert.ok(r.file && r.file.fileUrl, 'file once stopped');
      return r;
    });
    assert.equal(done.roomId, room.roomId);
    assert.equal(done.file.meta.format, 'mov,mp4,m4a,3gp,3g2,mj2');
    const { body } = await download(done.file.fileUrl);
    assert.equal(body.length, done.file.size);
    const p = probe(body, 'rec.mp4');
    assert.deepEqual(p.streams.map((s) => s.codec_type).sort(), ['audio', 'video']);

    assert.equal(await client.recordings.delete(id), 'Room recording deleted successfully');
    const err = await rejection(client.recordings.get(id));
    assert.equal(err.httpStatus, 404);
  });

  it('recordings.composite: the start handle carries the id; stop by handle; get and list', async () => {
    const handle = await client.recordings.composite.start(room.roomId);
    assert.equal(rec.last().path, '/v2/recordings/composite/start');
    assert.match(handle.id, DOC_ID_RE);
    assert.equal(handle.sessionId, sessionId);
    // A second meeting recording while one runs is a conflict.
    const conflict = await rejection(client.recordings.composite.start(room.roomId));
    assert.equal(conflict.httpStatus, 409);
    await sleep(1500);
    await client.recordings.composite.stop(handle);
    const sx = rec.last();
    assert.equal(sx.path, '/v2/recordings/composite/stop');
    assert.deepEqual(sx.requestBody, { roomId: room.roomId, recordingId: handle.id });
    await eventually(async () => assert.equal((await client.recordings.composite.get(handle.id)).status, 'stopped'));
    const page = await client.recordings.composite.list({ roomId: room.roomId });
    assert.ok(page.data.some((r) => r.id === handle.id));
    // Stopping it again: it already ended.
    const again = await rejection(client.recordings.composite.stop(handle));
    assert.equal(again.httpStatus, 409);
  });

  it('participant and track recordings: start, stop, list, get', async () => {
    assert.equal(await client.recordings.participant.start(room.roomId, { participantId: 'alice' }), 'participant recording started successfully.');
    assert.equal(await client.recordings.track.start(room.roomId, { participantId: 'bob', kind: 'audio' }), 'track recording started successfully.');
    const bad = await rejection(client.recordings.track.start(room.roomId, { participantId: 'bob', kind: 'smell' }));
    assert.equal(bad.httpStatus, 400);
    assert.match(bad.message, /kind/);
    await sleep(2000);
    assert.equal(await client.recordings.participant.stop(room.roomId, 'alice'), 'participant recording ended successfully.');
    assert.equal(await client.recordings.track.stop(room.roomId, 'bob', 'audio'), 'track recording ended successfully.');
    const part = await eventually(async () => {
      const p = await client.recordings.participant.list({ roomId: room.roomId, participantId: 'alice' });
      assert.equal(p.data.length, 1);
      assert.equal(p.data[0].status, 'stopped');
      assert.ok(p.data[0].files.length > 0);
      return p.data[0];
    });
    assert.equal(part.kind, 'audio_video');
    assert.equal(part.mode, 'participant');
    assert.equal(part.fileFormat, 'webm');
    assert.equal((await client.recordings.participant.get(part.id)).id, part.id);
    const { body } = await download(part.files[0].fileUrl);
    assert.equal(probe(body, 'alice.webm').format.format_name, 'matroska,webm');
    const track = await eventually(async () => {
      const p = await client.recordings.track.list({ roomId: room.roomId });
      assert.equal(p.data.length, 1);
      assert.equal(p.data[0].status, 'stopped');
      return p.data[0];
    });
    assert.equal(track.kind, 'audio');
    assert.equal(track.mode, 'track');
    assert.equal((await client.recordings.track.get(track.id)).participantId, 'bob');
  });

  it('hls: start answers the stream object; get (active), getById, capture, list, stop, delete', async () => {
    const handle = await client.hls.start(room.roomId, { composition: { quality: 'low' } });
    assert.match(handle.id, DOC_ID_RE);
    assert.match(handle.raw.playbackHlsUrl, /\/egress\/hls\/[0-9a-f]+\/index\.m3u8$/);
    assert.match(handle.raw.livestreamUrl, /\/live\.m3u8$/);
    assert.equal(handle.raw.downstreamUrl, handle.raw.playbackHlsUrl);
    const active = await client.hls.get(room.roomId);
    assert.equal(rec.last().json.code, 200);
    assert.equal(active.id, handle.id);
    assert.equal(active.roomId, room.roomId);
    await eventually(async () => assert.equal((await client.hls.getById(handle.id)).playable, true));
    const playlist = await download(handle.raw.playbackHlsUrl);
    assert.ok(playlist.body.toString().startsWith('#EXTM3U'));
    const cap = await client.hls.capture({ roomId: room.roomId });
    assert.equal(cap.message, 'captured thumbnail successfully');
    assert.equal(cap.meta.format, 'jpg');
    const pic = await download(cap.filePath);
    assert.equal(pic.body.length, cap.fileSize);
    assert.equal(pic.body.subarray(0, 3).toString('hex'), 'ffd8ff', 'a JPEG');
    const page = await client.hls.list({ roomId: room.roomId });
    assert.equal(page.data[0].id, handle.id);
    await client.hls.stop(handle);
    assert.equal(rec.last().path, '/v2/hls/end');
    assert.equal(rec.last().text, '"HLS ended successfully"');
    await eventually(async () => assert.equal((await client.hls.getById(handle.id)).status, 'stopped'));
    const none = await rejection(client.hls.get(room.roomId));
    assert.equal(none.httpStatus, 404);
    assert.equal(await client.hls.delete(handle.id), 'Room Hls Recording deleted successfully !');
  });

  it('rtmp: a destination nobody listens on ends failed with its reason; get and list', async () => {
    const port = await new Promise((resolve) => {
      const s = net.createServer();
      s.listen(0, '127.0.0.1', () => {
        const p = s.address().port;
        s.close(() => resolve(p));
      });
    });
    const handle = await client.rtmp.start(room.roomId, { streams: [{ url: `rtmp://127.0.0.1:${port}/live`, streamKey: 'key-1' }] });
    assert.equal(rec.last().path, '/v2/livestreams/start');
    assert.equal(rec.last().text, '"Livestream started successfully"');
    assert.equal(handle.roomId, room.roomId);
    const failed = await eventually(async () => {
      const p = await client.rtmp.list({ roomId: room.roomId });
      assert.equal(p.data.length, 1);
      assert.equal(p.data[0].status, 'failed');
      return p.data[0];
    });
    assert.ok(failed.error, 'a reason');
    assert.deepEqual(failed.outputs.map((o) => [o.url, o.streamKey, o.status]), [[`rtmp://127.0.0.1:${port}/live`, 'key-1', 'failed']]);
    assert.equal((await client.rtmp.get(failed.id)).id, failed.id);
    const bad = await rejection(client.rtmp.start(room.roomId, { streams: [{ url: 'http://not-rtmp.example/live' }] }));
    assert.equal(bad.httpStatus, 400);
    assert.match(bad.message, /outputs\[0\]\.url/);
  });
});
