/* longpoll-socket.js -- a drop-in for the browser's WebSocket that speaks
 * longcall's HTTP long-poll transport (see README, "The wire contract").
 *
 *   var ws = new LongPollSocket('wss://example.org/rtc');  // or https://...
 *   ws.onmessage = function (e) { var msg = JSON.parse(e.data); ... };
 *   ws.send(JSON.stringify({id: 'register', name: 'alice'}));
 *
 * Classic script, no dependencies: defines window.LongPollSocket.
 *
 * Sends leave in order, one POST at a time; what the page sends in one
 * task (a microtask later) and whatever is queued while a POST is out
 * leave together as one batch with a batch id, and a retry after a lost
 * answer reuses the id, so the server applies it once. One poll at a time
 * carries the cursor (after=N); a message whose seq was seen is dropped.
 * A batch leaves as an exchange (README, "The wire contract"): its POST
 * carries the cursor and a hold too, and is the poll while it is out (the
 * server answers a poll held meanwhile at once, and no other is made); its
 * answer brings the messages. So a page that sends and receives makes one
 * request per round, most of the time one outstanding (two for a moment
 * while a send supersedes a held poll). options.exchange = false: plain
 * sends and a separate poll, as before.
 * A held poll cut early by something on the path shortens the next holds
 * (down to tuning.minHold s); holds that survive grow them back, staying below
 * the last cut until many have survived. Network failures
 * retry with exponential backoff and full jitter. A 404 (session unknown or
 * expired) opens a new session and fires a "session" event with renewed =
 * true: the application registers again. On pagehide the session is closed
 * with navigator.sendBeacon. Requests stay CORS-simple: GET, or POST with a
 * text/plain body, no custom headers.
 *
 * Events (on* properties and addEventListener):
 *   open, message (event.data: the message as a JSON string; it carries the
 *   server's "seq"), close (code, reason, wasClean), error (event.message),
 *   and, beyond WebSocket:
 *   session   {sid, iceServers, iceTransportPolicy, renewed}: a session was opened
 *             (iceTransportPolicy: "all" or "relay", from the session answer)
 *   transport {state: "connected" | "reconnecting" | "offline",
 *              delay: ms until the next try, retryAt: Date.now() of it}
 *   sent      {messages: [JSON strings]}: a batch the server stored
 */
