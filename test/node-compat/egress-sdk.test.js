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

// RTMP out is checked against a real RTMP server: Debian's nginx with its
// RTMP module, started by this file on loopback. Without it that test
// skips, unless CI requires it (MERIDIAN_REQUIRE_RTMP=1): then the file fails.
function rtmpModule() {
  for (const p of ['/usr/lib/nginx/modules/ngx_rtmp_module.so', '/usr/lib64/nginx/modules/ngx_rtmp_module.so']) {
    if (fs.existsSync(p)) return p;
  }
  const r = spawnSync('dpkg', ['-L', 'libnginx-mod-rtmp'], { encoding: 'utf8' });
  return (r.stdout || '').split('\n').find((l) => l.endsWith('ngx_rtmp_module.so')) || '';
}
const nginxMissing = spawnSync('nginx', ['-v']).status !== 0 ? 'nginx not found' : rtmpModule() === '' ? 'libnginx-mod-rtmp not found' : '';
if (nginxMissing && process.env.MERIDIAN_REQUIRE_RTMP === '1') {
  throw new Error(`${nginxMissing}; MERIDIAN_REQUIRE_RTMP=1 makes this a failure`);
}

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

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

// channelLevels is the RMS level (dB, -Infinity for digital silence) of
// each channel of an audio file, by ffmpeg's astats.
function channelLevels(buf, name) {
  const file = path.join(fs.mkdtempSync(path.join(require('node:os').tmpdir(), 'egress-sdk-')), name);
  fs.writeFileSync(file, buf);
  const r = spawnSync('ffmpeg', ['-hide_banner', '-nostats', '-i', file, '-af', 'astats=measure_perchannel=RMS_level:measure_overall=none', '-f', 'null', '-'], { encoding: 'utf8' });
  fs.rmSync(path.dirname(file), { recursive: true, force: true });
  assert.equal(r.status, 0, r.stderr);
  return [...r.stderr.matchAll(/RMS level dB: (\S+)/g)].map((x) => (x[1] === '-inf' ? -Infinity : Number(x[1])));
}

function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const p = s.address().port;
      s.close(() => resolve(p));
    });
  });
}

