/* rtc.js -- one-to-one WebRTC calls over longcall (classic script; needs
 * longpoll-socket.js first). Keeps the seed client's API:
 *
 *   rtc.register('alice');  rtc.call('bob');  rtc.stop();  rtc.list();
 *   rtc.list({prefix: 'al', after: 'albert'})   (a page: names starting with
 *   prefix, sorted after `after`; both optional)
 *
 * plus rtc.accept() / rtc.reject() / rtc.rejectAndBlock() for an incoming
 * call (the last also blocks the caller for this session: the server refuses
 * their later calls at once, and this page is not rung; rtc.blocked lists
 * them), rtc.connect(url)
 * (default: /rtc on this page's host, or <script data-rtc-url="...">) and
 * events (rtc.addEventListener or rtc.on(type, fn); the fields are on the
 * event object):
 *   state       {state: "idle" | "calling" | "ringing" | "incall", peer}
 *   registered  {name}           registerfailed {message, reason}; reason as the
 *               backend sends it ("taken", "reserved", "invalid_name", "in_call";
 *               "" from an older backend)
 *
 * Names are sent in Unicode NFC (String.prototype.normalize), as the backend
 * wants them. The reclaim key of each name registered (registerResponse) is
 * kept in sessionStorage (this tab only) and sent with every register of that
 * name: after a network drop long enough for the server to end the session,
 * the renewed session registers the name again with it, and the name, held
 * for its key for LONGCALL_NAME_GRACE, is this page's again.
 *   list        {names, more, next}: a page of at most LONGCALL_LIST_MAX names
 *               (more: others follow; next: the `after` that asks for them)
 *   listrefused {reason, message}: a list the server did not answer (reason
 *               "rate_limited" or "list_once"); the last list shown stays
 *   incoming    {from}
 *   blocked     {names}: the callers blocked for this session (after
 *               rejectAndBlock; emptied when the server renews the session)
 *   ended       {reason, message, peer}; reason is one of "rejected", "busy",
 *               "not registered", "no answer", "blocked" (the callee blocked
 *               this caller: "bob does not take your calls."), "peer left",
 *               "cancelled", "hung up", "failed", "connection lost", "error"
 *   connection  {state}: the RTCPeerConnection's connectionState
 *   path        {path, protocol, text}: once the media is connected, the
 *               way it goes, from getStats() (checked again every
 *               PATH_EVERY ms): path "direct" (protocol "udp"/"tcp") or
 *               "relay" (protocol: how this browser reaches its TURN relay,
 *               "udp", "tcp" or "tls"; "" when only the other side uses
 *               one); text "direct", "via relay (UDP)", "via relay (TCP)",
 *               "via relay (TLS)" or "via the other side's relay"; all
 *               three "" when the call is over (rtc.mediaPath: the last)
 *   relayerror  {url, code, text, message}: a TURN server this page was
 *               given refused it or could not be reached (an
 *               icecandidateerror of a turn:/turns: URL); code 401: the
 *               relay refused the credential (the site's TURN secret is not
 *               the relay's). A call whose media cannot connect ends with
 *               reason "failed" and a sentence that says what the page knows
 *               of why (relay refusals included), once the relay-only page
 *               has gathered no relay candidate, or after MEDIA_WAIT ms.
 *   localstream {stream}   remotestream {stream} (stream null: gone)
 *   transport   {state, delay, retryAt}: see longpoll-socket.js
 *   error       {message}: a sentence for the person using the page
 *
 * Call order as in the seed: the caller takes camera and microphone, adds
 * the tracks, creates and sets the offer and sends `call`; the callee on
 * accept sets the offer, answers and sends `incomingCallResponse`. ICE
 * candidates trickle both ways as soon as they are found; remote ones wait
 * until the remote description is set. ICE servers and the ICE transport
 * policy ("all", or "relay": only TURN relays, so the two browsers never
 * learn each other's addresses) come from the session answer. A TURN entry's
 * credential is short-lived (username "<expiry unix s>:<id>", README "TURN:
 * media through restrictive networks"): before placing or accepting a call,
 * when the credential is past half its life, the page asks for a fresh one
 * ({"id":"iceServers"}) and waits for it at most ICE_REFRESH_WAIT ms, going
 * on with the old one if none comes (rtc.iceServers() gives the current).
 */