(function (global) {
  'use strict';

  var DEFAULT_HOLD = 25;   /* s: until the session answer says otherwise */
  /* How holds adapt; LongPollSocket.tuning, read at each poll. */
  var tuning = {
    minHold: 2,            /* s: shortest hold asked for after cut polls */
    growAfter: 3,          /* holds that survive before asking for longer */
    probeAfter: 20         /* ... and before trying again what was cut */
  };
  var BACKOFF_BASE = 500;  /* ms */
  var BACKOFF_MAX = 30000; /* ms */
  var SEND_TIMEOUT = 20000;
  var MAX_BATCH = 32;      /* messages (the server's default cap is 64) */
  var MAX_BATCH_BYTES = 48 * 1024; /* the server's default body cap is 64 KiB */
  var SECOND_AFTER = 0;    /* ms a second batch waits, once due, for more to join it (0: the
                            * page's current task: what it sends together leaves together) */

  function now() { return Date.now(); }

  /* fn in a microtask: after the current task's code, before anything else. */
  function later(fn) {
    if (typeof global.queueMicrotask === 'function') global.queueMicrotask(fn);
    else Promise.resolve().then(fn);
  }

  function httpBase(url) {
    var u = new URL(String(url), global.location ? global.location.href : undefined);
    if (u.protocol === 'ws:') u.protocol = 'http:';
    else if (u.protocol === 'wss:') u.protocol = 'https:';
    if (u.protocol !== 'http:' && u.protocol !== 'https:')
      throw new SyntaxError("LongPollSocket: the URL's scheme must be http, https, ws or wss");
    u.hash = '';
    u.search = '';
    return u.href.replace(/\/+$/, '');
  }

  function randomId() {
    var a = new Uint8Array(9);
    (global.crypto || global.msCrypto).getRandomValues(a);
    return Array.prototype.map.call(a, function (b) { return (b + 256).toString(16).slice(1); }).join('');
  }

  function makeEvent(type, fields) {
    var ev;
    if (type === 'message') ev = new MessageEvent('message', fields);
    else if (type === 'close' && typeof CloseEvent === 'function') ev = new CloseEvent('close', fields);
    else {
      ev = new Event(type);
      for (var k in fields) if (Object.prototype.hasOwnProperty.call(fields, k)) ev[k] = fields[k];
    }
    return ev;
  }

  function report(e) {
    if (typeof global.reportError === 'function') global.reportError(e);
    else setTimeout(function () { throw e; });
  }

  /* An HTTP error with the server's sentence and Retry-After. */
  function HttpError(status, message, retryAfter) {
    this.status = status;
    this.message = message;
    this.retryAfter = retryAfter;
  }

  function request(method, url, body, timeoutMs) {
    var ctl = typeof AbortController === 'function' ? new AbortController() : null;
    var timer = ctl ? setTimeout(function () { ctl.abort(); }, timeoutMs) : 0;
    var init = { method: method, cache: 'no-store', credentials: 'omit' };
    if (ctl) init.signal = ctl.signal;
    if (body !== undefined) {
      init.body = body;
      init.headers = { 'Content-Type': 'text/plain;charset=UTF-8' };
    }
    var p = fetch(url, init).then(function (r) {
      return r.text().then(function (text) {
        var json = null;
        try { json = JSON.parse(text); } catch (e) { /* a proxy's HTML page */ }
        if (r.ok && json && typeof json === 'object') return json;
        var ra = parseInt(r.headers.get('Retry-After') || '', 10);
        var msg = json && json.error ? json.error
          : 'the server answered ' + r.status + (r.statusText ? ' ' + r.statusText : '') +
            (r.ok ? ' with a body that is not JSON' : '');
        throw new HttpError(r.ok ? 502 : r.status, msg, isNaN(ra) ? 0 : ra);
      });
    });
    p.abort = ctl ? function () { ctl.abort(); } : function () {};
    p.then(function () { clearTimeout(timer); }, function () { clearTimeout(timer); });
    p.controller = ctl;
    return p;
  }

  function Backoff(base, max) { this.attempt = 0; this.base = base || BACKOFF_BASE; this.max = max || BACKOFF_MAX; }
  Backoff.prototype.next = function () {
    var cap = Math.min(this.max, this.base * Math.pow(2, this.attempt));
    this.attempt++;
    return Math.round(cap / 2 + Math.random() * cap / 2); /* "equal jitter" */
  };
  Backoff.prototype.reset = function () { this.attempt = 0; };

  class LongPollSocket extends EventTarget {
    constructor(url, options) {
      super();
      options = options || {};
      this.url = String(url);
      this.base = httpBase(url);
      this._origin = new URL(this.base).origin;
      this.protocol = '';
      this.extensions = '';
      this.binaryType = 'blob';
      this.readyState = LongPollSocket.CONNECTING;
      this.onopen = this.onmessage = this.onclose = this.onerror = null;
      this.onsession = this.ontransport = this.onsent = null;
      this.sid = null;
      this.iceServers = [];
      this.iceTransportPolicy = 'all';
      this.cursor = 0;
      this.transportState = 'connecting';
      /* Counters, for a status line or a test. */
      this.stats = { sentMessages: 0, sentBatches: 0, received: 0, duplicates: 0, polls: 0,
                     exchanges: 0, requests: 0, cutPolls: 0, retries: 0, sessions: 0 };
      this.exchange = options.exchange !== false;
      this._maxHold = options.hold || DEFAULT_HOLD;
      this.hold = this._maxHold;
      this._survived = 0;
      this._cutAt = 0;          /* s: how long the last cut poll lasted */
      this._queue = [];         /* JSON strings not yet in a batch */
      this._inflight = null;    /* {id, messages, body} being posted */
      this._batchPrefix = randomId();
      this._batchNo = 0;
      this._pollReq = null;
      this._sendBackoff = new Backoff();
      this._secondBackoff = new Backoff(50, 2000);
      this._second = null;      /* a batch sent after the held exchange _inflight (prev=) */
      this._secondDue = false;  /* the second batch's SECOND_AFTER timer fired */
      this._flushSoon = false;  /* send() queued a microtask that sends what the task queued */
      this._pollBackoff = new Backoff();
      this._sessionBackoff = new Backoff();
      this._timers = {};
      this._gen = 0;            /* bumped per session: stale answers are ignored */
      this._opening = false;
      var self = this;
      this._onPageHide = function (e) { self._beaconClose(e && e.persisted); };
      this._onPageShow = function (e) { if (e.persisted && self._hidden) { self._hidden = false; self._renew(); } };
      this._onOnline = function () { self._wakeUp(); };
      this._onOffline = function () { self._setTransport('offline', 0); };
      if (global.addEventListener) {
        global.addEventListener('pagehide', this._onPageHide);
        global.addEventListener('pageshow', this._onPageShow);
        global.addEventListener('online', this._onOnline);
        global.addEventListener('offline', this._onOffline);
      }
      setTimeout(function () { self._openSession(false); }, 0);
    }

    get bufferedAmount() {
      var n = 0;
      this._queue.forEach(function (s) { n += s.length; });
      if (this._inflight) n += this._inflight.body.length;
      if (this._second) n += this._second.body.length;
      return n;
    }

    /* Queues one message (a JSON text). Messages sent while CONNECTING wait
     * for the session (a WebSocket would throw). After close(): ignored. */
    send(data) {
      if (this.readyState === LongPollSocket.CLOSING || this.readyState === LongPollSocket.CLOSED) return;
      if (typeof data !== 'string') data = String(data);
      var msg;
      try { msg = JSON.parse(data); } catch (e) { msg = null; }
      if (!msg || typeof msg !== 'object' || Array.isArray(msg))
        throw new SyntaxError('LongPollSocket.send: the data must be one JSON object (a message)');
      this._queue.push(data);
      if (this._inflight) { this._pumpSend(); return; }
      /* Nothing out: what the page sends in this task leaves together, a
       * microtask later (several send() calls in a row: one request). */
      if (this._flushSoon) return;
      this._flushSoon = true;
      var self = this;
      later(function () {
        self._flushSoon = false;
        self._pumpSend();
        self._poll(); /* if nothing could leave: the poll an exchange would have been */
      });
    }

    /* Sends what is queued, then ends the session (POST /close). */
    close(code, reason) {
      if (this.readyState === LongPollSocket.CLOSING || this.readyState === LongPollSocket.CLOSED) return;
      this.readyState = LongPollSocket.CLOSING;
      var self = this;
      var deadline = now() + 5000;
      var finish = function () {
        if ((self._inflight || self._second) && now() < deadline) { self._timers.closeWait = setTimeout(finish, 50); return; }
        self._stopAll();
        var sid = self.sid;
        var done = function () { self._closed(code || 1000, reason || '', true); };
        if (!sid) { done(); return; }
        request('POST', self.base + '/close?sid=' + encodeURIComponent(sid) + '&after=' + self.cursor, '', 5000)
          .then(done, done);
      };
      if (this._queue.length && !this._inflight) this._pumpSend();
      finish();
    }

    /* ---- internals ---- */

    _emit(type, fields) {
      var ev = makeEvent(type, fields || {});
      var h = this['on' + type];
      this.dispatchEvent(ev);
      if (typeof h === 'function') {
        try { h.call(this, ev); } catch (e) { report(e); }
      }
      return ev;
    }

    _error(message) {
      this._emit('error', { message: message });
    }

    _timer(name, ms, fn) {
      clearTimeout(this._timers[name]);
      var self = this;
      this._timers[name] = setTimeout(function () { delete self._timers[name]; fn.call(self); }, ms);
    }

    _stopAll() {
      for (var k in this._timers) clearTimeout(this._timers[k]);
      this._timers = {};
      if (this._pollReq) { this._pollReq.abort(); this._pollReq = null; }
      this._gen++;
    }

    _closed(code, reason, clean) {
      this._stopAll();
      if (this.readyState === LongPollSocket.CLOSED) return;
      this.readyState = LongPollSocket.CLOSED;
      if (global.removeEventListener) {
        global.removeEventListener('pagehide', this._onPageHide);
        global.removeEventListener('pageshow', this._onPageShow);
        global.removeEventListener('online', this._onOnline);
        global.removeEventListener('offline', this._onOffline);
      }
      this._emit('close', { code: code, reason: reason, wasClean: clean });
    }

    _setTransport(state, delay) {
      if (state === 'reconnecting' && global.navigator && navigator.onLine === false) state = 'offline';
      if (state === this.transportState && state !== 'reconnecting') return;
      this.transportState = state;
      this._emit('transport', { state: state, delay: delay || 0, retryAt: delay ? now() + delay : 0 });
    }

    /* The browser says it is back online: try at once. */
    _wakeUp() {
      if (this.readyState === LongPollSocket.CLOSED || this.readyState === LongPollSocket.CLOSING) return;
      this._sendBackoff.reset();
      this._pollBackoff.reset();
      this._sessionBackoff.reset();
      if (!this.sid) { clearTimeout(this._timers.session); this._openSession(this.stats.sessions > 0); return; }
      if (this._timers.send) { clearTimeout(this._timers.send); delete this._timers.send; this._postBatch(this._inflight); }
      if (this._timers.second) { clearTimeout(this._timers.second); delete this._timers.second; this._postBatch(this._second); }
      if (this._timers.poll) { clearTimeout(this._timers.poll); delete this._timers.poll; this._poll(); }
    }

    _openSession(renewed) {
      if (this._opening || this.readyState >= LongPollSocket.CLOSING) return;
      this._opening = true;
      var self = this;
      request('POST', this.base + '/session', '', 15000).then(function (s) {
        self._opening = false;
        if (self.readyState >= LongPollSocket.CLOSING) {
          /* close() came while the session was opening: end it too. */
          if (s && typeof s.sid === 'string')
            request('POST', self.base + '/close?sid=' + encodeURIComponent(s.sid), '', 5000).catch(function () {});
          return;
        }
        if (typeof s.sid !== 'string') throw new HttpError(502, 'the session answer has no sid', 0);
        self._sessionBackoff.reset();
        self._gen++;
        self.sid = s.sid;
        self.cursor = 0;
        self.iceServers = Array.isArray(s.iceServers) ? s.iceServers : [];
        self.iceTransportPolicy = s.iceTransportPolicy === 'relay' ? 'relay' : 'all';
        if (s.poll > 0) self._maxHold = Math.max(tuning.minHold, Math.min(self._maxHold, s.poll));
        self.hold = Math.min(self.hold, self._maxHold);
        self.stats.sessions++;
        self._setTransport('connected', 0);
        self._emit('session', { sid: s.sid, iceServers: self.iceServers,
                                iceTransportPolicy: self.iceTransportPolicy, renewed: renewed });
        if (self.readyState === LongPollSocket.CONNECTING) {
          self.readyState = LongPollSocket.OPEN;
          self._emit('open', {});
        }
        self._poll();
        self._pumpSend();
      }).catch(function (e) {
        self._opening = false;
        if (self.readyState >= LongPollSocket.CLOSING) return;
        if (e instanceof HttpError && e.status === 403) {
          self._error('the server refused this page (' + e.message + ')');
          self._closed(1008, e.message, false);
          return;
        }
        var delay = self._sessionBackoff.next();
        if (e instanceof HttpError && e.retryAfter) delay = Math.max(delay, e.retryAfter * 1000);
        self.stats.retries++;
        self._setTransport('reconnecting', delay);
        self._timer('session', delay, function () { this._openSession(renewed); });
      });
    }

    /* The session is gone (404): whatever was queued for it is dropped, a
     * new one is opened, and "session" (renewed) tells the application. */
    _renew() {
      if (this.readyState >= LongPollSocket.CLOSING) return;
      this._stopAll();
      this.sid = null;
      var lost = this._queue.length + (this._inflight ? this._inflight.messages.length : 0) +
                 (this._second ? this._second.messages.length : 0);
      this._queue = [];
      this._inflight = this._second = null;
      if (lost) this._error(lost + ' message(s) were not sent: the session had ended');
      this._openSession(true);
    }

    /* The next batch from the queue: at most MAX_BATCH messages and
     * MAX_BATCH_BYTES, with a fresh id. */
    _takeBatch() {
      var msgs = [], bytes = 2;
      while (this._queue.length && msgs.length < MAX_BATCH &&
             (msgs.length === 0 || bytes + this._queue[0].length + 1 <= MAX_BATCH_BYTES)) {
        var m = this._queue.shift();
        msgs.push(m);
        bytes += m.length + 1;
      }
      return { id: this._batchPrefix + '-' + (++this._batchNo), messages: msgs,
               body: '[' + msgs.join(',') + ']', gen: this._gen, prev: null, sendTimer: 'send' };
    }

    /* Sends what is queued: as the batch in flight when there is none;
     * while that one is an exchange held by the server, as a second batch
     * (prev= the first: the server applies it after the first, waiting for
     * the first should it overtake it on the way, and answers the first)
     * SECOND_AFTER ms after it was due, so that what the page queues
     * meanwhile -- in the same task at least -- joins it. */
    _pumpSend() {
      if (!this.sid || !this._queue.length) return;
      if (this.readyState !== LongPollSocket.OPEN && this.readyState !== LongPollSocket.CLOSING) return;
      if (!this._inflight) {
        this._secondDue = false;
        this._inflight = this._takeBatch();
        this._postBatch(this._inflight);
        return;
      }
      var f = this._inflight;
      if (this._second || !f.exchange || !f.out || this._timers.second) return;
      if (!this._secondDue) {
        this._timer('second', SECOND_AFTER, function () { this._secondDue = true; this._pumpSend(); });
        return;
      }
      this._secondDue = false;
      this._second = this._takeBatch();
      this._second.prev = f.id;
      this._second.sendTimer = 'second';
      this._postBatch(this._second);
    }

    /* A batch the server stored: counted, and "sent" fired. */
    _confirm(b) {
      this.stats.sentBatches++;
      this.stats.sentMessages += b.messages.length;
      this._emit('sent', { messages: b.messages.slice() });
    }

    /* An exchange of ours is out: it is the poll. */
    _exchangeOut() {
      return !!((this._inflight && this._inflight.exchange && this._inflight.out) ||
                (this._second && this._second.exchange && this._second.out));
    }

    /* Posts batch b (the one in flight, or the second): as an exchange (the
     * poll too) while the socket is open and exchanges are on, else as a
     * plain send. */
    _postBatch(b) {
      if (!b || !this.sid || (b !== this._inflight && b !== this._second)) return;
      var self = this, gen = this._gen, hold = this.hold, started = now();
      var exchange = this.exchange && this.readyState === LongPollSocket.OPEN && !b.plain;
      var url = this.base + '/send?sid=' + encodeURIComponent(this.sid) + '&batch=' + b.id;
      if (b.prev) url += '&prev=' + b.prev;
      if (exchange) url += '&after=' + this.cursor + '&timeout=' + hold;
      b.exchange = exchange;
      b.out = true;  /* the request is out (not waiting for a retry) */
      b.sentAt = started;
      this.stats.requests++;
      if (exchange) this.stats.exchanges++;
      var retry = function () { self._postBatch(b); };
      request('POST', url, b.body, exchange ? (hold + 15) * 1000 : SEND_TIMEOUT).then(function (r) {
        if (gen !== self._gen) return;
        b.out = false;
        if (b !== self._inflight && b !== self._second) {
          /* Settled by the second's answer: its messages are still news. */
          if (exchange) self._deliver(r, gen, hold, started);
          return;
        }
        if (b === self._second) {
          /* Stored after the first: the first is stored too, whatever
           * became of its answer. */
          var f = self._inflight;
          self._inflight = self._second = null;
          if (f) self._confirm(f);
          self._confirm(b);
        } else {
          self._inflight = self._second;
          self._second = null;
          if (self._inflight) self._inflight.sendTimer = 'send';
          self._confirm(b);
        }
        self._sendBackoff.reset();
        self._secondBackoff.reset();
        self._setTransport('connected', 0);
        if (exchange) {
          self._pollBackoff.reset();
          if (!self._deliver(r, gen, hold, started)) return;
        }
        if (self._inflight) { self._pumpSend(); return; } /* the second is out, or waits to be */
        if (self._queue.length) self._pumpSend();
        else self._poll();
      }).catch(function (e) {
        if (gen !== self._gen) return;
        b.out = false;
        if (b !== self._inflight && b !== self._second) return;
        var http = e instanceof HttpError;
        if (http && e.status === 404) { self._renew(); return; }
        if (b.prev && http && e.status === 409) {
          /* The batch before it is not stored yet (out_of_order): the same
           * batch again shortly, whether it is still the second or has
           * become the first meanwhile. */
          self._timer(b.sendTimer, self._secondBackoff.next(), retry);
          return;
        }
        if (exchange && self._cut(e, started, hold)) { self._timer(b.sendTimer, 50, retry); return; }
        /* Until the batch is sent again, a plain poll reads the mailbox (a
         * 429 may say it is full: it must be read for the send to pass). */
        if (exchange) self._poll();
        if (http && (e.status === 400 || e.status === 413 || e.status === 415 || e.status === 403)) {
          /* The server will never take this batch: say so, go on. */
          if (b === self._inflight) {
            self._inflight = self._second;
            self._second = null;
            if (self._inflight) { self._inflight.prev = null; self._inflight.sendTimer = 'send'; }
          } else {
            self._second = null;
          }
          self._error('the server refused ' + b.messages.length + ' message(s): ' + e.message);
          if (!self._inflight || !self._inflight.out) self._pumpSend();
          return;
        }
        /* Lost, 429, 5xx: the same batch with the same id again, as a
         * plain send (its answer then does not wait for a hold that
         * something on the path may cut again; the poll above reads). */
        b.plain = true;
        var delay = self._sendBackoff.next();
        if (http && e.retryAfter) delay = Math.max(delay, e.retryAfter * 1000);
        self.stats.retries++;
        if (!(http && e.status === 429)) self._setTransport('reconnecting', delay);
        self._timer(b.sendTimer, delay, retry);
      });
      /* The first is out again (a retry, or a second that moved up):
       * what was queued while it was not out may follow it now. */
      if (b === this._inflight && this._queue.length) this._pumpSend();
    }

    /* Takes a poll's (or an exchange's) answer r, asked with hold at
     * started: adapts the hold, emits each message not seen before, in
     * order. Returns false when the socket went on to another session or
     * closed meanwhile (stop there). */
    _deliver(r, gen, hold, started) {
      var self = this;
      var msgs = Array.isArray(r.messages) ? r.messages : [];
      var elapsed = (now() - started) / 1000;
      if (!msgs.length && elapsed >= hold - 1) {
        /* A hold that lasted: after a few, ask for longer again, but
         * stay below where the last cut came until many lasted. */
        self._survived++;
        if (self.hold < self._maxHold && self._survived >= tuning.growAfter) {
          var next = Math.min(self._maxHold, Math.ceil(self.hold * 1.5));
          if (self._cutAt && next >= self._cutAt) {
            if (self._survived >= tuning.probeAfter) self._cutAt = 0;
            else next = Math.max(self.hold, Math.min(next, Math.floor(self._cutAt) - 1));
          }
          if (next !== self.hold) { self.hold = next; self._survived = 0; }
        }
      }
      for (var i = 0; i < msgs.length; i++) {
        var m = msgs[i];
        if (gen !== self._gen || self.readyState !== LongPollSocket.OPEN) return false;
        if (typeof m.seq !== 'number' || m.seq <= self.cursor) { self.stats.duplicates++; continue; }
        self.cursor = m.seq;
        self.stats.received++;
        self._emit('message', { data: JSON.stringify(m), origin: self._origin });
      }
      return gen === self._gen;
    }

    /* A held request (asked with hold at started) failed with e: when it
     * looks cut while held -- something on the path has an idle limit
     * below our hold -- asks for less than what survived and returns true
     * (the caller tries again at once). */
    _cut(e, started, hold) {
      var elapsed = (now() - started) / 1000;
      var httpish = e instanceof HttpError;
      if ((httpish && e.status !== 502 && e.status !== 504) || elapsed < 1.5 || elapsed >= hold - 0.5)
        return false;
      this.stats.cutPolls++;
      this._survived = 0;
      this._cutAt = elapsed;
      this.hold = Math.max(tuning.minHold, Math.min(this.hold - 1, Math.floor(elapsed) - 1));
      return true;
    }

    _poll() {
      if (this._pollReq || !this.sid || this.readyState !== LongPollSocket.OPEN) return;
      /* An exchange out is the poll: its answer polls on (or sends on). So
       * is one about to leave (send()'s microtask polls if it cannot). */
      if (this._exchangeOut() || (this._flushSoon && this.exchange)) return;
      var self = this, gen = this._gen, hold = this.hold, started = now();
      var url = this.base + '/poll?sid=' + encodeURIComponent(this.sid) + '&after=' + this.cursor +
                '&timeout=' + hold;
      var req = request('GET', url, undefined, (hold + 15) * 1000);
      this._pollReq = req;
      this.stats.polls++;
      this.stats.requests++;
      req.then(function (r) {
        if (gen !== self._gen) return;
        self._pollReq = null;
        self._pollBackoff.reset();
        self._setTransport('connected', 0);
        if (self._deliver(r, gen, hold, started)) self._poll();
      }).catch(function (e) {
        if (gen !== self._gen) return;
        self._pollReq = null;
        if (e instanceof HttpError && e.status === 404) { self._renew(); return; }
        var httpish = e instanceof HttpError;
        if (self._cut(e, started, hold)) { self._timer('poll', 50, self._poll); return; }
        var delay = self._pollBackoff.next();
        if (httpish && e.retryAfter) delay = Math.max(delay, e.retryAfter * 1000);
        self.stats.retries++;
        self._setTransport('reconnecting', delay);
        if (httpish && e.status === 400) self._error('the server refused a poll: ' + e.message);
        self._timer('poll', delay, self._poll);
      });
    }

    _beaconClose(persisted) {
      if (!this.sid || this.readyState >= LongPollSocket.CLOSING) return;
      var url = this.base + '/close?sid=' + encodeURIComponent(this.sid) + '&after=' + this.cursor;
      var sent = false;
      try { sent = global.navigator && navigator.sendBeacon && navigator.sendBeacon(url, ''); } catch (e) { sent = false; }
      if (!sent) { try { fetch(url, { method: 'POST', body: '', keepalive: true, credentials: 'omit' }); } catch (e) { /* page is going */ } }
      this._stopAll();
      this.sid = null;
      this._queue = [];
      this._inflight = this._second = null;
      if (persisted) this._hidden = true; /* back from the page cache: a new session */
    }
  }

  [['CONNECTING', 0], ['OPEN', 1], ['CLOSING', 2], ['CLOSED', 3]].forEach(function (c) {
    Object.defineProperty(LongPollSocket, c[0], { value: c[1], enumerable: true });
    Object.defineProperty(LongPollSocket.prototype, c[0], { value: c[1], enumerable: true });
  });

  LongPollSocket.tuning = tuning;
  global.LongPollSocket = LongPollSocket;
})(typeof window !== 'undefined' ? window : this);
