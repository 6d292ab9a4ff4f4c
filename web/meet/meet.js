// Meridian meeting page: /meet/{roomId}?token=JWT[&name=Alice][&relay=1][&simulcast=0][&audio=0][&video=0]
//   [&region=eu-west | &lat=48.85&lon=2.35]  where the participant is (placement hint for the join API)
// It is a plain client of the public SDK (/sdk/meridian.js). When the media
// edge is lost or drains, the SDK moves to another one by itself: the page
// shows "Reconnecting…" and keeps every tile in place meanwhile.
import Meridian from '../../sdk/meridian.js';

const $ = (id) => document.getElementById(id);
const meta = (name) => document.querySelector(`meta[name="${name}"]`)?.content ?? '';

const roomId = meta('meridian-room-id');
const apiBase = meta('meridian-api-base');
const params = new URLSearchParams(location.search);
const flag = (k, def) => (params.has(k) ? !['0', 'false', 'no', 'off'].includes(params.get(k).toLowerCase()) : def);

// Keep the token out of the address bar (and of screenshots, history and
// shared links) but survive a reload of this tab.
const tokenKey = `meridian:token:${roomId}`;
let token = params.get('token') || '';
try {
  if (token) sessionStorage.setItem(tokenKey, token);
  else token = sessionStorage.getItem(tokenKey) || '';
} catch { /* storage blocked (some iframes) */ }
if (params.has('token')) {
  params.delete('token');
  const q = params.toString();
  history.replaceState(null, '', location.pathname + (q ? `?${q}` : '') + location.hash);
}

const joinOptions = {
  apiBase,
  roomId,
  token,
  name: params.get('name') || '',
  audio: flag('audio', true),
  video: flag('video', true),
  simulcast: flag('simulcast', true),
  iceTransportPolicy: flag('relay', false) ? 'relay' : 'all',
  region: params.get('region') || undefined,
  lat: params.has('lat') && params.has('lon') ? Number(params.get('lat')) : undefined,
  lon: params.has('lat') && params.has('lon') ? Number(params.get('lon')) : undefined,
  log: flag('debug', false) ? (lvl, ...a) => console[lvl === 'debug' ? 'log' : lvl]?.('[meridian]', ...a) : undefined,
};

let room = null;
const tiles = new Map(); // key → {el, video, participantId, source}
const audios = new Map(); // trackId → <audio>
let speakers = new Set();
const quality = new Map();

// ------------------------------------------------------------------ UI bits

function showBanner(text, kind = 'error') {
  $('banner-text').textContent = text;
  $('banner').dataset.kind = kind;
  $('banner').hidden = false;
}
$('banner-close').addEventListener('click', () => { $('banner').hidden = true; });

function setStatus(state, text) {
  $('status-dot').dataset.state = state;
  $('status-text').textContent = text;
  document.body.dataset.state = state;
  $('reconnecting').hidden = state !== 'reconnecting';
  // Which media edge carries this page (support, tests).
  const edge = room?.edgeId || '';
  if (edge && state === 'joined') document.body.dataset.edgeId = edge;
  $('status-text').title = edge ? `media edge ${edge}${room?.edgeRegion ? ` (${room.edgeRegion})` : ''}` : '';
}

function showOverlay(text, { rejoin = false } = {}) {
  $('overlay-text').textContent = text;
  $('rejoin').hidden = !rejoin;
  $('overlay').hidden = false;
}
function hideOverlay() { $('overlay').hidden = true; }

function initials(name) {
  return (name || '?').split(/\s+/).filter(Boolean).slice(0, 2).map((w) => w[0].toUpperCase()).join('') || '?';
}

function nameOf(pid) {
  if (!room) return pid;
  return room.participants().find((p) => p.participantId === pid)?.name || pid;
}

function tileKey(pid, source) { return `${pid}|${source}`; }

