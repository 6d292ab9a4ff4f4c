'use strict';
// Small helpers shared by the test files: raw HTTP calls, token minting the way
// VideoSDK's docs do it, an SDK client pointed at Meridian, and common assertions.

const assert = require('node:assert/strict');
const jwt = require('jsonwebtoken');
const { VideoSDK } = require('@videosdk.live/server-sdk');

const ROOM_ID_RE = /^[a-z0-9]{4}-[a-z0-9]{4}-[a-z0-9]{4}$/;
const DOC_ID_RE = /^[0-9a-f]{24}$/;
const REST_TIME_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

/** The exact snippet from VideoSDK's "generate a token" docs. */
function docsToken(apiKey, secret) {
  const API_KEY = apiKey;
  const SECRET = secret;
  const options = { expiresIn: '120m', algorithm: 'HS256' };
  const payload = {
    apikey: API_KEY,
    permissions: [`allow_join`], // `ask_join` || `allow_mod`
    version: 2, // OPTIONAL
    roles: ['crawler'], // `rtc` || `crawler`
  };
  return jwt.sign(payload, SECRET, options);
}

/** Legacy example-app style: {apikey, permissions, iat}; no version, roles or exp. */
function legacyToken(apiKey, secret) {
  return jwt.sign({ apikey: apiKey, permissions: ['allow_join', 'allow_mod'] }, secret, { algorithm: 'HS256' });
}

function b64url(obj) {
  return Buffer.from(JSON.stringify(obj)).toString('base64url');
}

/** Unsigned JWT (`alg: none`). */
function noneToken(claims) {
  return `${b64url({ alg: 'none', typ: 'JWT' })}.${b64url(claims)}.`;
}

/**
 * Plain fetch against Meridian. `token` goes into Authorization as-is (no scheme),
 * like VideoSDK clients send it. Returns { status, headers, text, json }.
 */
async function call(base, method, path, { token, headers = {}, body, rawBody } = {}) {
  const h = { accept: 'application/json', ...headers };
  if (token !== undefined) h.authorization = token;
  let payload;
  if (rawBody !== undefined) {
    payload = rawBody;
    if (!Object.keys(h).some((k) => k.toLowerCase() === 'content-type')) h['content-type'] = 'application/json';
  } else if (body !== undefined) {
    payload = JSON.stringify(body);
    h['content-type'] = 'application/json';
  }
  const res = await fetch(base + path, { method, headers: h, body: payload });
  const text = await res.text();
  let json;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, text, json };
}

/** Assert an error response: the status, a JSON content type and a non-empty `message`. */
function assertJsonError(res, status, messagePattern) {
  assert.equal(res.status, status, `expected HTTP ${status}, got ${res.status}: ${res.text}`);
  assert.match(res.headers.get('content-type') || '', /application\/json/, `error content-type for HTTP ${status}`);
  assert.ok(res.json && typeof res.json === 'object', `error body is a JSON object: ${res.text}`);
  assert.equal(typeof res.json.message, 'string', `error body has a string "message": ${res.text}`);
  assert.ok(res.json.message.length > 0, 'error "message" is not empty');
  if (messagePattern) assert.match(res.json.message, messagePattern);
}

/**
 * A fetch that records every exchange the SDK makes, so tests can check the real
 * HTTP request (method, path, query) and the raw response body (e.g. pageInfo).
 */
function recordingFetch() {
  const log = [];
  async function recFetch(url, init = {}) {
    const res = await fetch(url, init);
    const text = await res.clone().text();
    let json;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    const u = new URL(url);
    log.push({
      method: init.method || 'GET',
      path: u.pathname,
      query: Object.fromEntries(u.searchParams),
      requestHeaders: init.headers || {},
      requestBody: typeof init.body === 'string' ? JSON.parse(init.body) : undefined,
      status: res.status,
      json,
      text,
    });
    return res;
  }
  recFetch.log = log;
  recFetch.last = () => log[log.length - 1];
  return recFetch;
}

/** The official server SDK, pointed at Meridian, with no retries (keeps failures fast). */
function sdkClient(m, extra = {}) {
  const rec = recordingFetch();
  const client = new VideoSDK({
    apiKey: m.apiKey,
    secret: m.secret,
    apiEndpoint: m.url,
    maxRetries: 0,
    timeoutMs: 10000,
    fetch: rec,
    ...extra,
  });
  return { client, rec };
}

/** Await a promise that must reject; return the error. */
async function rejection(promise) {
  try {
    await promise;
  } catch (e) {
    return e;
  }
  assert.fail('expected the call to fail, but it succeeded');
}

module.exports = {
  ROOM_ID_RE,
  DOC_ID_RE,
  REST_TIME_RE,
  docsToken,
  legacyToken,
  noneToken,
  call,
  assertJsonError,
  recordingFetch,
  sdkClient,
  rejection,
};