// startNginxRTMP runs nginx-rtmp in the foreground on a free loopback port;
// it records every stream it receives to <dir>/rec/<streamKey>.flv.
async function startNginxRTMP() {
  const dir = fs.mkdtempSync(path.join(require('node:os').tmpdir(), 'egress-nginx-'));
  const recDir = path.join(dir, 'rec');
  fs.mkdirSync(recDir, { mode: 0o777 });
  fs.chmodSync(recDir, 0o777);
  const port = await freePort();
  const conf = path.join(dir, 'nginx.conf');
  fs.writeFileSync(conf, `load_module ${rtmpModule()};
daemon off;
master_process off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log info;
events { worker_connections 64; }
rtmp {
  server {
    listen 127.0.0.1:${port};
    chunk_size 4096;
    application live {
      live on;
      record all;
      record_path ${recDir};
      record_unique off;
    }
  }
}
`);
  const out = [];
  const child = spawn('nginx', ['-p', dir, '-e', path.join(dir, 'startup.log'), '-c', conf], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout.on('data', (d) => out.push(String(d)));
  child.stderr.on('data', (d) => out.push(String(d)));
  const exited = new Promise((r) => child.once('exit', r));
  await eventually(async () => {
    assert.equal(child.exitCode, null, `nginx exited: ${out.join('')}`);
    await new Promise((resolve, reject) => {
      const c = net.connect(port, '127.0.0.1', () => {
        c.end();
        resolve();
      });
      c.once('error', reject);
    });
  }, 10000);
  return {
    url: `rtmp://127.0.0.1:${port}/live`,
    file: (key) => path.join(recDir, `${key}.flv`),
    async stop() {
      if (child.exitCode === null) child.kill('SIGKILL');
      await exited;
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

// The participant and track recordings the merge test combines.
let partRec;
let trackRec;

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
    // Deleted through the composite resource, it is gone from both families.
    assert.equal(await client.recordings.composite.delete(handle.id), 'Room recording deleted successfully');
    assert.deepEqual([rec.last().method, rec.last().path], ['DELETE', `/v2/recordings/composite/${handle.id}`]);
    assert.equal((await rejection(client.recordings.composite.get(handle.id))).httpStatus, 404);
    assert.equal((await rejection(client.recordings.get(handle.id))).httpStatus, 404);
    assert.deepEqual((await client.recordings.composite.list({ roomId: room.roomId })).data.map((r) => r.id).filter((i) => i === handle.id), []);
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
    partRec = part;
    trackRec = track;
  });

  it('recordings.merge: create, list, get; the MP3 has channel1 left and channel2 right', async () => {
    assert.ok(partRec && trackRec, 'the participant and track recordings of the previous test');
    // bob has no participant recording: his entry takes his audio track recording.
    const res = await client.recordings.merge.create({ sessionId, channel1: [{ participantId: 'alice', recordingId: partRec.id }], channel2: [{ participantId: 'bob' }] });
    assert.deepEqual([rec.last().method, rec.last().path], ['POST', '/v2/recordings/participant/merge']);
    assert.equal(res.message, 'Merge recording job started successfully.');
    const id = res.recording.id;
    assert.match(id, UUID_RE);
    assert.deepEqual(
      { channel1: res.recording.channel1, channel2: res.recording.channel2, meetingId: res.recording.meetingId, sessionId: res.recording.sessionId, status: res.recording.status },
      { channel1: [{ participantId: 'alice', recordingId: partRec.id }], channel2: [{ participantId: 'bob', recordingId: trackRec.id }], meetingId: room.roomId, sessionId, status: 'running' },
    );
    const done = await eventually(async () => {
      const r = await client.recordings.merge.get(id);
      assert.equal(r.status, 'completed', JSON.stringify(r));
      return r;
    }, 60000);
    assert.equal(rec.last().path, `/v2/recordings/participant/merge/${id}`);
    assert.deepEqual([done.id, done.meetingId, done.sessionId, done.file.type, done.file.meta.format], [id, room.roomId, sessionId, 'audio', 'mp3']);
    const { body } = await download(done.file.fileUrl);
    assert.equal(body.length, done.file.size);
    const p = probe(body, 'merge.mp3');
    assert.deepEqual(p.streams.map((s) => [s.codec_type, s.codec_name, s.channels, s.channel_layout]), [['audio', 'mp3', 2, 'stereo']]);
    const both = channelLevels(body, 'merge.mp3');
    assert.equal(both.length, 2);
    assert.ok(both[0] > -50 && both[1] > -50, `alice left and bob right both carry sound: ${both} dB`);

    // The layout: channel1 is the left channel; an empty channel2 leaves the right one silent.
    const left = await client.recordings.merge.create({ sessionId, channel1: [{ participantId: 'alice' }], channel2: [] });
    assert.deepEqual(left.recording.channel1, [{ participantId: 'alice', recordingId: partRec.id }]);
    assert.deepEqual(left.recording.channel2, []);
    const leftDone = await eventually(async () => {
      const r = await client.recordings.merge.get(left.recording.id);
      assert.equal(r.status, 'completed', JSON.stringify(r));
      return r;
    }, 60000);
    const levels = channelLevels((await download(leftDone.file.fileUrl)).body, 'left.mp3');
    assert.equal(levels.length, 2);
    assert.ok(levels[0] > -50, `left channel carries alice: ${levels[0]} dB`);
    // Silent, not necessarily digital zero: the MP3 encoder's joint stereo can leave ~-150 dB
    // in an empty channel (seen in CI); speech leaking into it would be -20 to -50 dB.
    assert.ok(levels[1] <= -90, `right channel (empty channel2) is silent: ${levels[1]} dB`);

    const completed = await client.recordings.merge.list({ sessionId, status: 'completed' });
    assert.deepEqual(rec.last().query, { sessionId, status: 'completed' });
    assert.deepEqual(completed.data.map((r) => [r.id, r.status]), [[left.recording.id, 'completed'], [id, 'completed']]);
    assert.equal(rec.last().json.pageInfo.total, 2);
    assert.deepEqual((await client.recordings.merge.list({ sessionId, status: 'failed' })).data, []);
    const byId = await client.recordings.merge.list({ id });
    assert.deepEqual(byId.data.map((r) => r.id), [id]);

    // The sources can be deleted once merged.
    assert.equal(await client.recordings.participant.delete(partRec.id), 'Participant Recording deleted successfully.');
    assert.deepEqual([rec.last().method, rec.last().path], ['DELETE', `/v2/recordings/participant/${partRec.id}`]);
    assert.equal((await rejection(client.recordings.participant.get(partRec.id))).httpStatus, 404);
    assert.equal(await client.recordings.track.delete(trackRec.id), 'Track Recording deleted successfully.');
    assert.deepEqual([rec.last().method, rec.last().path], ['DELETE', `/v2/recordings/participant/track/${trackRec.id}`]);
    assert.equal((await rejection(client.recordings.track.get(trackRec.id))).httpStatus, 404);
    assert.deepEqual((await client.recordings.track.list({ roomId: room.roomId })).data, []);
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
    const port = await freePort();
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

  it('rtmp: two destinations on a real nginx-rtmp receive the meeting; stop by handle; get and list', { skip: nginxMissing || false }, async () => {
    const srv = await startNginxRTMP();
    try {
      const handle = await client.rtmp.start(room.roomId, { streams: [{ url: srv.url, streamKey: 'sdk-one' }, { url: srv.url, streamKey: 'sdk-two' }], composition: { quality: 'low' } });
      assert.deepEqual([rec.last().path, rec.last().text], ['/v2/livestreams/start', '"Livestream started successfully"']);
      assert.deepEqual(rec.last().requestBody.config, { layout: { type: 'GRID', priority: 'SPEAKER' }, quality: 'low' });
      const running = await eventually(async () => {
        const p = await client.rtmp.list({ roomId: room.roomId });
        const r = p.data.find((d) => d.status !== 'failed');
        assert.equal(r && r.status, 'running');
        return r;
      });
      assert.equal(running.sessionId, sessionId);
      assert.deepEqual(running.outputs.map((o) => [o.url, o.streamKey]), [[srv.url, 'sdk-one'], [srv.url, 'sdk-two']]);
      await sleep(4000); // media for the servers to receive
      assert.equal(await client.rtmp.stop(handle), 'Livestream ended successfully');
      assert.deepEqual([rec.last().path, rec.last().requestBody], ['/v2/livestreams/end', { roomId: room.roomId }]);
      const done = await eventually(async () => {
        const r = await client.rtmp.get(running.id);
        assert.equal(r.status, 'stopped', JSON.stringify(r));
        return r;
      }, 60000);
      assert.deepEqual(done.outputs.map((o) => [o.url, o.streamKey, o.status, o.error]), [[srv.url, 'sdk-one', 'stopped', undefined], [srv.url, 'sdk-two', 'stopped', undefined]]);
      assert.equal(done.error, undefined);
      // Nothing runs any more: a second stop by room finds nothing.
      assert.equal((await rejection(client.rtmp.stop(room.roomId))).httpStatus, 404);
      const page = await client.rtmp.list({ roomId: room.roomId });
      assert.deepEqual(page.data.map((d) => d.status).sort(), ['failed', 'stopped']);

      // What each server received: H.264 + AAC at the asked size, as long as the job ran (±1 s).
      for (const key of ['sdk-one', 'sdk-two']) {
        const info = await eventually(async () => {
          const r = spawnSync('ffprobe', ['-v', 'error', '-print_format', 'json', '-show_streams', '-show_format', srv.file(key)], { encoding: 'utf8' });
          assert.equal(r.status, 0, r.stderr);
          return JSON.parse(r.stdout);
        }, 10000);
        const codecs = Object.fromEntries(info.streams.map((s) => [s.codec_type, s.codec_name]));
        assert.deepEqual(codecs, { video: 'h264', audio: 'aac' }, key);
        const v = info.streams.find((s) => s.codec_type === 'video');
        assert.deepEqual([v.width, v.height], [854, 480], key);
        const got = Number(info.format.duration);
        assert.ok(Math.abs(got - done.duration) <= 1, `${key}: nginx received ${got} s, the job reports ${done.duration} s`);
      }
    } finally {
      await srv.stop();
    }
  });
});
