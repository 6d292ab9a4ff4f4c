/**
 * Meridian Web SDK — join a Meridian (VideoSDK-compatible) room from a browser.
 *
 * Dependency-free ES module. Loading it also sets `window.Meridian` (the
 * default export), so `<script type="module" src="/sdk/meridian.js">` works
 * for pages that do not use `import`.
 *
 *   import Meridian from '/sdk/meridian.js';
 *   const room = await Meridian.join({ apiBase: '', roomId, token, name: 'Alice' });
 *   room.on('track-added', ({ participantId, track, stream, kind, source }) => { ... });
 *
 * Meridian.join(options) → Promise<Room>, resolved once the edge admitted the
 * client (`room.state === 'joined'`) or put it in the lobby (`'lobby'`).
 * It rejects with a MeridianError whose `message` is the server's message
 * (deactivated room, full room, expired token, token for another room, …)
 * and `status` the HTTP status (401/403/404/503) or `code` the signaling code.
 * `new Meridian.Room(options)` + `room.on(...)` + `await room.join()` does the
 * same but lets handlers be attached before anything happens (or pass
 * `options.on = {event: handler}`).
 *
 * Options
 *   apiBase            API origin, e.g. "https://video.example.com" ("" = this origin)
 *   roomId             the room to join
 *   token              VideoSDK JWT (role "rtc" or no roles; permission allow_join or ask_join)
 *   name               display name
 *   participantId      optional; must match the token's participantId if it has one
 *   audio, video       publish the microphone / camera (default true; or a MediaTrackConstraints)
 *   simulcast          send the camera in 3 simulcast layers q/h/f (default true)
 *   iceTransportPolicy "all" (default) or "relay" (TURN only)
 *   region             where the client is, as a region name (e.g. "eu-west"): a
 *                      placement hint for the join API (default: the server
 *                      locates the client by IP, else its default region)
 *   lat, lon           where the client is, as coordinates (instead of region)
 *   on                 {event: handler} registered before joining
 *   log                a function(level, message, ...details) for debugging (default: silent)
 *
 * Room
 *   state                     'new' | 'connecting' | 'lobby' | 'joined' | 'reconnecting' | 'left'
 *   roomId, participantId, name, permissions {publish, subscribe, moderate}
 *   participantId             kept for the whole life of the Room, across edges
 *   edgeId, edgeRegion        the media edge in use (null while not connected)
 *   localStream               MediaStream of the local camera + microphone (preview)
 *   screenStream              MediaStream of the screen share, or null
 *   micEnabled, cameraEnabled, screenSharing
 *   recording, streaming      the meeting is being recorded / streamed live (RTMP or HLS)
 *                             by the server; shown to every participant
 *   on(event, fn) / off(event, fn) / once(event, fn)
 *   participants()            → [{participantId, name, moderator, tracks: [TrackInfo], stream, isLocal}]
 *   lobbyRequests()           → [{participantId, name}] waiting for a moderator's decision
 *   publish()                 (re)publish the local tracks (called automatically after joining)
 *   setMicEnabled(bool)       mute/unmute the microphone (reported to others)
 *   setCameraEnabled(bool)    stop/restart the camera (the device light goes off)
 *   startScreenShare()        share a screen/window/tab (stream id "screen")
 *   stopScreenShare()
 *   muteParticipant(id, kind) moderators: kind "audio" | "video"
 *   removeParticipant(id)     moderators
 *   admit(id) / deny(id)      moderators: answer a lobby request
 *   setLayer(trackId, layer)  pin a simulcast layer "q" | "h" | "f" | "auto"
 *   getStats()                → {publisher: RTCStatsReport, subscriber: RTCStatsReport}
 *   leave()                   leave the room, stop the devices
 *
 * Events (handler gets one object)
 *   joined               {roomId, participantId, permissions, resumed}
 *   participant-joined   {participantId, name, moderator}
 *   participant-left     {participantId, reason}
 *   track-added          {participantId, trackId, track, stream, kind, source}
 *   track-removed        {participantId, trackId, track, stream, kind, source}
 *   track-published / track-unpublished   the edge's TrackInfo / {participantId, trackId}
 *   local-track          {track, kind, source, stream}  a local device track started
 *   mute                 {participantId, kind, trackId, muted, self}  someone's mute state changed
 *   active-speaker       {participantIds}
 *   connection-quality   {participantId, score}        score 0–5
 *   egress-state         {recording, streaming}        a recording or live stream of the
 *                        meeting started or ended (also once after joined when either is on)
 *   lobby                {}                            waiting for a moderator
 *   lobby-request        {participantId, name}         (moderators)
 *   lobby-withdrawn      {participantId}               (moderators) the request needs no answer
 *                        any more: decided elsewhere, or the asker left
 *   removed              {reason}                      removed | denied | room-closed | duplicate
 *   error                {code, message, fatal}
 *   reconnecting         {from, reason, deadline?}   the edge `from` was lost or asked us to move;
 *                        reason: socket-closed | media-lost | edge-silent | edge-draining
 *   reconnected          {from, to, reason, resumed, took}   back in the room, on edge `to`
 *                        (resumed: same edge, same session; took: ms since reconnecting)
 *   left                 {reason}
 *
 * Failover (docs/multi-edge.md "Failover and drain", docs/web-sdk.md)
 *   The join API answers a list of candidate edges; the SDK joins the first
 *   that admits it (the next one if its WebSocket cannot be opened or it
 *   answers wrong-edge / unavailable). Once in the room, the edge counts as
 *   lost (in the lobby too) when the signaling socket closes without `removed`/leave, when a
 *   PeerConnection goes "failed" or stays "disconnected" for 3 s, when the
 *   edge answers nothing (not even `pong`) for 3 s (edge-silent: a stalled
 *   edge keeps its sockets open), or when the edge sends `reconnect` (it is
 *   draining). Then room.state becomes
 *   'reconnecting' and, until it works or leave() is called (backoff 0.2 s →
 *   5 s, no time limit):
 *     1. socket closed / first media loss on this edge: one quick resume on
 *        the same edge (`join {resumeToken}`, 3 s), which keeps the session
 *        and the PeerConnections' peers; it is retried for as long as the
 *        join API is unreachable too (then our own network is down), within
 *        the edge's 30 s grace period;
 *     2. otherwise (resume refused: join afresh, same edge allowed; edge
 *        unreachable while the API answers; silent; draining; media lost twice
 *        within 60 s): POST /v2/rooms/{roomId}/join with the same
 *        participantId and avoidEdges [the lost edge, + every candidate that
 *        could not be reached since], then the first candidate that admits us,
 *        with `join {ticket, name, resumeToken}`: the resume token of the last
 *        `joined` proves we are the participant admitted before, so an
 *        ask_join guest skips the lobby.
 *        When no edge is left (503) the list is cut back to the lost edge,
 *        then emptied (it may have come back).
 *   For `reconnect` and a silent edge the old edge keeps carrying media (if
 *   it still does) until the new edge
 *   answers `joined`; then the SDK sends `leave` on the old socket and closes
 *   it. On the new edge the local tracks (camera, microphone, screen share)
 *   are published again without asking for the devices, participants are
 *   rebuilt from the `joined` snapshot (those still there emit nothing, those
 *   new participant-joined; those missing get PEERS_SETTLE = 5 s to reappear
 *   through the new edge's cascade legs, then participant-left), and every
 *   remote track is replaced: track-removed for the old one, then
 *   track-added (same trackId) once the new edge forwards it.
 *
 * Protocol: docs/signaling.md (one WebSocket, two PeerConnections — the client
 * offers on "publisher", the edge offers on "subscriber" —, trickle ICE).
 */

