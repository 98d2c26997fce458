// net.js: the HTTP API client and the live event stream. The token travels only in the
// Authorization header (never in a URL); EventSource cannot send headers, so the stream is
// read with fetch() and a ReadableStream reader that parses Server-Sent Events frames.

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export class Api {
  constructor(token) {
    this.token = token;
    this.clockSkew = 0; // server clock minus ours, from the Date header (ms)
    this.onUnauthorized = null;
  }

  headers(extra) {
    return Object.assign({ Authorization: 'Bearer ' + this.token }, extra);
  }

  async call(method, path, body, signal) {
    let resp;
    try {
      resp = await fetch(path, {
        method,
        headers: this.headers(body !== undefined ? { 'Content-Type': 'application/json' } : {}),
        body: body !== undefined ? JSON.stringify(body) : undefined,
        cache: 'no-store',
        signal,
      });
    } catch (e) {
      if (e.name === 'AbortError') throw e;
      throw new ApiError(0, 'network', 'the server does not answer (' + e.message + ')');
    }
    const date = resp.headers.get('Date');
    if (date) {
      const skew = Date.parse(date) - Date.now();
      // the header has 1 s resolution: ignore what it cannot tell apart
      this.clockSkew = Math.abs(skew) > 2000 ? skew : 0;
    }
    const text = await resp.text();
    let json = null;
    try {
      json = text ? JSON.parse(text) : null;
    } catch {
      json = null;
    }
    if (!resp.ok) {
      const err = json && json.error ? json.error : { code: 'http_' + resp.status, message: text.slice(0, 200) };
      if (resp.status === 401 && this.onUnauthorized) this.onUnauthorized(err.message);
      throw new ApiError(resp.status, err.code, err.message);
    }
    return json;
  }

  get(path, signal) {
    return this.call('GET', path, undefined, signal);
  }

  post(path, body) {
    return this.call('POST', path, body === undefined ? undefined : body);
  }

  now() {
    return Date.now() + this.clockSkew;
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// EventStream: GET /v1/events, resumed with Last-Event-ID after every drop, with a
// backoff that starts short (a restart is usually over in a second) and grows to 15 s.
//   onEvent(entry)       each witness entry, in seq order
//   onGap({from, to})    the server no longer has these (the client must reload)
//   onState(state, info) 'connecting' | 'live' | 'reconnecting' | 'offline'
//   beforeConnect(lastSeq) -> seq to resume after (may reload and skip ahead)
export class EventStream {
  constructor(api, handlers) {
    this.api = api;
    this.h = handlers;
    this.lastSeq = null;
    this.stopped = true;
    this.ctrl = null;
    this.attempt = 0;
    this.silenceMs = 40000; // the server sends a keep-alive every 15 s
  }

  start(afterSeq) {
    this.lastSeq = afterSeq;
    this.stopped = false;
    this.loop();
  }

  stop() {
    this.stopped = true;
    if (this.ctrl) this.ctrl.abort();
  }

  async loop() {
    while (!this.stopped) {
      this.h.onState(this.attempt ? 'reconnecting' : 'connecting', { attempt: this.attempt });
      let reachedLive = false;
      try {
        if (this.attempt && this.h.beforeConnect) this.lastSeq = await this.h.beforeConnect(this.lastSeq);
        reachedLive = await this.once();
      } catch (e) {
        if (e instanceof ApiError && (e.status === 401 || e.status === 403)) {
          this.h.onState('offline', { reason: e.message });
          this.stopped = true;
          return;
        }
        this.lastError = e;
      }
      if (this.stopped) break;
      if (reachedLive) this.attempt = 0;
      this.attempt++;
      const base = Math.min(15000, 500 * 2 ** Math.min(this.attempt - 1, 5));
      const delay = Math.round(base * (0.8 + Math.random() * 0.4));
      this.h.onState('reconnecting', { attempt: this.attempt, delay, error: this.lastError && this.lastError.message });
      await sleep(delay);
    }
  }

  // One connection: returns true when it got as far as a live stream.
  async once() {
    this.ctrl = new AbortController();
    const extra = { Accept: 'text/event-stream' };
    if (this.lastSeq !== null && this.lastSeq !== undefined) extra['Last-Event-ID'] = String(this.lastSeq);
    let resp;
    try {
      resp = await fetch('/v1/events', { headers: this.api.headers(extra), cache: 'no-store', signal: this.ctrl.signal });
    } catch (e) {
      throw new ApiError(0, 'network', e.message);
    }
    if (!resp.ok) {
      let msg = 'HTTP ' + resp.status;
      try {
        msg = (await resp.json()).error.message;
      } catch { /* not JSON */ }
      throw new ApiError(resp.status, 'http', msg);
    }
    this.h.onState('live', {});
    const reader = resp.body.getReader();
    const dec = new TextDecoder();
    let buf = '';
    let timer = null;
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(() => this.ctrl.abort(), this.silenceMs);
    };
    arm();
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        arm();
        buf += dec.decode(value, { stream: true });
        // one pass over the chunk: slicing the buffer per frame would be quadratic
        let at = 0, cut;
        while ((cut = buf.indexOf('\n\n', at)) >= 0) {
          this.frame(buf.slice(at, cut));
          at = cut + 2;
        }
        if (at) buf = buf.slice(at);
      }
    } catch (e) {
      this.lastError = e;
    } finally {
      clearTimeout(timer);
      reader.cancel().catch(() => { /* the connection is gone already */ });
    }
    return true;
  }

  frame(text) {
    let id = null, event = 'message', data = '';
    for (const line of text.split('\n')) {
      if (!line || line[0] === ':') continue; // comment: keep-alive
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? '' : line.slice(colon + 1);
      if (value[0] === ' ') value = value.slice(1);
      if (field === 'id') id = value;
      else if (field === 'event') event = value;
      else if (field === 'data') data = data ? data + '\n' + value : value;
    }
    if (!data) return;
    let obj;
    try {
      obj = JSON.parse(data);
    } catch {
      return;
    }
    if (event === 'gap') {
      if (typeof obj.to === 'number') this.lastSeq = obj.to;
      this.h.onGap(obj);
      return;
    }
    if (id !== null) this.lastSeq = Number(id);
    this.h.onEvent(obj);
  }
}