(function (global) {
  'use strict';

  var script = document.currentScript;
  var ICE_REFRESH_WAIT = 4000; /* ms a call waits for a fresh TURN credential */
  var PATH_EVERY = 5000;       /* ms between two looks at the media path */
  var MEDIA_WAIT = 40000;      /* ms an answered call waits for its media to connect */

  class Rtc extends EventTarget {
    constructor() {
      super();
      this.socket = null;
      this.name = null;         /* registered name */
      this.wantedName = null;   /* asked for, kept across a new session */
      this.state = 'idle';
      this.peer = null;
      this.pc = null;
      this.localStream = null;
      this.remoteStream = null;
      this.lastEnd = null;
      this.blocked = [];        /* callers blocked for this session */
      this.mediaConstraints = { audio: true, video: true };
      this._remoteOffer = null;
      this._pendingCandidates = [];
      this._callToken = 0;      /* bumped per call: late async steps of an old call stop */
      /* The ICE servers in use: the list, when it was received (Date.now())
       * and until when its TURN credential lives (ms; 0: no TURN entry). */
      this._ice = { servers: [], received: 0, expires: 0 };
      this._iceWait = null;     /* {resolve, timer} while an iceServers answer is awaited */
    }

    /* The ICE servers a call would use now (a copy). */
    iceServers() { return this._ice.servers.slice(); }

    /* Keeps list (from the session answer or an iceServers message) and the
     * life of its TURN credential: until the expiry in its username, on
     * this browser's clock (a clock that is ahead makes the page ask on
     * every call, which the server's rate bounds; one that is behind by
     * more than half LONGCALL_TURN_TTL can use a credential the TURN server
     * refuses). */
    _setIce(list) {
      var now = Date.now(), expires = 0;
      list = Array.isArray(list) ? list : [];
      list.forEach(function (e) {
        var m = e && typeof e.username === 'string' && /^(\d+):/.exec(e.username);
        if (!m) return;
        var until = Math.max(now, Number(m[1]) * 1000);
        if (!expires || until < expires) expires = until;
      });
      this._ice = { servers: list, received: now, expires: expires };
    }

    /* Resolves once the ICE servers are fit for a call: at once when no
     * TURN credential is past half its life, else after asking the server
     * for a fresh one -- when it comes, is refused, or ICE_REFRESH_WAIT ms
     * passed (then the old one is used). */
    _freshIce() {
      var ice = this._ice, self = this;
      if (!ice.expires || Date.now() < ice.received + (ice.expires - ice.received) / 2)
        return Promise.resolve();
      if (this._iceWait) return this._iceWait.promise;
      var w = this._iceWait = {};
      w.promise = new Promise(function (resolve) {
        w.resolve = function () {
          clearTimeout(w.timer);
          if (self._iceWait === w) self._iceWait = null;
          resolve();
        };
        w.timer = setTimeout(function () {
          if (global.console) console.info('rtc: no fresh TURN credential in time; using the old one');
          w.resolve();
        }, ICE_REFRESH_WAIT);
      });
      this._send({ id: 'iceServers' });
      return w.promise;
    }

    on(type, fn) { this.addEventListener(type, fn); return this; }

    _emit(type, fields) {
      var ev = new Event(type);
      for (var k in fields) if (Object.prototype.hasOwnProperty.call(fields, k)) ev[k] = fields[k];
      this.dispatchEvent(ev);
    }

    _error(message) {
      if (global.console) console.warn('rtc:', message);
      this._emit('error', { message: message });
    }

    _setState(state, peer) {
      this.state = state;
      this.peer = peer === undefined ? this.peer : peer;
      this._emit('state', { state: state, peer: this.peer });
    }

    /* Opens the transport (once). url: the /rtc base, http(s) or ws(s). */
    connect(url) {
      if (this.socket) return this.socket;
      if (!url) url = (script && script.dataset.rtcUrl) || '/rtc';
      url = new URL(url, location.href).href;
      var self = this;
      var s = this.socket = new LongPollSocket(url);
      s.addEventListener('message', function (e) { self._onMessage(e); });
      s.addEventListener('transport', function (e) {
        self._emit('transport', { state: e.state, delay: e.delay, retryAt: e.retryAt });
      });
      s.addEventListener('session', function (e) { self._onSession(e); });
      s.addEventListener('error', function (e) { self._error(e.message || 'the connection to the server failed'); });
      s.addEventListener('close', function (e) {
        if (e.code !== 1000) self._error('the connection to the server is closed: ' + (e.reason || 'code ' + e.code));
      });
      return s;
    }

    _send(msg) {
      this.connect().send(JSON.stringify(msg));
    }

    register(name) {
      name = String(name == null ? '' : name).normalize('NFC').trim();
      if (!name) { this._error('Type a name to register.'); return; }
      this.wantedName = name;
      this._sendRegister(name);
    }

    /* register name, with its reclaim key when this tab has one. */
    _sendRegister(name) {
      var m = { id: 'register', name: name };
      var key = reclaimKey(name);
      if (key) m.reclaim = key;
      this._send(m);
    }

    list(opts) {
      var m = { id: 'list' };
      if (opts && opts.prefix) m.prefix = String(opts.prefix);
      if (opts && opts.after) m.after = String(opts.after);
      this._send(m);
    }

    /* Calls `to`. Resolves when the offer is sent. */
    call(to) {
      to = String(to == null ? '' : to).trim();
      if (!to) { this._error('Type the name of the person to call.'); return Promise.resolve(); }
      if (!this.name) { this._error('Register a name before calling.'); return Promise.resolve(); }
      if (this.state !== 'idle') { this._error('You are already in a call; hang up first.'); return Promise.resolve(); }
      var token = ++this._callToken;
      var self = this;
      this.lastEnd = null;
      this._setState('calling', to);
      return this._preparePeer(token).then(function () {
        if (token !== self._callToken) return;
        return self.pc.createOffer().then(function (offer) {
          if (token !== self._callToken) return;
          return self.pc.setLocalDescription(offer).then(function () {
            if (token !== self._callToken) return;
            self._send({ id: 'call', from: self.name, to: to, sdpOffer: self.pc.localDescription.toJSON() });
          });
        });
      }).catch(function (e) {
        if (token !== self._callToken) return;
        self._end('error', 'The call could not start: ' + describe(e), false);
      });
    }

    /* Answers the ringing call. */
    accept() {
      if (this.state !== 'ringing') { this._error('There is no incoming call to accept.'); return Promise.resolve(); }
      var token = this._callToken;
      var self = this, from = this.peer, offer = this._remoteOffer;
      this._setState('incall', from);
      return this._preparePeer(token).then(function () {
        if (token !== self._callToken) return;
        return self.pc.setRemoteDescription(offer).then(function () {
          self._flushCandidates();
          return self.pc.createAnswer();
        }).then(function (answer) {
          if (token !== self._callToken) return;
          return self.pc.setLocalDescription(answer).then(function () {
            if (token !== self._callToken) return;
            self._send({ id: 'incomingCallResponse', from: from, callResponse: 'accept',
                         sdpOffer: self.pc.localDescription.toJSON() });
            self._awaitMedia();
          });
        });
      }).catch(function (e) {
        if (token !== self._callToken) return;
        self._end('error', 'The call could not be answered: ' + describe(e), true);
      });
    }

    reject() {
      if (this.state !== 'ringing') { this._error('There is no incoming call to reject.'); return; }
      this._send({ id: 'incomingCallResponse', from: this.peer, callResponse: 'reject' });
      this._end('rejected', 'You rejected the call.', false);
    }

    /* Rejects the ringing call and blocks its caller for this session: the
     * server refuses their later calls (they are told "<you> does not take
     * your calls") and does not ring this page. */
    rejectAndBlock() {
      if (this.state !== 'ringing') { this._error('There is no incoming call to reject.'); return; }
      var from = this.peer;
      this._send({ id: 'incomingCallResponse', from: from, callResponse: 'reject', block: true });
      if (this.blocked.indexOf(from) < 0) this.blocked.push(from);
      this._emit('blocked', { names: this.blocked.slice() });
      this._end('rejected', 'You rejected the call from ' + from + ' and blocked them for this session.', false);
    }

    /* Hangs up (or cancels a call not yet answered). */
    stop() {
      if (this.state === 'idle') return;
      if (this.state === 'ringing') { this.reject(); return; }
      this._end('hung up', 'You hung up.', true);
    }

    /* ---- internals ---- */

    _onSession(e) {
      this._setIce(e.iceServers);
      if (!e.renewed) return;
      /* The server forgot us (expired while offline, say): a call in
       * progress is over; the name is registered again. */
      if (this.state !== 'idle') this._end('connection lost', 'The connection to the server was lost; the call ended.', false);
      /* Blocks were the old session's: the server forgot them too. */
      if (this.blocked.length) {
        this.blocked = [];
        this._emit('blocked', { names: [] });
      }
      this.name = null;
      if (this.wantedName) this._sendRegister(this.wantedName);
    }

    /* A new RTCPeerConnection for call token, with fresh ICE servers
     * (_freshIce) and the session's ICE transport policy, and the media. */
    _preparePeer(token) {
      var self = this;
      this._closePeer();
      return this._freshIce().then(function () {
        if (token !== self._callToken) return;
        return self._newPeer(token);
      });
    }

    _newPeer(token) {
      var self = this;
      this._closePeer();
      var policy = this.socket && this.socket.iceTransportPolicy === 'relay' ? 'relay' : 'all';
      var pc = this.pc = new RTCPeerConnection({ iceServers: this._ice.servers,
                                                 iceTransportPolicy: policy });
      this.remoteStream = new MediaStream();
      this._emit('remotestream', { stream: this.remoteStream });
      this._watch = { relayErrors: [], gathered: 0, policy: policy, timer: 0, pathTimer: 0 };
      this.mediaPath = null;
      pc.onicecandidate = function (ev) {
        if (pc !== self.pc) return;
        if (!ev.candidate) { self._gatheringDone(pc); return; }
        self._watch.gathered++;
        self._send({ id: 'onIceCandidate', candidate: ev.candidate.toJSON() });
      };
      pc.onicecandidateerror = function (ev) {
        if (pc !== self.pc || !/^turns?:/.test(ev.url || '')) return;
        var e = { url: ev.url, code: ev.errorCode, text: ev.errorText || '' };
        e.message = relaySentence(e);
        self._watch.relayErrors.push(e);
        self._emit('relayerror', e);
      };
      pc.ontrack = function (ev) {
        if (pc !== self.pc) return;
        if (self.remoteStream.getTracks().indexOf(ev.track) < 0) self.remoteStream.addTrack(ev.track);
        self._emit('remotestream', { stream: self.remoteStream });
      };
      pc.onconnectionstatechange = function () {
        if (pc !== self.pc) return;
        self._emit('connection', { state: pc.connectionState });
        if (pc.connectionState === 'connected') {
          clearTimeout(self._watch.timer);
          self._watchPath(pc);
        } else if (pc.connectionState === 'failed') {
          self._mediaFailed();
        }
      };
      return this._media().then(function (stream) {
        if (token !== self._callToken || pc !== self.pc) return;
        if (stream) {
          stream.getTracks().forEach(function (t) { pc.addTrack(t, stream); });
        } else {
          pc.addTransceiver('audio', { direction: 'recvonly' });
          pc.addTransceiver('video', { direction: 'recvonly' });
        }
      });
    }

    /* The call's media cannot connect: ends it, saying why as far as the
     * page knows (the relays' refusals). */
    _mediaFailed() {
      var errs = this._watch ? this._watch.relayErrors : [];
      var refused = errs.filter(function (e) { return e.code === 401; })[0];
      var why = refused ? 'the media relay refused this page\'s credentials (' + refused.url +
                          ' answered 401: the site\'s TURN secret is not the relay\'s)'
              : errs.length ? 'no media relay could be used (' + errs[0].message + ')'
              : 'no network path between the two browsers';
      this._end('failed', 'The media connection failed: ' + why + '.', true);
    }

    /* ICE gathering ended. A relay-only page that gathered nothing can
     * never connect: it ends the call now rather than after MEDIA_WAIT. */
    _gatheringDone(pc) {
      var m = this._watch;
      if (m.policy === 'relay' && m.gathered === 0 && pc.connectionState !== 'connected') this._mediaFailed();
    }

    /* Starts the wait for an answered call's media (MEDIA_WAIT). */
    _awaitMedia() {
      var self = this, pc = this.pc, m = this._watch;
      if (!pc || !m) return;
      clearTimeout(m.timer);
      m.timer = setTimeout(function () {
        if (pc === self.pc && pc.connectionState !== 'connected') self._mediaFailed();
      }, MEDIA_WAIT);
    }

    /* Reads the selected candidate pair from getStats() and emits 'path'
     * when it changed; again every PATH_EVERY ms while pc is connected. */
    _watchPath(pc) {
      var self = this, m = this._watch;
      clearTimeout(m.pathTimer);
      pc.getStats().then(function (stats) {
        if (pc !== self.pc) return;
        var p = mediaPath(stats);
        if (p && (!self.mediaPath || p.text !== self.mediaPath.text)) {
          self.mediaPath = p;
          self._emit('path', p);
        }
        if (pc.connectionState === 'connected')
          m.pathTimer = setTimeout(function () { if (pc === self.pc) self._watchPath(pc); }, PATH_EVERY);
      }, function () { /* closed meanwhile */ });
    }

    /* Camera and microphone for this call. Without them the call still
     * goes ahead, receiving only, and the page says why. */
    _media() {
      var self = this;
      if (this.localStream && this.localStream.getTracks().some(function (t) { return t.readyState === 'live'; }))
        return Promise.resolve(this.localStream);
      if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
        this._error('This browser gives no access to camera and microphone here (a page must be served over https or from localhost); the call is receive-only.');
        return Promise.resolve(null);
      }
      return navigator.mediaDevices.getUserMedia(this.mediaConstraints).then(function (stream) {
        self.localStream = stream;
        self._emit('localstream', { stream: stream });
        return stream;
      }, function (e) {
        self._error('Camera and microphone are not available (' + describe(e) + '); the call is receive-only.');
        return null;
      });
    }

    _addRemoteCandidate(c) {
      if (!this.pc || !this.pc.remoteDescription) { this._pendingCandidates.push(c); return; }
      var self = this;
      this.pc.addIceCandidate(c).catch(function (e) {
        if (global.console) console.warn('rtc: a remote ICE candidate was not usable:', describe(e));
        self._emit('candidateerror', { message: describe(e) });
      });
    }

    _flushCandidates() {
      var list = this._pendingCandidates;
      this._pendingCandidates = [];
      list.forEach(this._addRemoteCandidate, this);
    }

    _closePeer() {
      if (this.pc) {
        var pc = this.pc;
        this.pc = null;
        pc.onicecandidate = pc.ontrack = pc.onconnectionstatechange = pc.onicecandidateerror = null;
        if (this._watch) { clearTimeout(this._watch.timer); clearTimeout(this._watch.pathTimer); }
        if (this.mediaPath) { this.mediaPath = null; this._emit('path', { path: '', protocol: '', text: '' }); }
        try { pc.close(); } catch (e) { /* already closed */ }
      }
    }

    /* Ends the call locally; tellPeer sends `stop`. */
    _end(reason, message, tellPeer) {
      var peer = this.peer;
      if (tellPeer) this._send({ id: 'stop' });
      this._callToken++;
      this._closePeer();
      this._pendingCandidates = [];
      this._remoteOffer = null;
      this.remoteStream = null;
      /* The camera goes off between calls. */
      if (this.localStream) {
        this.localStream.getTracks().forEach(function (tr) { tr.stop(); });
        this.localStream = null;
        this._emit('localstream', { stream: null });
      }
      this.lastEnd = { reason: reason, message: message, peer: peer };
      this._setState('idle', null);
      this._emit('ended', { reason: reason, message: message, peer: peer });
    }

    _onMessage(e) {
      var m;
      try { m = JSON.parse(e.data); } catch (err) { this._error('The server sent a message that is not JSON.'); return; }
      var self = this;
      switch (m.id) {
        case 'registerResponse':
          if (m.response === 'accepted') {
            this.name = this.wantedName;
            if (typeof m.reclaim === 'string') reclaimKey(this.name, m.reclaim);
            this._emit('registered', { name: this.name });
          } else {
            this.wantedName = this.name;
            this._emit('registerfailed', { message: m.message || 'the name was refused', reason: m.reason || '' });
            this._error('Registration failed: ' + (m.message || 'the name was refused') + '.');
          }
          break;
        case 'listResponse':
          this._emit('list', { names: Array.isArray(m.list) ? m.list : [], more: m.more === true,
                               next: typeof m.next === 'string' ? m.next : null });
          break;
        case 'incomingCall':
          if (this.state !== 'idle') {
            /* The server relays a call only to someone free; be safe. */
            this._send({ id: 'incomingCallResponse', from: m.from, callResponse: 'reject' });
            break;
          }
          if (this.blocked.indexOf(m.from) >= 0) {
            /* The server does not ring for a blocked caller; be safe. */
            this._send({ id: 'incomingCallResponse', from: m.from, callResponse: 'reject', block: true });
            break;
          }
          this._callToken++;
          this._pendingCandidates = [];
          this._remoteOffer = sessionDescription(m.offer, 'offer');
          this.lastEnd = null;
          this._setState('ringing', m.from);
          this._emit('incoming', { from: m.from });
          break;
        case 'callResponse':
          if (this.state !== 'calling') break;
          if (m.response === 'accepted') {
            var token = this._callToken;
            this._setState('incall', this.peer);
            this._awaitMedia();
            this.pc.setRemoteDescription(sessionDescription(m.sdpAnswer, 'answer')).then(function () {
              if (token === self._callToken) self._flushCandidates();
            }).catch(function (err) {
              if (token === self._callToken) self._end('error', 'The answer could not be used: ' + describe(err), true);
            });
          } else if (m.reason === 'blocked') {
            /* The callee blocked this caller for their session. */
            this._end('blocked', (this.peer || 'They') + ' does not take your calls.', false);
          } else {
            var why = m.message || 'the call was rejected';
            this._end(endReason(m.reason, why), sentence(why), false);
          }
          break;
        case 'startCommunication':
          if (m.sdpAnswer && this.pc) {
            this.pc.setRemoteDescription(sessionDescription(m.sdpAnswer, 'answer')).then(function () {
              self._flushCandidates();
            }).catch(function (err) { self._error('A renegotiation failed: ' + describe(err) + '.'); });
          }
          break;
        case 'iceCandidate':
          if (this.state === 'idle' || !m.candidate) break;
          this._addRemoteCandidate(m.candidate);
          break;
        case 'stopCommunication':
          if (this.state === 'idle') break;
          if (this.state === 'ringing')
            this._end('cancelled', 'The call from ' + (this.peer || 'the caller') + ' ended before you answered.', false);
          else if (this.state === 'calling')
            this._end('peer left', (this.peer || 'The other side') + ' left before answering.', false);
          else
            this._end('peer left', (this.peer || 'The other side') + ' hung up or left.', false);
          break;
        case 'error':
          /* A candidate racing the end of a call is expected; anything else is shown. */
          if (m.reason === 'not_in_call' ||
              (!m.reason && /^onIceCandidate: you are not in a call/.test(m.message || ''))) {
            if (global.console) console.info('rtc: server:', m.message);
          } else if (this._iceWait && (m.reason === 'ice_servers_once' ||
                     (m.reason === 'rate_limited' && /^iceServers/.test(m.message || '')))) {
            /* No fresh TURN credential now: the call goes on with the old one. */
            if (global.console) console.info('rtc: server:', m.message);
            this._iceWait.resolve();
          } else if (m.reason === 'rate_limited' || m.reason === 'list_once') {
            /* A list refused (too many too fast): the list shown stays. */
            if (global.console) console.info('rtc: server:', m.message);
            this._emit('listrefused', { reason: m.reason, message: m.message || '' });
          } else {
            this._error('The server says: ' + (m.message || 'error') + '.');
          }
          break;
        case 'pong':
          break;
        case 'iceServers':
          this._setIce(m.iceServers);
          if (this._iceWait) this._iceWait.resolve();
          break;
        default:
          if (global.console) console.info('rtc: unknown message', m.id);
      }
    }
  }

  /* The reclaim key kept for name in sessionStorage (this tab only), or
   * null; with key, stores it. Storage that is unavailable (a privacy
   * mode) just keeps nothing. */
  function reclaimKey(name, key) {
    var k = 'longcall.reclaim.' + name;
    try {
      if (key === undefined) return window.sessionStorage.getItem(k);
      window.sessionStorage.setItem(k, key);
    } catch (err) { /* no storage: no reclaim */ }
    return null;
  }

  function sessionDescription(x, type) {
    if (typeof x === 'string') return { type: type, sdp: x };
    return x;
  }

  /* A callResponse rejection's reason (fcgi/proto.h, enum proto_reason) to
   * the page's reason. */
  var END_REASONS = {
    busy: 'busy', in_call: 'busy', unknown: 'not registered', unregistered: 'not registered',
    no_answer: 'no answer', rejected: 'rejected', self: 'rejected', blocked: 'blocked'
  };

  /* The page's reason for a rejected call: from the backend's `reason`, or,
   * from an older backend without one, from its sentence. */
  function endReason(reason, message) {
    if (reason) return Object.prototype.hasOwnProperty.call(END_REASONS, reason) ? END_REASONS[reason] : 'rejected';
    message = String(message || '');
    if (/ is busy$/.test(message) || /already in a call/.test(message)) return 'busy';
    if (/ is not registered$/.test(message) || /^register before/.test(message)) return 'not registered';
    if (/^no answer$/.test(message)) return 'no answer';
    if (/rejected the call$/.test(message)) return 'rejected';
    return 'rejected';
  }

  /* A sentence for an icecandidateerror of TURN server e.url. */
  function relaySentence(e) {
    if (e.code === 401) return e.url + ' refused the credentials (401)';
    if (e.code === 701) return e.url + ' could not be reached';
    return e.url + ' answered ' + e.code + (e.text ? ' ' + e.text : '');
  }

  /* The media path of a connected RTCPeerConnection from its stats
   * report: the transport's selected candidate pair (or the nominated,
   * succeeded pair), by the local and remote candidates' types. Returns
   * {path, protocol, text}, or null when none is selected yet. */
  function mediaPath(stats) {
    var pair = null, byId = {};
    stats.forEach(function (r) { byId[r.id] = r; });
    stats.forEach(function (r) {
      if (r.type === 'transport' && r.selectedCandidatePairId && byId[r.selectedCandidatePairId])
        pair = byId[r.selectedCandidatePairId];
    });
    if (!pair) stats.forEach(function (r) {
      if (!pair && r.type === 'candidate-pair' && r.nominated && r.state === 'succeeded') pair = r;
    });
    var local = pair && byId[pair.localCandidateId], remote = pair && byId[pair.remoteCandidateId];
    if (!local || !remote) return null;
    if (local.candidateType === 'relay') {
      var proto = String(local.relayProtocol || local.protocol || 'udp').toLowerCase();
      return { path: 'relay', protocol: proto, text: 'via relay (' + proto.toUpperCase() + ')' };
    }
    if (remote.candidateType === 'relay')
      return { path: 'relay', protocol: '', text: 'via the other side\'s relay' };
    var p = String(local.protocol || 'udp').toLowerCase();
    return { path: 'direct', protocol: p, text: 'direct' };
  }

  function sentence(s) {
    s = String(s);
    s = s.charAt(0).toUpperCase() + s.slice(1);
    return /[.!?]$/.test(s) ? s : s + '.';
  }

  function describe(e) {
    if (!e) return 'unknown error';
    if (e.name && e.message) return e.name + ': ' + e.message;
    return String(e.message || e);
  }

  Rtc.endReason = endReason;
  global.rtc = new Rtc();
})(window);