const VERSION = '0.1.0';
const PING_INTERVAL = 1_000;
// An edge that answers nothing, not even a ping, for this long is stalled
// (a frozen VM or process keeps its sockets open, so nothing closes).
const EDGE_SILENT_AFTER = 3_000;
const RESUME_WINDOW = 30_000; // the edge keeps a dropped participant this long
const RESUME_TIMEOUT = 3_000; // one quick resume attempt on the same edge
const CONNECT_TIMEOUT = 10_000;
const MEDIA_LOST_AFTER = 3_000; // a PeerConnection "disconnected" this long = media lost
const MEDIA_LOST_AGAIN = 60_000; // media lost twice on one edge within this: move
const BACKOFF_MIN = 200;
const BACKOFF_MAX = 5_000;
const MAX_AVOID = 16; // the join API accepts at most 16 avoidEdges
// After a move to another edge, participants missing from its `joined`
// snapshot may still be in the room: the new edge learns the participants of
// the room's other edges through its cascade legs a moment later. They get
// this long to reappear before participant-left is emitted for them.
const PEERS_SETTLE = 5_000;
// Events about one participant that the SDK ignores when they name our own
// id (see _dispatch).
const ABOUT_A_PARTICIPANT = new Set(['participant-joined', 'participant-left', 'track-published', 'track-unpublished']);
// Signaling error codes after which retrying the same edge is pointless.
const FATAL_CODES = new Set(['invalid-ticket', 'ticket-expired', 'room-full', 'room-closed', 'forbidden', 'wrong-edge', 'unavailable']);
// Transient: this edge cannot take us, another candidate may ('network':
// the WebSocket could not be opened or closed before `joined`).
const NEXT_EDGE_CODES = new Set(['wrong-edge', 'unavailable', 'network']);

/** MeridianError carries the server's message, the HTTP status or the signaling code. */
export class MeridianError extends Error {
  constructor(message, { status = 0, code = '', cause } = {}) {
    super(message);
    this.name = 'MeridianError';
    this.status = status;
    this.code = code;
    if (cause) this.cause = cause;
  }
}

