/* app.js -- the page: binds index.html to window.rtc (rtc.js). */
(function () {
  'use strict';

  var $ = function (id) { return document.getElementById(id); };
  var rtc = window.rtc;
  var listTimer = 0, countdownTimer = 0, filterTimer = 0;
  /* The page of names shown: those starting with listPrefix, from after
   * listAfter (null: the first page). The server sends at most
   * LONGCALL_LIST_MAX names a list; answers come in the order asked. */
  var listPrefix = '', listAfter = null;

  function refreshList() {
    if (rtc.name) rtc.list({ prefix: listPrefix, after: listAfter });
  }

  var STATE_TEXT = { idle: 'Idle', calling: 'Calling', ringing: 'Ringing', incall: 'In call' };
  var REASON_TEXT = {
    'rejected': 'Rejected', 'busy': 'Busy', 'not registered': 'Not registered',
    'no answer': 'No answer', 'blocked': 'Blocked', 'peer left': 'Peer left', 'cancelled': 'Cancelled',
    'hung up': 'You hung up', 'failed': 'Connection failed', 'connection lost': 'Connection lost',
    'error': 'Error'
  };

  function log(text) {
    var li = document.createElement('li');
    var t = new Date();
    li.textContent = t.toTimeString().slice(0, 8) + ' ' + text;
    var ol = $('log');
    ol.appendChild(li);
    while (ol.children.length > 200) ol.removeChild(ol.firstChild);
  }

  function showError(message) {
    $('error-text').textContent = message;
    $('error').hidden = false;
    log('error: ' + message);
  }
  $('error-close').addEventListener('click', function () { $('error').hidden = true; });

  function render() {
    var st = rtc.state;
    var cs = $('call-state');
    cs.dataset.state = st;
    cs.textContent = STATE_TEXT[st] || st;
    var peer = rtc.peer || '';
    $('call-peer').dataset.peer = peer;
    $('call-peer').textContent = peer ? (st === 'ringing' ? 'from ' : 'with ') + peer : '';
    $('incoming').hidden = st !== 'ringing';
    $('incoming-from').textContent = st === 'ringing' ? peer : '';
    $('hangup-btn').disabled = st === 'idle' || st === 'ringing';
    $('call-btn').disabled = !rtc.name || st !== 'idle';
    if (st !== 'idle') {
      $('call-end').hidden = true;
    }
    if (st !== 'incall') $('media-state').textContent = '';
    $('remote-caption').textContent = peer && st === 'incall' ? peer : 'Remote video';
    document.body.dataset.callState = st;
    Array.prototype.forEach.call(document.querySelectorAll('#online button[data-call]'), function (b) {
      b.disabled = st !== 'idle';
    });
    document.title = st === 'ringing' ? 'Incoming call from ' + peer + ' — longcall'
      : st === 'incall' ? 'In call with ' + peer + ' — longcall' : 'longcall';
  }

  rtc.on('state', function (e) { log('call state: ' + e.state + (e.peer ? ' (' + e.peer + ')' : '')); render(); });
  rtc.on('incoming', function (e) {
    log('incoming call from ' + e.from);
    $('incoming').scrollIntoView({ block: 'nearest' });
    $('accept-btn').focus();
  });
  rtc.on('blocked', function (e) {
    var ul = $('blocked');
    ul.textContent = '';
    ul.dataset.count = String(e.names.length);
    e.names.forEach(function (n) {
      var li = document.createElement('li');
      li.dataset.name = n;
      li.textContent = n;
      ul.appendChild(li);
    });
    $('blocked-box').hidden = !e.names.length;
    if (e.names.length) log('blocked for this session: ' + e.names.join(', '));
  });
  rtc.on('ended', function (e) {
    var el = $('call-end');
    el.dataset.reason = e.reason;
    el.textContent = 'Call ended — ' + (REASON_TEXT[e.reason] || e.reason) + ': ' + e.message;
    el.hidden = false;
    $('remote-video').srcObject = null;
    $('media-state').dataset.state = '';
    log('call ended: ' + e.reason + ' — ' + e.message);
    render();
  });
  rtc.on('registered', function (e) {
    $('me').textContent = 'Registered as ' + e.name + '. Others can call you by this name.';
    $('me').dataset.name = e.name;
    log('registered as ' + e.name);
    render();
    refreshList();
    clearInterval(listTimer);
    listTimer = setInterval(refreshList, 5000);
  });
  rtc.on('registerfailed', function (e) {
    $('me').dataset.name = rtc.name || '';
    if (e.reason === 'reserved') {
      /* The name's previous holder dropped off the network a moment ago
       * and may come back for it (README "Names"). */
      $('me').textContent = 'That name is reserved for a few minutes for the person who had it ' +
        'until their connection dropped. Try again later, or choose another name.' +
        (rtc.name ? ' You are still registered as ' + rtc.name + '.' : '');
    }
    render();
  });
  rtc.on('list', function (e) {
    var ul = $('online');
    ul.textContent = '';
    var others = e.names.filter(function (n) { return n !== rtc.name; });
    ul.dataset.count = String(others.length);
    $('online-more').hidden = !e.more;
    $('online-more').dataset.next = e.next || '';
    $('online-first').hidden = listAfter === null;
    if (!others.length) {
      var li = document.createElement('li');
      li.className = 'muted';
      li.textContent = listPrefix ? 'Nobody else online has a name starting with “' + listPrefix + '”.'
        : listAfter !== null ? 'No more names.' : 'Nobody else is online.';
      ul.appendChild(li);
      return;
    }
    others.forEach(function (n) {
      var li = document.createElement('li');
      li.dataset.name = n;
      var span = document.createElement('span');
      span.textContent = n;
      var b = document.createElement('button');
      b.type = 'button';
      b.textContent = 'Call';
      b.setAttribute('aria-label', 'Call ' + n);
      b.dataset.call = n;
      b.disabled = rtc.state !== 'idle';
      li.appendChild(span);
      li.appendChild(b);
      ul.appendChild(li);
    });
  });
  rtc.on('connection', function (e) {
    var el = $('media-state');
    el.dataset.state = e.state;
    el.textContent = { new: '', connecting: '· connecting media…', connected: '· media connected',
                       disconnected: '· media interrupted, waiting…', failed: '· media failed',
                       closed: '' }[e.state] || '';
    log('media: ' + e.state);
  });
  /* The media path: "direct" or "via relay (UDP/TCP/TLS)" -- people on
   * restrictive networks want to know why a call is slow. */
  rtc.on('path', function (e) {
    var el = $('media-path');
    el.dataset.path = e.path;
    el.dataset.protocol = e.protocol;
    el.textContent = e.path ? '· ' + e.text : '';
    if (e.path) log('media path: ' + e.text);
  });
  rtc.on('relayerror', function (e) { log('media relay: ' + e.message); });
  rtc.on('localstream', function (e) { $('local-video').srcObject = e.stream; });
  rtc.on('remotestream', function (e) {
    var v = $('remote-video');
    if (v.srcObject !== e.stream) v.srcObject = e.stream;
  });
  rtc.on('error', function (e) { showError(e.message); });
  rtc.on('transport', function (e) {
    var el = $('transport');
    el.dataset.state = e.state;
    clearInterval(countdownTimer);
    if (e.state === 'connected') el.textContent = 'Connected to the server';
    else if (e.state === 'offline') el.textContent = 'Offline: waiting for the network';
    else if (e.state === 'reconnecting') {
      var tick = function () {
        var s = Math.max(0, Math.ceil((e.retryAt - Date.now()) / 1000));
        el.textContent = s > 0 ? 'Server unreachable: retrying in ' + s + ' s' : 'Server unreachable: retrying now…';
      };
      tick();
      countdownTimer = setInterval(tick, 500);
      log('server unreachable; next try in ' + Math.round(e.delay / 100) / 10 + ' s');
    }
  });

  $('register-form').addEventListener('submit', function (ev) {
    ev.preventDefault();
    rtc.register($('name').value);
  });
  $('call-form').addEventListener('submit', function (ev) {
    ev.preventDefault();
    rtc.call($('callee').value);
  });
  $('online').addEventListener('click', function (ev) {
    var b = ev.target.closest('button[data-call]');
    if (b) { $('callee').value = b.dataset.call; rtc.call(b.dataset.call); }
  });
  $('accept-btn').addEventListener('click', function () { rtc.accept(); });
  $('reject-btn').addEventListener('click', function () { rtc.reject(); });
  $('block-btn').addEventListener('click', function () { rtc.rejectAndBlock(); });
  $('hangup-btn').addEventListener('click', function () { rtc.stop(); });
  window.addEventListener('focus', refreshList);
  $('online-filter').addEventListener('input', function () {
    clearTimeout(filterTimer);
    filterTimer = setTimeout(function () {   /* one list when typing pauses */
      listPrefix = $('online-filter').value;
      listAfter = null;
      refreshList();
    }, 400);
  });
  $('online-more').addEventListener('click', function () {
    listAfter = $('online-more').dataset.next || null;
    refreshList();
  });
  $('online-first').addEventListener('click', function () {
    listAfter = null;
    refreshList();
  });

  rtc.connect();
  render();
})();