function ensureTile(pid, source, { local = false } = {}) {
  const key = tileKey(pid, source);
  let t = tiles.get(key);
  if (t) return t;
  const el = document.createElement('div');
  el.className = 'tile';
  el.dataset.participantId = pid;
  el.dataset.source = source;
  if (local) el.dataset.local = 'true';
  const avatar = document.createElement('div');
  avatar.className = 'avatar';
  const video = document.createElement('video');
  video.autoplay = true;
  video.playsInline = true;
  video.muted = true; // audio plays through <audio> elements
  video.dataset.participantId = pid;
  video.dataset.source = source;
  if (local) video.dataset.local = 'true';
  const label = document.createElement('div');
  label.className = 'label';
  const nm = document.createElement('span');
  nm.className = 'name';
  const mic = document.createElement('span');
  mic.className = 'mic-off';
  mic.title = 'Microphone muted';
  mic.hidden = true;
  mic.textContent = 'muted';
  const q = document.createElement('span');
  q.className = 'quality';
  q.title = 'Connection quality';
  for (let i = 0; i < 5; i++) q.appendChild(document.createElement('i'));
  label.append(nm, mic, q);
  el.append(avatar, video, label);
  $('stage').appendChild(el);
  t = { el, video, avatar, nm, mic, q, participantId: pid, source, local };
  tiles.set(key, t);
  refreshTile(t);
  return t;
}

// While reconnecting, remote tiles keep their <video> element: the tracks of
// the new edge replace its srcObject as they arrive.
// Whatever was not replaced soon after reconnecting is cleared then.
let staleTimer = null;
function clearStaleTiles() {
  for (const t of [...tiles.values()]) {
    if (!t.stale) continue;
    t.stale = false;
    if (t.source === 'screen') removeTile(t.participantId, 'screen');
    else { t.video.srcObject = null; refreshTile(t); }
  }
}

function removeTile(pid, source) {
  const key = tileKey(pid, source);
  const t = tiles.get(key);
  if (!t) return;
  t.video.srcObject = null;
  t.el.remove();
  tiles.delete(key);
}

function refreshTile(t) {
  const name = t.local ? `${room?.name || 'You'} (you)` : nameOf(t.participantId);
  t.nm.textContent = t.source === 'screen' ? `${name} — screen` : name;
  t.avatar.textContent = initials(t.local ? room?.name : nameOf(t.participantId));
  const stream = t.video.srcObject;
  const hasVideo = !!stream && stream.getVideoTracks().some((v) => v.readyState === 'live' && !v.muted);
  let videoMuted = false;
  let micMuted = false;
  if (t.local) {
    videoMuted = t.source === 'camera' && !room?.cameraEnabled;
    micMuted = !room?.micEnabled;
  } else if (room) {
    const p = room.participants().find((x) => x.participantId === t.participantId);
    const tracks = p?.tracks || [];
    videoMuted = tracks.some((x) => x.source === t.source && x.kind === 'video' && x.muted);
    micMuted = t.source === 'camera' && tracks.some((x) => x.source === 'microphone' && x.muted);
  }
  t.el.classList.toggle('no-video', !hasVideo || videoMuted);
  t.mic.hidden = !micMuted || t.source !== 'camera';
  t.el.classList.toggle('speaking', speakers.has(t.participantId) && t.source === 'camera');
  const score = quality.get(t.participantId);
  t.q.hidden = score === undefined || t.source !== 'camera';
  t.q.dataset.score = String(Math.round(score ?? 0));
  [...t.q.children].forEach((bar, i) => bar.classList.toggle('on', i < Math.round(score ?? 0)));
}

function refreshAll() {
  if (room && (room.state === 'joined' || room.state === 'reconnecting')) {
    // Everyone gets a tile (an avatar until their video arrives).
    for (const p of room.participants()) if (!p.isLocal) ensureTile(p.participantId, 'camera');
    syncVideos();
  }
  for (const t of tiles.values()) refreshTile(t);
  renderPeople();
  renderControls();
  document.getElementById('stage').dataset.count = String(tiles.size);
}

// syncVideos shows in every remote tile the video the SDK receives for it,
// on every refresh: the only place a remote video is attached. A tile made
// again after its track arrived (its participant was said to leave while its
// media kept coming, as when a second tab with the same id takes over on
// another edge) gets it back. A tile keeps the track it names (trackId, the
// newest to arrive) while the SDK still has it.
function syncVideos() {
  const want = new Map();
  for (const r of room.remoteTracks()) {
    if (r.kind !== 'video') continue;
    const key = tileKey(r.participantId, r.source === 'screen' ? 'screen' : 'camera');
    const t = tiles.get(key);
    if (!t || t.local || t.stale) continue;
    if (want.get(key)?.trackId === t.trackId) continue;
    want.set(key, r);
  }
  for (const [key, r] of want) {
    const t = tiles.get(key);
    if (t.video.srcObject?.getVideoTracks()[0] === r.track) continue;
    t.trackId = r.trackId;
    attachVideo(t, r.track);
  }
}