class Emitter {
  constructor() { this._handlers = new Map(); }
  on(event, fn) {
    if (!this._handlers.has(event)) this._handlers.set(event, new Set());
    this._handlers.get(event).add(fn);
    return this;
  }
  off(event, fn) { this._handlers.get(event)?.delete(fn); return this; }
  once(event, fn) {
    const w = (e) => { this.off(event, w); fn(e); };
    return this.on(event, w);
  }
  _emit(event, detail = {}) {
    for (const fn of [...(this._handlers.get(event) || [])]) {
      try { fn(detail); } catch (err) { setTimeout(() => { throw err; }); }
    }
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Parses an SDP into its m-sections: {mid, kind, streamId, trackId}. */
function parseMsids(sdp) {
  const out = [];
  let cur = null;
  for (const line of sdp.split(/\r?\n/)) {
    if (line.startsWith('m=')) {
      cur = { kind: line.slice(2).split(' ')[0], mid: null, streamId: null, trackId: null };
      out.push(cur);
    } else if (cur && line.startsWith('a=mid:')) {
      cur.mid = line.slice(6).trim();
    } else if (cur && line.startsWith('a=msid:')) {
      const [s, t] = line.slice(7).trim().split(' ');
      cur.streamId = s; cur.trackId = t || null;
    } else if (cur && !cur.streamId && /^a=ssrc:\d+ msid:/.test(line)) {
      const [s, t] = line.replace(/^a=ssrc:\d+ msid:/, '').trim().split(' ');
      cur.streamId = s; cur.trackId = t || null;
    }
  }
  return out;
}

/**
 * Room is one participant's membership of a meeting.
 */
export class Room extends Emitter {
  constructor(options = {}) {
    super();
    if (!options.roomId) throw new MeridianError('roomId is required', { code: 'bad-request' });
    if (!options.token) throw new MeridianError('token is required', { code: 'bad-request' });
    this.options = {
      apiBase: '', audio: true, video: true, simulcast: true, iceTransportPolicy: 'all', ...options,
    };
    this.options.apiBase = String(this.options.apiBase || '').replace(/\/+$/, '');
    this.roomId = options.roomId;
    this.participantId = options.participantId || null;
    this.name = options.name || '';
    this.state = 'new';
    this.permissions = { publish: false, subscribe: false, moderate: false };
    this.localStream = null;
    this.screenStream = null;
    this.micEnabled = this.options.audio !== false;
    this.cameraEnabled = this.options.video !== false;
    this.screenSharing = false;
    this.recording = false;
    this.streaming = false;
    this._log = typeof options.log === 'function' ? options.log : () => {};
    this._participants = new Map(); // id → {participantId, name, moderator, tracks: Map, stream}
    this._lobby = new Map();
    this._gone = new Map(); // participantId → timer: missing after a move, not yet reported left
    this._edges = [];
    this._edge = null;
    this._ws = null;
    this._pub = null;
    this._sub = null;
    this._senders = new Map(); // source ('microphone'|'camera'|'screen'|'screen_audio') → {sender, trackId, kind}
    this._remote = new Map(); // trackId → {participantId, trackId, track, stream, kind, source}
    this._mids = new Map(); // subscriber mid → {streamId, trackId}
    this._resumeToken = null;
    this._iceServers = [];
    this._pingTimer = null;
    this._pubQueue = Promise.resolve();
    this._subQueue = Promise.resolve();
    this._pubDirty = false;
    this._pendingRemoteCands = { publisher: [], subscriber: [] };
    this._heldLocalCands = { publisher: null, subscriber: null };
    this._mediaPromise = null;
    this._attempt = 0; // join() calls so far: media asked for by an older one is stale
    this._closing = false;
    this._reconnecting = false;
    this._reconnect = null; // {from, reason, at} while reconnecting
    this._mediaLost = null; // {edgeId, at} of the last media loss
    this._lastError = null;
    for (const [ev, fn] of Object.entries(options.on || {})) this.on(ev, fn);
  }

  // ---------------------------------------------------------------- joining

  /** The media edge in use (its id), or null. */
  get edgeId() { return this._edge?.edgeId || null; }

  /** The region of the media edge in use, or null. */
  get edgeRegion() { return this._edge?.region || null; }

  /** Asks the API for an edge and a ticket, then connects. Resolves when joined or in the lobby. */
  async join() {
    if (this.state !== 'new' && this.state !== 'left') throw new MeridianError('already joined', { code: 'bad-request' });
    this.state = 'connecting';
    this._closing = false;
    const attempt = ++this._attempt;
    // Ask for the devices at once, in parallel with the join API request and
    // the edge's admission (the permission prompt shows now): the camera's
    // start is the longest step before publishing, and the others see us
    // only once we publish. A stream that arrives after this join failed (or
    // after leave()) is stopped at once (_acquireLocalMedia).
    this._mediaPromise = this._acquireLocalMedia(attempt);
    try {
      // Every candidate unreachable (or refusing with a transient code): ask
      // the API once more, avoiding them.
      const avoid = [];
      for (let round = 0; ; round++) {
        const resp = await this._requestJoin(avoid);
        this._adoptJoinAnswer(resp);
        try {
          await this._connectAnyEdge(avoid);
          return this;
        } catch (err) {
          if (round >= 1 || this._closing || !NEXT_EDGE_CODES.has(err.code)) throw err;
          this._log('warn', 'no candidate edge admitted us; asking the API again avoiding', avoid);
        }
      }
    } catch (err) {
      this._teardown('failed');
      this.state = 'left';
      throw err;
    }
  }

  _adoptJoinAnswer(resp) {
    this.participantId = resp.participantId || this.participantId;
    this.name = resp.name || this.name;
    this._edges = resp.edges || [];
    if (!this._edges.length) throw new MeridianError('no media edge is available for this room', { status: 503 });
  }

  /** POST /v2/rooms/{roomId}/join with the location hint and the edges to avoid. */
  async _requestJoin(avoid = []) {
    const body = { name: this.name || undefined };
    if (this.participantId) body.participantId = this.participantId;
    const { region, lat, lon } = this.options;
    if (region) body.region = String(region);
    if (lat !== undefined && lat !== null && lat !== '' && lon !== undefined && lon !== null && lon !== ''
      && Number.isFinite(Number(lat)) && Number.isFinite(Number(lon))) {
      body.lat = Number(lat);
      body.lon = Number(lon);
    }
    if (avoid.length) body.avoidEdges = [...new Set(avoid)].slice(-MAX_AVOID);
    let res;
    try {
      res = await fetch(`${this.options.apiBase}/v2/rooms/${encodeURIComponent(this.roomId)}/join`, {
        method: 'POST',
        headers: { Authorization: this.options.token, 'Content-Type': 'application/json' },
        body: JSON.stringify(body),
        credentials: 'omit',
      });
    } catch (err) {
      throw new MeridianError('cannot reach the meeting server', { code: 'network', cause: err });
    }
    let data = null;
    try { data = await res.json(); } catch { /* not JSON */ }
    if (!res.ok) {
      const msg = (data && (data.message || data.error)) || `join failed (HTTP ${res.status})`;
      throw new MeridianError(msg, { status: res.status, code: (data && data.error) || '' });
    }
    return data;
  }

  /**
   * Joins the first candidate edge that admits us, in the API's order. Edges
   * that fail with a transient code are appended to `failed` (the caller's
   * avoidEdges for its next join API call).
   */
  async _connectAnyEdge(failed = []) {
    let lastErr = null;
    for (const edge of this._edges) {
      if (this._closing) break;
      try {
        // Moving (or joining afresh) after an admission: the resume token
        // of our last `joined` proves to the new edge that we are the
        // participant already admitted, so a guest who may only ask to
        // join is not put in the lobby again (docs/signaling.md).
        const joinData = { ticket: edge.ticket, name: this.name };
        if (this._resumeToken) joinData.resumeToken = this._resumeToken;
        await this._connect(edge, joinData);
        return;
      } catch (err) {
        lastErr = err;
        this._log('warn', 'edge failed', edge.edgeId, err.code, err.message);
        if (err.code && !NEXT_EDGE_CODES.has(err.code)) throw err;
        if (edge.edgeId && !failed.includes(edge.edgeId)) failed.push(edge.edgeId);
      }
    }
    throw lastErr || new MeridianError('no media edge could be reached', { code: 'network' });
  }

  /**
   * Opens the signaling socket to edge and sends join; resolves on `joined`
   * or `lobby`, rejects on `error`/close before that.
   */
  _connect(edge, joinData, timeout = CONNECT_TIMEOUT) {
    return new Promise((resolve, reject) => {
      let settled = false;
      let ws;
      try {
        ws = new WebSocket(edge.signalingUrl);
      } catch (err) {
        reject(new MeridianError(`bad signaling URL ${edge.signalingUrl}`, { code: 'network', cause: err }));
        return;
      }
      const timer = setTimeout(() => fail(new MeridianError('timed out connecting to the media edge', { code: 'network' })), timeout);
      const fail = (err) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
        try { ws.close(); } catch { /* ignore */ }
        reject(err);
      };
      ws.onopen = () => ws.send(JSON.stringify({ type: 'join', data: joinData }));
      ws.onerror = () => { /* onclose follows */ };
      // (An `error` frame before the close has already failed with its code.)
      ws.onclose = () => fail(new MeridianError('the media edge closed the connection', { code: 'network' }));
      ws.onmessage = (ev) => {
        let msg;
        try { msg = JSON.parse(ev.data); } catch { return; }
        if (msg.type === 'error') {
          const d = msg.data || {};
          fail(new MeridianError(d.message || d.code || 'join refused', { code: d.code || 'error' }));
          return;
        }
        if (msg.type !== 'joined' && msg.type !== 'lobby' && msg.type !== 'removed') return;
        if (this._closing && this.state === 'left') {
          // leave() was called while we were (re)connecting.
          if (msg.type !== 'removed') ws.send(JSON.stringify({ type: 'leave' }));
          fail(new MeridianError('left', { code: 'left' }));
          return;
        }
        settled = true;
        clearTimeout(timer);
        this._attach(ws, edge);
        this._dispatch(msg);
        if (msg.type === 'removed') reject(new MeridianError(`removed: ${(msg.data || {}).reason || ''}`, { code: 'removed' }));
        else resolve();
      };
    });
  }

  _attach(ws, edge) {
    // Make before break: a socket to the edge we are moving away from is
    // still open (it asked us to reconnect, or its media failed): leave it,
    // saying we moved, so the room is not told we left while the new edge's
    // cascade legs are still coming up.
    const prev = this._ws;
    if (prev && prev !== ws) this._retireSocket(prev, 'moved');
    this._ws = ws;
    this._edge = edge;
    this._lastError = null;
    this._pingOwedSince = 0;
    ws.onmessage = (ev) => {
      this._pingOwedSince = 0;
      let msg;
      try { msg = JSON.parse(ev.data); } catch { return; }
      this._dispatch(msg);
    };
    ws.onclose = (ev) => {
      if (this._ws !== ws) return;
      this._ws = null;
      this._onEdgeLost('socket-closed', `socket closed (${ev.code}${ev.reason ? ' ' + ev.reason : ''})`);
    };
    ws.onerror = () => {};
    clearInterval(this._pingTimer);
    this._pingTimer = setInterval(() => this._pingTick(), PING_INTERVAL);
  }

  /**
   * Pings the edge, and counts it as lost when nothing at all came back for
   * EDGE_SILENT_AFTER since the first unanswered ping. Measured from a ping
   * actually sent, so a timer the browser throttles (a hidden tab) cannot
   * make a healthy edge look silent.
   */
  _pingTick() {
    const now = Date.now();
    // In the lobby too: a participant waiting on a stalled edge would
    // otherwise wait for ever (moderators on any edge answer a request).
    if (this._pingOwedSince && now - this._pingOwedSince > EDGE_SILENT_AFTER && (this.state === 'joined' || this.state === 'lobby')) {
      this._onEdgeLost('edge-silent', `no answer from the edge for ${((now - this._pingOwedSince) / 1000).toFixed(1)} s`, { keepSocket: true });
      return;
    }
    if (this._send('ping') && !this._pingOwedSince) this._pingOwedSince = now;
  }

  /** Detaches a socket we no longer use, sending `leave` with this reason first (none: no leave). */
  _retireSocket(ws, leaveReason) {
    ws.onmessage = ws.onclose = ws.onerror = null;
    if (leaveReason && ws.readyState === WebSocket.OPEN) {
      try { ws.send(JSON.stringify({ type: 'leave', data: { reason: leaveReason } })); } catch { /* closing */ }
    }
    // Give the `leave` frame a moment to flush before closing.
    setTimeout(() => { try { ws.close(1000, 'moved'); } catch { /* ignore */ } }, 50);
  }

  _send(type, data) {
    const ws = this._ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return false;
    ws.send(JSON.stringify(data === undefined ? { type } : { type, data }));
    return true;
  }

  // --------------------------------------------------------------- dispatch

  _dispatch(msg) {
    const d = msg.data || {};
    // Our own id connected elsewhere too (another tab or device, on
    // another edge): its presence and tracks are not somebody else's, and
    // shown they would take our own place; the edges settle which stays.
    if (ABOUT_A_PARTICIPANT.has(msg.type) && d.participantId === this.participantId) return;
    switch (msg.type) {
      case 'joined': this._onJoined(d); break;
      case 'lobby':
        this.state = 'lobby';
        this._emit('lobby', {});
        break;
      case 'offer': if (d.target === 'subscriber') this._onSubscriberOffer(d.sdp); break;
      case 'answer': if (d.target === 'publisher') this._onPublisherAnswer(d.sdp); break;
      case 'candidate': this._onRemoteCandidate(d.target, d.candidate); break;
      case 'participant-joined': {
        // Someone we kept across a move: no joined event (we never said left).
        const kept = this._clearGone(d.participantId);
        const p = this._upsertParticipant(d, kept);
        this._lobby.delete(d.participantId);
        if (!kept) this._emit('participant-joined', { participantId: p.participantId, name: p.name, moderator: p.moderator });
        break;
      }
      case 'participant-left': {
        this._clearGone(d.participantId);
        const p = this._participants.get(d.participantId);
        if (p) {
          for (const r of [...this._remote.values()]) if (r.participantId === d.participantId) this._removeRemote(r.trackId);
          this._participants.delete(d.participantId);
        }
        this._emit('participant-left', { participantId: d.participantId, reason: d.reason || 'left' });
        break;
      }
      case 'track-published': {
        this._clearGone(d.participantId);
        const p = this._participants.get(d.participantId) || this._upsertParticipant({ participantId: d.participantId });
        p.tracks.set(d.trackId, { ...d });
        const r = this._remote.get(d.trackId);
        if (r && r.source !== d.source) r.source = d.source;
        this._emit('track-published', { ...d });
        break;
      }
      case 'track-unpublished': {
        this._participants.get(d.participantId)?.tracks.delete(d.trackId);
        this._removeRemote(d.trackId);
        this._emit('track-unpublished', { ...d });
        break;
      }
      case 'mute': this._onMute(d); break;
      case 'active-speaker': this._emit('active-speaker', { participantIds: d.participantIds || [] }); break;
      case 'egress-state': this._setEgress(d); break;
      case 'connection-quality': this._emit('connection-quality', { participantId: d.participantId, score: d.score }); break;
      case 'lobby-request':
        this._lobby.set(d.participantId, { participantId: d.participantId, name: d.name || d.participantId });
        this._emit('lobby-request', { participantId: d.participantId, name: d.name || d.participantId });
        break;
      case 'lobby-withdrawn':
        // Admitted or denied elsewhere, gone, or unreachable: nothing to decide.
        if (this._lobby.delete(d.participantId)) this._emit('lobby-withdrawn', { participantId: d.participantId });
        break;
      case 'removed':
        this._closing = true;
        this._emit('removed', { reason: d.reason || 'removed' });
        this._teardown(d.reason || 'removed');
        break;
      case 'error': {
        const fatal = FATAL_CODES.has(d.code) && this.state !== 'joined';
        this._lastError = new MeridianError(d.message || d.code, { code: d.code });
        this._lastErrorAt = Date.now();
        this._log('warn', 'edge error', d.code, d.message);
        this._emit('error', { code: d.code, message: d.message || d.code, fatal });
        break;
      }
      case 'reconnect':
        // The edge is draining: move now, while it still carries our media.
        this._log('info', 'edge asks us to reconnect', d);
        this._onEdgeLost('edge-draining', d.reason || 'reconnect requested', { keepSocket: true, deadline: d.deadline });
        break;
      case 'pong': break;
      default: this._log('debug', 'ignored message', msg.type);
    }
  }

  /** Ends the settle period of a participant kept across a move; true if there was one. */
  _clearGone(id) {
    const timer = this._gone.get(id);
    if (timer === undefined) return false;
    clearTimeout(timer);
    this._gone.delete(id);
    return true;
  }

  _clearAllGone() {
    for (const timer of this._gone.values()) clearTimeout(timer);
    this._gone.clear();
  }

  /** A participant missing since a move did not reappear: it has left. */
  _goneExpired(id) {
    this._gone.delete(id);
    if (!this._participants.has(id)) return;
    for (const r of [...this._remote.values()]) if (r.participantId === id) this._removeRemote(r.trackId);
    this._participants.delete(id);
    this._emit('participant-left', { participantId: id, reason: 'left' });
  }

  _upsertParticipant(d, replaceTracks = false) {
    let p = this._participants.get(d.participantId);
    if (!p) {
      p = { participantId: d.participantId, name: d.name || d.participantId, moderator: !!d.moderator, tracks: new Map(), stream: null };
      this._participants.set(d.participantId, p);
    } else {
      if (d.name) p.name = d.name;
      if (d.moderator !== undefined) p.moderator = !!d.moderator;
      if (replaceTracks) p.tracks = new Map();
    }
    for (const t of d.tracks || []) p.tracks.set(t.trackId, { ...t });
    return p;
  }

  _onJoined(d) {
    // After a resume or a move to another edge, the snapshot replaces what we
    // knew: participants still there are kept (no left/joined events).
    const resumed = this.state === 'reconnecting';
    // The old edge's PeerConnections (still up after a drain request) go
    // now, while room.state still says 'reconnecting'.
    if (resumed) this._closePeerConnections();
    this.state = 'joined';
    this.participantId = d.participantId || this.participantId;
    this.name = d.name || this.name;
    this.permissions = { publish: false, subscribe: false, moderate: false, ...(d.permissions || {}) };
    this._resumeToken = d.resumeToken || null;
    const servers = [...(this._edge?.iceServers || [])];
    for (const s of d.iceServers || []) {
      if (!servers.some((x) => JSON.stringify(x) === JSON.stringify(s))) servers.push(s);
    }
    this._iceServers = servers;
    if (!resumed) {
      this._participants.clear();
      this._clearAllGone();
    }
    const seen = new Set();
    const arrived = [];
    for (const p of d.participants || []) {
      if (p.participantId === this.participantId) continue;
      seen.add(p.participantId);
      this._clearGone(p.participantId);
      const known = this._participants.has(p.participantId);
      const q = this._upsertParticipant(p, resumed);
      if (resumed && !known) arrived.push(q);
    }
    if (resumed) {
      // Somebody may have left while we were away without us hearing it. On
      // the same edge (a resume) its snapshot is complete; on another edge,
      // give its cascade legs PEERS_SETTLE to bring the others in.
      const moved = !d.resumed;
      for (const id of [...this._participants.keys()]) {
        if (seen.has(id)) continue;
        if (moved) {
          if (!this._gone.has(id)) this._gone.set(id, setTimeout(() => this._goneExpired(id), PEERS_SETTLE));
        } else {
          this._participants.delete(id);
          this._emit('participant-left', { participantId: id, reason: 'left' });
        }
      }
    }
    this._newPeerConnections();
    this._emit('joined', { roomId: this.roomId, participantId: this.participantId, permissions: { ...this.permissions }, resumed });
    this._setEgress(d.egress || {});
    if (resumed) {
      for (const p of arrived) this._emit('participant-joined', { participantId: p.participantId, name: p.name, moderator: p.moderator });
      const rc = this._reconnect || {};
      this._reconnecting = false;
      this._reconnect = null;
      const info = { from: rc.from || null, to: this.edgeId, reason: rc.reason || '', resumed: !!d.resumed, took: rc.at ? Date.now() - rc.at : 0 };
      this._log('info', 'reconnected', info);
      this._emit('reconnected', info);
    }
    if (this.permissions.publish) {
      this.publish().catch((err) => this._emit('error', { code: 'publish-failed', message: err.message, fatal: false }));
    }
  }

  // The server says whether the meeting is recorded / streamed (in joined,
  // then on every change); an event only when something changed.
  _setEgress(d) {
    const recording = !!d.recording;
    const streaming = !!d.streaming;
    if (recording === this.recording && streaming === this.streaming) return;
    this.recording = recording;
    this.streaming = streaming;
    this._emit('egress-state', { recording, streaming });
  }

  // --------------------------------------------------------- PeerConnections

  _pcConfig() {
    return {
      iceServers: this._iceServers.map((s) => ({ urls: s.urls, username: s.username, credential: s.credential })),
      iceTransportPolicy: this.options.iceTransportPolicy === 'relay' ? 'relay' : 'all',
      bundlePolicy: 'max-bundle',
      rtcpMuxPolicy: 'require',
    };
  }

  _newPeerConnections() {
    this._closePeerConnections();
    this._pendingRemoteCands = { publisher: [], subscriber: [] };
    this._mids.clear();
    const sub = new RTCPeerConnection(this._pcConfig());
    this._sub = sub;
    this._heldLocalCands.subscriber = [];
    sub.onicecandidate = (e) => this._localCandidate(sub, 'subscriber', e.candidate);
    sub.ontrack = (e) => this._onTrack(sub, e);
    sub.onconnectionstatechange = () => this._onPcState(sub, 'subscriber');
    if (this.permissions.publish) {
      const pub = new RTCPeerConnection(this._pcConfig());
      this._pub = pub;
      this._heldLocalCands.publisher = [];
      pub.onicecandidate = (e) => this._localCandidate(pub, 'publisher', e.candidate);
      pub.onconnectionstatechange = () => this._onPcState(pub, 'publisher');
    }
  }

  _closePeerConnections() {
    if (this._pubAnswerWaiter) { this._pubAnswerWaiter.resolve(); this._pubAnswerWaiter = null; }
    for (const r of [...this._remote.values()]) this._removeRemote(r.trackId);
    for (const pc of [this._pub, this._sub]) {
      if (!pc) continue;
      clearTimeout(pc._meridianLostTimer);
      pc.onicecandidate = pc.ontrack = pc.onconnectionstatechange = null;
      try { pc.close(); } catch { /* ignore */ }
    }
    this._pub = this._sub = null;
    this._senders.clear();
  }

  _localCandidate(pc, target, cand) {
    const data = { target, candidate: cand ? cand.toJSON() : null };
    const held = this._heldLocalCands[target];
    if (pc !== (target === 'publisher' ? this._pub : this._sub)) return;
    // Until our offer/answer went out, the edge could not use a candidate.
    if (held) held.push(data);
    else this._send('candidate', data);
  }

  _releaseLocalCandidates(target) {
    const held = this._heldLocalCands[target];
    this._heldLocalCands[target] = null;
    for (const c of held || []) this._send('candidate', c);
  }

  async _onRemoteCandidate(target, cand) {
    const pc = target === 'publisher' ? this._pub : this._sub;
    if (!pc) return;
    if (!pc.remoteDescription) {
      this._pendingRemoteCands[target].push(cand);
      return;
    }
    await this._addCandidate(pc, cand);
  }

  async _addCandidate(pc, cand) {
    if (!cand || !cand.candidate) return; // end of candidates: nothing to do
    try {
      await pc.addIceCandidate(cand);
    } catch (err) {
      this._log('warn', 'addIceCandidate failed', err.message, cand);
    }
  }

  async _flushRemoteCandidates(pc, target) {
    const list = this._pendingRemoteCands[target];
    this._pendingRemoteCands[target] = [];
    for (const c of list) await this._addCandidate(pc, c);
  }

  _onPcState(pc, target) {
    if (pc !== this._pub && pc !== this._sub) return;
    const st = pc.connectionState;
    this._log('debug', `${target} connection`, st);
    if (st === 'failed') {
      clearTimeout(pc._meridianLostTimer);
      this._onEdgeLost('media-lost', `${target} media connection failed`);
    } else if (st === 'disconnected') {
      // ICE often recovers from a short "disconnected"; 3 s of it = lost.
      if (!pc._meridianLostTimer) {
        pc._meridianLostTimer = setTimeout(() => {
          pc._meridianLostTimer = null;
          if ((pc === this._pub || pc === this._sub) && (pc.connectionState === 'disconnected' || pc.connectionState === 'failed')) {
            this._onEdgeLost('media-lost', `${target} media connection disconnected for ${MEDIA_LOST_AFTER / 1000} s`);
          }
        }, MEDIA_LOST_AFTER);
      }
    } else {
      clearTimeout(pc._meridianLostTimer);
      pc._meridianLostTimer = null;
    }
  }

  // --------------------------------------------------------------- subscribe

  _onSubscriberOffer(sdp) {
    const sub = this._sub;
    this._subQueue = this._subQueue.then(async () => {
      if (!sub || sub !== this._sub) return;
      for (const m of parseMsids(sdp)) if (m.mid) this._mids.set(m.mid, m);
      try {
        await sub.setRemoteDescription({ type: 'offer', sdp });
        await this._flushRemoteCandidates(sub, 'subscriber');
        const answer = await sub.createAnswer();
        await sub.setLocalDescription(answer);
        if (sub !== this._sub) return;
        this._send('answer', { target: 'subscriber', sdp: sub.localDescription.sdp });
        this._releaseLocalCandidates('subscriber');
      } catch (err) {
        this._log('error', 'subscriber negotiation failed', err);
        this._emit('error', { code: 'negotiation-failed', message: `subscriber negotiation failed: ${err.message}`, fatal: false });
      }
    });
  }

  _onTrack(sub, e) {
    if (sub !== this._sub) return;
    const track = e.track;
    const mid = e.transceiver?.mid;
    const info = (mid && this._mids.get(mid)) || {};
    const participantId = e.streams[0]?.id || info.streamId || 'unknown';
    // Media of our own id's other connection (another tab or device on
    // another edge, until the edges settle which stays): not a remote
    // participant's; shown, it would take the place of our own camera.
    if (participantId === this.participantId) return;
    const trackId = info.trackId || track.id;
    const p = this._participants.get(participantId);
    const published = p?.tracks.get(trackId);
    const source = published?.source || (track.kind === 'audio' ? 'microphone' : 'camera');
    if (p) p.stream = e.streams[0] || p.stream;
    const old = this._remote.get(trackId);
    if (old && old.track === track) return;
    if (old) this._removeRemote(trackId);
    const r = { participantId, trackId, track, stream: e.streams[0] || new MediaStream([track]), kind: track.kind, source };
    this._remote.set(trackId, r);
    // Unified Plan: a transceiver going inactive removes its track from the stream.
    const onRemove = (ev) => {
      if (ev.track === track && this._remote.get(trackId)?.track === track) this._removeRemote(trackId);
    };
    r.stream.addEventListener('removetrack', onRemove);
    r.cleanup = () => r.stream.removeEventListener('removetrack', onRemove);
    this._emit('track-added', { participantId, trackId, track, stream: r.stream, kind: r.kind, source });
  }

  _removeRemote(trackId) {
    const r = this._remote.get(trackId);
    if (!r) return;
    this._remote.delete(trackId);
    r.cleanup?.();
    this._emit('track-removed', { participantId: r.participantId, trackId, track: r.track, stream: r.stream, kind: r.kind, source: r.source });
  }

  /** Remote tracks currently received: [{participantId, trackId, track, stream, kind, source}]. */
  remoteTracks() {
    return [...this._remote.values()].map(({ cleanup, ...r }) => r);
  }

  // ----------------------------------------------------------------- publish

  async _acquireLocalMedia(attempt = this._attempt) {
    const { audio, video } = this.options;
    if (audio === false && video === false) return null;
    // The join that asked failed, another join started, or we left while
    // the devices were starting: nobody will publish or stop this stream.
    const stale = () => attempt !== this._attempt || this.state === 'left';
    const want = {
      audio: audio === false ? false : (audio === true ? { echoCancellation: true, noiseSuppression: true } : audio),
      video: video === false ? false : (video === true ? { width: { ideal: 1280 }, height: { ideal: 720 }, frameRate: { ideal: 30 } } : video),
    };
    let stream = null;
    try {
      stream = await navigator.mediaDevices.getUserMedia(want);
    } catch (err) {
      // Try with fewer devices before giving up (no camera, camera busy, …).
      this._log('warn', 'getUserMedia failed', err.name, err.message);
      for (const fallback of [{ audio: want.audio, video: false }, { audio: false, video: want.video }]) {
        if (!fallback.audio && !fallback.video) continue;
        try { stream = await navigator.mediaDevices.getUserMedia(fallback); break; } catch { /* next */ }
      }
      if (!stream && stale()) return null;
      if (!stream) {
        this._emit('error', { code: 'media-denied', message: `camera/microphone unavailable: ${err.message || err.name}`, fatal: false });
        this.micEnabled = this.cameraEnabled = false;
        return null;
      }
    }
    if (stale()) {
      for (const t of stream.getTracks()) t.stop();
      return null;
    }
    this.localStream = stream;
    this.micEnabled = stream.getAudioTracks().length > 0;
    this.cameraEnabled = stream.getVideoTracks().length > 0;
    for (const t of stream.getTracks()) {
      this._emit('local-track', { track: t, kind: t.kind, source: t.kind === 'audio' ? 'microphone' : 'camera', stream });
    }
    return stream;
  }

  /** Publishes the local tracks (camera+mic as stream "camera", the screen as "screen"). */
  publish() {
    if (!this.permissions.publish) return Promise.reject(new MeridianError('this token cannot publish', { code: 'forbidden' }));
    if (this._mediaPromise === null) this._mediaPromise = this._acquireLocalMedia();
    return this._mediaPromise.then(() => this._syncSenders());
  }

  /** Makes the publisher's transceivers match the local tracks and renegotiates if needed. */
  _syncSenders() {
    const pub = this._pub;
    if (!pub || this.state !== 'joined') return Promise.resolve();
    const want = [];
    const cam = this.localStream;
    if (cam) {
      const a = cam.getAudioTracks()[0];
      const v = cam.getVideoTracks()[0];
      if (a) want.push({ source: 'microphone', track: a, stream: cam });
      if (v) want.push({ source: 'camera', track: v, stream: cam });
    }
    if (this.screenStream) {
      const v = this.screenStream.getVideoTracks()[0];
      const a = this.screenStream.getAudioTracks()[0];
      if (v) want.push({ source: 'screen', track: v, stream: this.screenStream });
      if (a) want.push({ source: 'screen_audio', track: a, stream: this.screenStream });
    }
    let changed = false;
    for (const w of want) {
      if (this._senders.has(w.source)) continue;
      const init = { direction: 'sendonly', streams: [w.stream] };
      if (w.source === 'camera' && this.options.simulcast) {
        init.sendEncodings = [
          { rid: 'q', scaleResolutionDownBy: 4, maxBitrate: 150_000 },
          { rid: 'h', scaleResolutionDownBy: 2, maxBitrate: 500_000 },
          { rid: 'f', maxBitrate: 1_500_000 },
        ];
      }
      const tr = pub.addTransceiver(w.track, init);
      this._senders.set(w.source, { sender: tr.sender, transceiver: tr, trackId: w.track.id, kind: w.track.kind, streamLabel: w.source.startsWith('screen') ? 'screen' : 'camera', streamId: w.stream.id });
      changed = true;
    }
    for (const [source, s] of [...this._senders]) {
      if (want.some((w) => w.source === source)) continue;
      if (source === 'camera' && this.localStream) continue; // camera off keeps its sender (replaceTrack(null))
      try { pub.removeTrack(s.sender); } catch { /* closed */ }
      this._senders.delete(source);
      changed = true;
    }
    if (!changed) return this._pubQueue;
    return this._negotiatePublisher();
  }

  _negotiatePublisher() {
    const pub = this._pub;
    this._pubQueue = this._pubQueue.then(() => new Promise((resolve, reject) => {
      if (!pub || pub !== this._pub) { resolve(); return; }
      this._pubAnswerWaiter = { resolve, reject, pub };
      (async () => {
        const offer = await pub.createOffer();
        await pub.setLocalDescription(offer);
        // The edge reads each track's source from its MediaStream id: rename
        // our local stream ids to "camera" / "screen" in what we send.
        let sdp = pub.localDescription.sdp;
        for (const s of this._senders.values()) {
          sdp = sdp.split(`msid:${s.streamId} `).join(`msid:${s.streamLabel} `);
        }
        if (!this._send('offer', { target: 'publisher', sdp })) throw new MeridianError('signaling is not connected', { code: 'network' });
        this._releaseLocalCandidates('publisher');
      })().catch((err) => { this._pubAnswerWaiter = null; reject(err); });
    })).catch((err) => {
      this._log('error', 'publisher negotiation failed', err);
      this._emit('error', { code: 'negotiation-failed', message: `publishing failed: ${err.message}`, fatal: false });
    });
    return this._pubQueue;
  }

  async _onPublisherAnswer(sdp) {
    const w = this._pubAnswerWaiter;
    this._pubAnswerWaiter = null;
    const pub = this._pub;
    if (!pub || !w || w.pub !== pub) return;
    try {
      await pub.setRemoteDescription({ type: 'answer', sdp });
      await this._flushRemoteCandidates(pub, 'publisher');
      // The edge starts every track unmuted: report the muted ones.
      const reportMuted = () => {
        if (pub !== this._pub) return;
        for (const s of this._senders.values()) if (!this._senderLive(s)) this._send('mute', { trackId: s.trackId, kind: s.kind, muted: true });
      };
      reportMuted();
      setTimeout(reportMuted, 2000); // again once the edge has seen the tracks' first packets
      w.resolve();
    } catch (err) {
      w.reject(err);
    }
  }

  _senderLive(s) {
    const t = s.sender.track;
    return !!t && t.enabled && t.readyState === 'live';
  }

  _reportMute(source, muted) {
    const s = this._senders.get(source);
    if (s) this._send('mute', { trackId: s.trackId, kind: s.kind, muted });
  }

  /** Mutes (false) or unmutes (true) the microphone. */
  async setMicEnabled(on) {
    on = !!on;
    const track = this.localStream?.getAudioTracks()[0];
    if (!track) {
      if (on) throw new MeridianError('no microphone', { code: 'media-denied' });
      return;
    }
    track.enabled = on;
    this.micEnabled = on;
    this._reportMute('microphone', !on);
    this._emit('mute', { participantId: this.participantId, kind: 'audio', trackId: this._senders.get('microphone')?.trackId, muted: !on, self: true });
  }

  /** Turns the camera off (the device is released) or back on. */
  async setCameraEnabled(on) {
    on = !!on;
    if (on === this.cameraEnabled) return;
    const s = this._senders.get('camera');
    if (!on) {
      const track = this.localStream?.getVideoTracks()[0];
      this.cameraEnabled = false;
      if (s) await s.sender.replaceTrack(null);
      if (track) { track.stop(); this.localStream.removeTrack(track); }
      this._reportMute('camera', true);
    } else {
      const video = this.options.video === false || this.options.video === true
        ? { width: { ideal: 1280 }, height: { ideal: 720 }, frameRate: { ideal: 30 } } : this.options.video;
      const ms = await navigator.mediaDevices.getUserMedia({ video });
      const track = ms.getVideoTracks()[0];
      if (!this.localStream) this.localStream = new MediaStream();
      this.localStream.addTrack(track);
      this.cameraEnabled = true;
      this._emit('local-track', { track, kind: 'video', source: 'camera', stream: this.localStream });
      if (s) {
        await s.sender.replaceTrack(track);
        this._reportMute('camera', false);
      } else if (this.state === 'joined' && this.permissions.publish) {
        await this._syncSenders();
      }
    }
    this._emit('mute', { participantId: this.participantId, kind: 'video', trackId: s?.trackId, muted: !on, self: true });
  }

  /** Shares a screen, window or tab (getDisplayMedia); resolves once published. */
  async startScreenShare({ audio = false } = {}) {
    if (this.screenStream) return;
    if (!navigator.mediaDevices?.getDisplayMedia) throw new MeridianError('screen sharing is not supported by this browser', { code: 'unsupported' });
    const stream = await navigator.mediaDevices.getDisplayMedia({ video: { frameRate: { ideal: 15 } }, audio });
    this.screenStream = stream;
    this.screenSharing = true;
    const v = stream.getVideoTracks()[0];
    if (v) v.addEventListener('ended', () => this.stopScreenShare());
    for (const t of stream.getTracks()) {
      this._emit('local-track', { track: t, kind: t.kind, source: t.kind === 'audio' ? 'screen_audio' : 'screen', stream });
    }
    this._emit('screen-share', { active: true, stream });
    if (this.state === 'joined' && this.permissions.publish) await this._syncSenders();
  }

  /** Stops the screen share and unpublishes it. */
  async stopScreenShare() {
    const stream = this.screenStream;
    if (!stream) return;
    this.screenStream = null;
    this.screenSharing = false;
    for (const t of stream.getTracks()) t.stop();
    this._emit('screen-share', { active: false, stream: null });
    if (this.state === 'joined' && this._pub) await this._syncSenders();
  }

  _onMute(d) {
    if (d.participantId === this.participantId || !d.participantId) {
      // A moderator muted us: mute locally too (the edge already stopped forwarding).
      if (d.muted && (d.kind === 'audio' || d.kind === 'microphone')) this.setMicEnabled(false);
      else if (d.muted && (d.kind === 'video' || d.kind === 'camera')) this.setCameraEnabled(false).catch(() => {});
      this._emit('mute', { ...d, participantId: this.participantId, self: true, byModerator: true });
      return;
    }
    const p = this._participants.get(d.participantId);
    if (p) {
      for (const t of p.tracks.values()) {
        if (d.trackId ? t.trackId === d.trackId : t.kind === d.kind) t.muted = !!d.muted;
      }
    }
    this._emit('mute', { ...d, self: false });
  }

  // -------------------------------------------------------------- moderation

  muteParticipant(participantId, kind = 'audio') { return this._send('mute-participant', { participantId, kind }); }
  removeParticipant(participantId) { return this._send('remove-participant', { participantId }); }
  admit(participantId) { this._lobby.delete(participantId); return this._send('lobby-decision', { participantId, admit: true }); }
  deny(participantId) { this._lobby.delete(participantId); return this._send('lobby-decision', { participantId, admit: false }); }
  setLayer(trackId, layer = 'auto') { return this._send('set-layer', { trackId, layer }); }

  lobbyRequests() { return [...this._lobby.values()]; }

  /** Everyone in the room, the local participant first. */
  participants() {
    const out = [];
    if (this.participantId) {
      const tracks = [...this._senders.values()].map((s) => ({ trackId: s.trackId, participantId: this.participantId, kind: s.kind, source: [...this._senders].find(([, v]) => v === s)[0], muted: !this._senderLive(s) }));
      out.push({ participantId: this.participantId, name: this.name, moderator: this.permissions.moderate, tracks, stream: this.localStream, isLocal: true });
    }
    for (const p of this._participants.values()) {
      out.push({ participantId: p.participantId, name: p.name, moderator: p.moderator, tracks: [...p.tracks.values()].map((t) => ({ ...t })), stream: p.stream, isLocal: false });
    }
    return out;
  }

  /** RTCStatsReports of both PeerConnections (debugging, quality displays). */
  async getStats() {
    return {
      publisher: this._pub ? await this._pub.getStats() : null,
      subscriber: this._sub ? await this._sub.getStats() : null,
    };
  }

  // ---------------------------------------------------------- reconnect/leave

  /**
   * The edge is lost (or asks us to move). reason: 'socket-closed',
   * 'media-lost', 'edge-silent' or 'edge-draining'. keepSocket: the socket
   * may still work (draining, media-only loss, silence that may end): keep
   * it, and its media, until another edge has admitted us — then `leave` it
   * (make before break).
   */
  _onEdgeLost(reason, detail, { keepSocket = false, deadline } = {}) {
    if (this._closing || this.state === 'left' || this._reconnecting) return;
    if (this.state !== 'joined' && this.state !== 'lobby') return;
    this._log('warn', 'connection lost', reason, detail);
    if (reason === 'socket-closed') {
      // An error right before the edge closed the socket explains the close.
      const err = Date.now() - (this._lastErrorAt || 0) < 3000 ? this._lastError : null;
      if (err && FATAL_CODES.has(err.code) && !NEXT_EDGE_CODES.has(err.code)) {
        this._emit('error', { code: err.code, message: err.message, fatal: true });
        this._teardown('error');
        return;
      }
    }
    const from = this.edgeId;
    const wasLobby = this.state === 'lobby';
    // Resume first (same edge, same session) unless there is nothing to
    // resume, the edge is draining or silent (a resume would wait on it),
    // or its media failed twice in a minute.
    let resume = !wasLobby && !!this._resumeToken && reason !== 'edge-draining' && reason !== 'edge-silent';
    if (reason === 'media-lost') {
      const again = this._mediaLost && this._mediaLost.edgeId === from && Date.now() - this._mediaLost.at < MEDIA_LOST_AGAIN;
      this._mediaLost = { edgeId: from, at: Date.now() };
      if (again) {
        resume = false;
        keepSocket = !!this._ws; // its signaling still works: make before break
      }
    }
    this._reconnecting = true;
    this._reconnect = { from, reason, at: Date.now() };
    this.state = 'reconnecting';
    clearInterval(this._pingTimer);
    this._pingTimer = null;
    if (!keepSocket) {
      if (this._ws) {
        const ws = this._ws;
        this._ws = null;
        // No `leave`: the edge keeps us for 30 s, so a resume keeps the session.
        ws.onclose = ws.onmessage = ws.onerror = null;
        try { ws.close(); } catch { /* ignore */ }
      }
      this._closePeerConnections();
    }
    const ev = { from, reason };
    if (deadline) ev.deadline = deadline;
    this._emit('reconnecting', ev);
    this._reconnectLoop({ from, resume });
  }

  /** Kept for callers of the old name. */
  _onSignalLost(why) { this._onEdgeLost('socket-closed', why); }

  /**
   * Gets us back into the room after _onEdgeLost, retrying with backoff
   * (0.2 s → 5 s) until it works, a fatal answer arrives or leave() is called.
   * See the header comment ("Failover") for the order.
   */
  async _reconnectLoop({ from, resume }) {
    const lostAt = Date.now();
    const avoid = [];
    // Avoid the lost edge, unless a resume refused by it proves it is up.
    let avoidLost = !!from;
    let delay = BACKOFF_MIN;
    let noEdge = 0;
    const pause = async () => {
      await sleep(delay);
      delay = Math.min(delay * 2, BACKOFF_MAX);
    };
    while (!this._closing) {
      if (resume && this._resumeToken && this._edge && Date.now() - lostAt < RESUME_WINDOW) {
        try {
          await this._connect(this._edge, { resumeToken: this._resumeToken }, RESUME_TIMEOUT);
          this._reconnectSettled();
          return;
        } catch (err) {
          if (this._closing) return;
          this._log('warn', 'resume failed', err.code, err.message);
          if (err.code !== 'network') {
            // Refused (grace over, unknown token): the edge is up; join afresh,
            // that edge included.
            resume = false;
            avoidLost = false;
          }
        }
      }
      const ask = avoidLost && !avoid.includes(from) ? [from, ...avoid] : avoid;
      let resp;
      try {
        resp = await this._requestJoin(ask);
        this._adoptJoinAnswer(resp);
        noEdge = 0;
      } catch (err) {
        if (this._closing) return;
        this._log('warn', 'join API failed while reconnecting', err.status, err.message);
        if (err.status >= 400 && err.status < 500 && err.status !== 408 && err.status !== 429) {
          // The token expired, the room was deactivated, …: nothing to retry.
          this._emit('error', { code: err.code || 'join-failed', message: err.message, fatal: true });
          this._teardown('error');
          return;
        }
        if (err.status) {
          // The API answers, so our network works: the lost edge is the problem.
          resume = false;
          if (err.status === 503 && ask.length && ++noEdge >= 2) {
            // No edge left once those are avoided: try the others again, then
            // the lost one too (it may have come back, e.g. restarted).
            if (avoid.length) avoid.length = 0;
            else avoidLost = false;
            noEdge = 0;
          }
        }
        await pause();
        continue;
      }
      resume = false; // the API answered: our own network is fine
      try {
        await this._connectAnyEdge(avoid);
        this._reconnectSettled();
        return;
      } catch (err) {
        if (this._closing) return;
        this._log('warn', 'reconnect attempt failed', err.code, err.message);
        if (err.code === 'removed') return; // handled by the `removed` event
        if (err.code && !NEXT_EDGE_CODES.has(err.code) && err.code !== 'ticket-expired') {
          this._emit('error', { code: err.code, message: err.message, fatal: true });
          this._teardown('error');
          return;
        }
        while (avoid.length > MAX_AVOID - 1) avoid.shift();
      }
      await pause();
    }
  }

  /** After the loop connected: a `lobby` answer ends the reconnection too. */
  _reconnectSettled() {
    if (this.state !== 'lobby' || !this._reconnecting) return;
    const rc = this._reconnect || {};
    this._reconnecting = false;
    this._reconnect = null;
    this._emit('reconnected', { from: rc.from || null, to: this.edgeId, reason: rc.reason || '', resumed: false, took: rc.at ? Date.now() - rc.at : 0 });
  }

  /** Leaves the meeting: tells the edge, closes the connections and stops the devices. */
  leave() {
    if (this.state === 'left') return;
    this._closing = true;
    this._send('leave');
    this._teardown('left');
  }

  _teardown(reason) {
    const was = this.state;
    this._closing = true;
    this._resumeToken = null; // a later join() asks as anyone would
    this._reconnecting = false;
    this._reconnect = null;
    this._clearAllGone();
    clearInterval(this._pingTimer);
    this._pingTimer = null;
    if (this._ws) {
      const ws = this._ws;
      this._ws = null;
      ws.onclose = ws.onmessage = null;
      // Give the `leave` frame a moment to flush before closing.
      setTimeout(() => { try { ws.close(1000, reason); } catch { /* ignore */ } }, 50);
    }
    this._closePeerConnections();
    for (const t of this.localStream?.getTracks() || []) t.stop();
    for (const t of this.screenStream?.getTracks() || []) t.stop();
    this.screenStream = null;
    this.screenSharing = false;
    this._setEgress({});
    this.state = 'left';
    if (was !== 'left' && was !== 'new' && was !== 'connecting') this._emit('left', { reason });
  }
}

/** Creates a Room and joins it. Resolves with the Room once joined (or in the lobby). */
export async function join(options) {
  const room = new Room(options);
  await room.join();
  return room;
}

export const version = VERSION;

const Meridian = { join, Room, MeridianError, version: VERSION };
export default Meridian;

if (typeof globalThis !== 'undefined' && !globalThis.Meridian) globalThis.Meridian = Meridian;
