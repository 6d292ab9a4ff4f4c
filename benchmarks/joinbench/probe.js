// Injected into every document before the page's own scripts
// (Page.addScriptToEvaluateOnNewDocument). It records, once each, when the
// steps of a join happen, by watching the browser APIs the SDK calls —
// fetch, WebSocket, getUserMedia, RTCPeerConnection — and the <video>
// elements the meeting page creates. Nothing in the SDK or the page changes;
// the wrappers only add listeners. Times are ms since this document's
// navigation started (performance.now()).
(() => {
  const marks = {};
  const mark = (name, t) => { if (!(name in marks)) marks[name] = t ?? performance.now(); };
  window.__joinbench = { marks };

  const origFetch = window.fetch;
  window.fetch = function (input, init) {
    const url = String(input?.url ?? input);
    const isJoin = /\/v2\/rooms\/[^/]+\/join$/.test(new URL(url, location.href).pathname);
    if (isJoin) mark('join-request');
    const p = origFetch.apply(this, arguments);
    if (isJoin) p.then(() => mark('join-answer'), () => {});
    return p;
  };

  const md = navigator.mediaDevices;
  if (md?.getUserMedia) {
    const gum = md.getUserMedia.bind(md);
    md.getUserMedia = (c) => { mark('gum-start'); return gum(c).then((s) => { mark('gum-end'); return s; }); };
  }

  const OrigWS = window.WebSocket;
  class ProbeWS extends OrigWS {
    constructor(...args) {
      super(...args);
      mark('ws-create');
      this.addEventListener('open', () => mark('ws-open'));
      this.addEventListener('message', (ev) => {
        let m;
        try { m = JSON.parse(ev.data); } catch { return; }
        const target = m?.data?.target;
        if (m.type === 'joined') mark('joined');
        else if (m.type === 'offer' && target === 'subscriber') {
          // The edge's first subscriber offer may carry no track (it opens
          // the transport at join); 'sub-offer' is the first one with one.
          mark('sub-offer-first');
          if (/\na=msid:/.test(m.data.sdp || '')) mark('sub-offer');
        }
        else if (m.type === 'answer' && target === 'publisher') mark('pub-answer');
        else if (m.type === 'track-published') mark('track-published');
      });
    }
    send(data) {
      try {
        const m = JSON.parse(data);
        const target = m?.data?.target;
        if (m.type === 'join') mark('join-sent');
        else if (m.type === 'offer' && target === 'publisher') mark('pub-offer');
        else if (m.type === 'answer' && target === 'subscriber') {
          // The edge has one offer outstanding at most: an answer sent after
          // the first offer with a track answers that offer.
          mark('sub-answer-first');
          if ('sub-offer' in marks) mark('sub-answer');
        }
      } catch { /* not JSON */ }
      return super.send(data);
    }
  }
  window.WebSocket = ProbeWS;

  // A PeerConnection's role: the one that creates offers publishes, the one
  // that gets offers subscribes (the SDK's two-PeerConnection model).
  const OrigPC = window.RTCPeerConnection;
  class ProbePC extends OrigPC {
    constructor(...args) {
      super(...args);
      let role = '';
      const pending = [];
      const at = (name) => {
        const t = performance.now();
        if (role) mark(`${role}-${name}`, t);
        else pending.push([name, t]);
      };
      this.__setRole = (r) => {
        if (role) return;
        role = r;
        for (const [n, t] of pending) mark(`${role}-${n}`, t);
      };
      this.addEventListener('iceconnectionstatechange', () => at(`ice-${this.iceConnectionState}`));
      this.addEventListener('connectionstatechange', () => at(`pc-${this.connectionState}`));
      this.addEventListener('track', (e) => at(`track-${e.track.kind}`));
      // DTLS state of the (bundled) transport, once it exists.
      const watchDtls = () => {
        const t = [...this.getTransceivers()].map((x) => x.receiver?.transport || x.sender?.transport).find(Boolean);
        if (!t || t.__probed) return;
        t.__probed = true;
        t.addEventListener('statechange', () => at(`dtls-${t.state}`));
        t.iceTransport?.addEventListener('selectedcandidatepairchange', () => at('ice-pair'));
      };
      this.addEventListener('signalingstatechange', watchDtls);
    }
    createOffer(...a) {
      this.__setRole('pub');
      this.__watchVideoOut();
      return super.createOffer(...a);
    }
    // When the camera's first frame was encoded and its first packet sent:
    // the publishing page's video pipeline (encoder start, pacer) between
    // its offer and the edge's first video packet. Polled, as getStats has
    // no event for it.
    __watchVideoOut() {
      if (this.__videoOut) return;
      this.__videoOut = true;
      const until = performance.now() + 10_000;
      const poll = async () => {
        let encoded = false;
        try {
          for (const s of (await this.getStats()).values()) {
            if (s.type !== 'outbound-rtp' || s.kind !== 'video') continue;
            if (s.framesEncoded > 0) {
              encoded = true;
              mark('pub-video-encoded');
            }
            if (s.packetsSent > 0) {
              mark('pub-video-sent');
              return;
            }
          }
        } catch { /* closed */ return; }
        if (performance.now() < until) setTimeout(poll, encoded ? 2 : 10);
      };
      poll();
    }
    setRemoteDescription(d, ...a) { if (d?.type === 'offer') this.__setRole('sub'); return super.setRemoteDescription(d, ...a); }
  }
  window.RTCPeerConnection = ProbePC;

  // The first frame of the first remote camera video: presented (rVFC
  // fires) and, from its metadata, when its last packet arrived.
  const watchVideo = (v) => {
    if (v.__probed || v.dataset.local || !v.requestVideoFrameCallback) return;
    v.__probed = true;
    v.addEventListener('loadeddata', () => mark('video-loadeddata'));
    v.requestVideoFrameCallback((now, meta) => {
      mark('frame-presented', now);
      if (meta.receiveTime) mark('frame-received', meta.receiveTime);
      mark('frame-size', meta.width * 10000 + meta.height);
    });
  };
  new MutationObserver((recs) => {
    for (const r of recs) for (const n of r.addedNodes) {
      if (n.nodeType !== 1) continue;
      if (n.tagName === 'VIDEO') watchVideo(n);
      else n.querySelectorAll?.('video').forEach(watchVideo);
    }
  }).observe(document, { childList: true, subtree: true });

  // The SDK's script executed: the page has window.Meridian.
  let sdk;
  Object.defineProperty(window, 'Meridian', {
    configurable: true,
    get() { return sdk; },
    set(v) { sdk = v; mark('sdk-ready'); },
  });
})();