function button(text, cls, onClick, attrs = {}) {
  const b = document.createElement('button');
  b.type = 'button';
  b.className = cls;
  b.textContent = text;
  for (const [k, v] of Object.entries(attrs)) b.setAttribute(k, v);
  b.addEventListener('click', onClick);
  return b;
}

let peopleSig = '';

function renderPeople() {
  const people = room && room.state !== 'lobby' ? room.participants() : [];
  const moderate = !!room?.permissions.moderate && room.state === 'joined';
  const lobby = room && moderate ? room.lobbyRequests() : [];
  // Rebuild only on a visible change: events such as active-speaker arrive
  // many times a second, and a rebuild between mousedown and mouseup would
  // swallow a click on the moderator buttons.
  const sig = JSON.stringify([moderate, room?.micEnabled, lobby, people.map((p) => [p.participantId, p.name, p.moderator, p.isLocal,
    p.tracks.filter((t) => t.source === 'microphone').map((t) => t.muted)])]);
  if (sig === peopleSig) return;
  peopleSig = sig;
  const list = $('people-list');
  list.replaceChildren();
  $('people-count').textContent = String(people.length);
  for (const p of people) {
    const li = document.createElement('li');
    li.dataset.participantId = p.participantId;
    const who = document.createElement('span');
    who.className = 'who';
    who.textContent = p.isLocal ? `${p.name} (you)` : p.name;
    if (p.moderator) {
      const badge = document.createElement('span');
      badge.className = 'badge';
      badge.textContent = 'host';
      who.appendChild(badge);
    }
    li.appendChild(who);
    const micMuted = p.isLocal ? !room.micEnabled : p.tracks.some((t) => t.source === 'microphone' && t.muted) || !p.tracks.some((t) => t.source === 'microphone');
    const st = document.createElement('span');
    st.className = 'state';
    st.textContent = micMuted ? 'mic off' : '';
    li.appendChild(st);
    if (moderate && !p.isLocal) {
      const actions = document.createElement('span');
      actions.className = 'actions';
      actions.append(
        button('Mute', 'small', () => room.muteParticipant(p.participantId, 'audio'), { 'data-action': 'mute', 'aria-label': `Mute ${p.name}` }),
        button('Stop video', 'small', () => room.muteParticipant(p.participantId, 'video'), { 'data-action': 'mute-video', 'aria-label': `Stop ${p.name}'s video` }),
        button('Remove', 'small danger', () => {
          if (confirm(`Remove ${p.name} from the meeting?`)) room.removeParticipant(p.participantId);
        }, { 'data-action': 'remove', 'aria-label': `Remove ${p.name}` }),
      );
      li.appendChild(actions);
    }
    list.appendChild(li);
  }
  $('lobby-section').hidden = lobby.length === 0;
  const ll = $('lobby-list');
  ll.replaceChildren();
  for (const r of lobby) {
    const li = document.createElement('li');
    li.dataset.participantId = r.participantId;
    const who = document.createElement('span');
    who.className = 'who';
    who.textContent = r.name;
    const actions = document.createElement('span');
    actions.className = 'actions';
    actions.append(
      button('Admit', 'small primary', () => { room.admit(r.participantId); renderPeople(); }, { 'data-action': 'admit' }),
      button('Deny', 'small', () => { room.deny(r.participantId); renderPeople(); }, { 'data-action': 'deny' }),
    );
    li.append(who, actions);
    ll.appendChild(li);
  }
}

function setCtl(id, { pressed, label, disabled }) {
  const b = $(id);
  if (pressed !== undefined) b.setAttribute('aria-pressed', String(pressed));
  if (label !== undefined) b.querySelector('.lbl').textContent = label;
  if (disabled !== undefined) b.disabled = disabled;
}

function renderControls() {
  const joined = room?.state === 'joined';
  const canPub = joined && room.permissions.publish;
  const hasMic = !!room?.localStream?.getAudioTracks().length;
  setCtl('btn-mic', { pressed: !room?.micEnabled, label: room?.micEnabled ? 'Mute' : 'Unmute', disabled: !canPub || !hasMic });
  setCtl('btn-cam', { pressed: !room?.cameraEnabled, label: room?.cameraEnabled ? 'Stop video' : 'Start video', disabled: !canPub });
  const canShare = canPub && !!navigator.mediaDevices?.getDisplayMedia;
  setCtl('btn-screen', { pressed: !!room?.screenSharing, label: room?.screenSharing ? 'Stop sharing' : 'Share screen', disabled: !canShare });
  setCtl('btn-leave', { label: room && room.state !== 'left' ? 'Leave' : 'Leave', disabled: !room || room.state === 'left' });
}

// ---------------------------------------------------------------- media

function attachVideo(t, track) {
  const ms = new MediaStream([track]);
  t.video.srcObject = ms;
  const p = t.video.play();
  if (p) p.catch(() => { /* muted autoplay is always allowed; ignore races */ });
  track.addEventListener('mute', () => refreshTile(t));
  track.addEventListener('unmute', () => refreshTile(t));
  track.addEventListener('ended', () => refreshTile(t));
  refreshTile(t);
}

function attachAudio(pid, trackId, track) {
  const a = document.createElement('audio');
  a.autoplay = true;
  a.dataset.participantId = pid;
  a.dataset.trackId = trackId;
  a.srcObject = new MediaStream([track]);
  $('audio-sink').appendChild(a);
  audios.set(trackId, a);
  const p = a.play();
  if (p) p.catch(() => { if (a.paused) $('btn-audio').hidden = false; });
}

// Chromium lets a page that captures the camera or microphone play sound
// without a click, so an <audio> refused before the local devices started
// (the others' tracks often arrive first) can play once they have.
function retryAudio() {
  const paused = [...audios.values()].filter((a) => a.paused);
  if (!paused.length) return;
  Promise.allSettled(paused.map((a) => a.play())).then((rs) => {
    if (rs.every((r) => r.status === 'fulfilled')) $('btn-audio').hidden = true;
  });
}

// Participants are told while the meeting is recorded or streamed live.
function showEgress(r) {
  const rec = !!r?.recording;
  const live = !!r?.streaming;
  $('rec-indicator').hidden = !rec;
  $('live-indicator').hidden = !live;
  document.body.dataset.recording = String(rec);
  document.body.dataset.streaming = String(live);
}

$('btn-audio').addEventListener('click', () => {
  for (const a of audios.values()) a.play().catch(() => {});
  $('btn-audio').hidden = true;
});

function wire(r) {
  r.on('joined', () => {
    hideOverlay();
    setStatus('joined', 'Connected');
    showEgress(r);
    ensureTile(r.participantId, 'camera', { local: true });
    if (r.localStream) attachLocal();
    refreshAll();
  });
  r.on('local-track', ({ source }) => {
    if (source === 'camera' || source === 'microphone') {
      attachLocal();
      retryAudio();
    }
    if (source === 'screen' && r.screenStream) {
      const t = ensureTile(r.participantId || 'me', 'screen', { local: true });
      attachVideo(t, r.screenStream.getVideoTracks()[0]);
    }
    refreshAll();
  });
  r.on('screen-share', ({ active }) => {
    if (!active) removeTile(r.participantId || 'me', 'screen');
    refreshAll();
  });
  r.on('lobby', () => {
    setStatus('lobby', 'Waiting in the lobby');
    showOverlay('Waiting for a host to let you in…');
  });
  r.on('participant-joined', refreshAll);
  r.on('participant-left', ({ participantId }) => {
    for (const t of [...tiles.values()]) if (t.participantId === participantId && !t.local) removeTile(t.participantId, t.source);
    refreshAll();
  });
  r.on('track-added', ({ participantId, trackId, track, kind, source }) => {
    if (kind === 'audio') {
      attachAudio(participantId, trackId, track);
    } else {
      // The tile shows the newest track; syncVideos (refreshAll) attaches it.
      const t = ensureTile(participantId, source === 'screen' ? 'screen' : 'camera');
      t.trackId = trackId;
      t.stale = false;
    }
    refreshAll();
  });
  r.on('track-removed', ({ participantId, trackId, kind, source }) => {
    if (kind === 'audio') {
      audios.get(trackId)?.remove();
      audios.delete(trackId);
    } else {
      const key = tileKey(participantId, source === 'screen' ? 'screen' : 'camera');
      const t = tiles.get(key);
      if (t && t.trackId === trackId) {
        if (r.state === 'reconnecting') t.stale = true; // replaced by the new edge's track
        else if (source === 'screen') removeTile(participantId, 'screen');
        else { t.video.srcObject = null; refreshTile(t); }
      }
    }
    refreshAll();
  });
  r.on('track-published', refreshAll);
  r.on('track-unpublished', refreshAll);
  r.on('mute', (e) => {
    if (e.self && e.byModerator) showBanner(e.kind === 'audio' ? 'A host muted your microphone.' : 'A host turned off your camera.', 'info');
    refreshAll();
  });
  r.on('active-speaker', ({ participantIds }) => { speakers = new Set((participantIds || []).slice(0, 1)); refreshAll(); });
  r.on('egress-state', () => showEgress(r));
  r.on('connection-quality', ({ participantId, score }) => { quality.set(participantId, score); refreshAll(); });
  r.on('lobby-request', ({ name }) => { showBanner(`${name} is waiting to join.`, 'info'); refreshAll(); });
  r.on('lobby-withdrawn', () => refreshAll());
  r.on('removed', ({ reason }) => {
    const text = {
      removed: 'A host removed you from the meeting.',
      denied: 'A host declined your request to join.',
      'room-closed': 'The meeting has ended.',
      duplicate: 'You joined this meeting from another tab or device.',
    }[reason] || `You left the meeting (${reason}).`;
    showBanner(text, reason === 'room-closed' || reason === 'duplicate' ? 'info' : 'error');
  });
  r.on('error', ({ message, fatal }) => { showBanner(message); if (fatal) setStatus('error', 'Disconnected'); });
  r.on('reconnecting', () => {
    clearTimeout(staleTimer);
    setStatus('reconnecting', ''); // the "Reconnecting…" badge says it
    refreshAll();
  });
  r.on('reconnected', () => {
    setStatus(r.state === 'lobby' ? 'lobby' : 'joined', r.state === 'lobby' ? 'Waiting in the lobby' : 'Connected');
    $('banner').hidden = true;
    clearTimeout(staleTimer);
    staleTimer = setTimeout(clearStaleTiles, 10_000);
    refreshAll();
  });
  r.on('left', ({ reason }) => {
    clearTimeout(staleTimer);
    for (const t of [...tiles.values()]) removeTile(t.participantId, t.source);
    for (const a of audios.values()) a.remove();
    audios.clear();
    setStatus('left', 'Not connected');
    showOverlay(reason === 'left' ? 'You left the meeting.' : 'You are no longer in the meeting.', { rejoin: reason === 'left' || reason === 'error' });
    refreshAll();
  });
}

function attachLocal() {
  if (!room?.participantId || !room.localStream) return;
  const t = ensureTile(room.participantId, 'camera', { local: true });
  const v = room.localStream.getVideoTracks()[0];
  if (v && t.video.srcObject?.getVideoTracks()[0] !== v) attachVideo(t, v);
  else refreshTile(t);
}

// ------------------------------------------------------------- controls

$('btn-mic').addEventListener('click', async () => {
  await room?.setMicEnabled(!room.micEnabled).catch((e) => showBanner(e.message));
  refreshAll();
});
$('btn-cam').addEventListener('click', async () => {
  $('btn-cam').disabled = true;
  await room?.setCameraEnabled(!room.cameraEnabled).catch((e) => showBanner(e.message));
  attachLocal();
  refreshAll();
});
$('btn-screen').addEventListener('click', async () => {
  if (!room) return;
  try {
    if (room.screenSharing) await room.stopScreenShare();
    else await room.startScreenShare();
  } catch (e) {
    if (e.name !== 'NotAllowedError') showBanner(e.message);
  }
  refreshAll();
});
$('btn-leave').addEventListener('click', () => { room?.leave(); });
$('rejoin').addEventListener('click', () => start());
$('toggle-people').addEventListener('click', () => {
  const side = $('side');
  side.hidden = !side.hidden;
  $('toggle-people').setAttribute('aria-expanded', String(!side.hidden));
});
window.addEventListener('pagehide', () => { room?.leave(); });

// ------------------------------------------------------------------ start

async function start() {
  $('banner').hidden = true;
  hideOverlay();
  if (!token) {
    setStatus('error', 'Not connected');
    showBanner('This meeting link has no token. Ask the organiser for a complete link (…/meet/ROOM?token=…).');
    return;
  }
  setStatus('connecting', 'Joining…');
  room = new Meridian.Room(joinOptions);
  window.meridianRoom = room; // handy for debugging in the console
  wire(room);
  try {
    await room.join();
  } catch (err) {
    setStatus('error', 'Could not join');
    showBanner(err.message || String(err));
    showOverlay('Could not join the meeting.', { rejoin: !(err.status >= 400 && err.status < 500) });
  }
  refreshAll();
}

start();
