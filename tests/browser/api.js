// The library as a WebSocket drop-in, in a page served by lighttpd:
// constants and readyState, a ws:// URL, sends queued before open, several
// sends leaving as one batch, replies through onmessage and listeners in
// order, a non-JSON send refused, close(); a session the server forgot (404)
// replaced and the name registered again by rtc.js; the transport state
// shown on the page (offline, reconnecting with its countdown, connected).
// Usage: node api.js BASE_URL OTHER_ORIGIN_BASE (the same server as another
// origin, through test_api.py's counting relay)
'use strict';
const t = require('./lib');
const [base, otherOrigin] = process.argv.slice(2);

t.main(async () => {
  const b = await t.browser();
  try {
    const page = await b.newPage(base + '/', 'api');
    const r = await page.evaluate((wsUrl) => new Promise((resolve) => {
      const out = { events: [] };
      const s = new LongPollSocket(wsUrl);
      out.constants = [LongPollSocket.CONNECTING, LongPollSocket.OPEN, LongPollSocket.CLOSING, LongPollSocket.CLOSED,
                       s.OPEN].join(',');
      out.initial = s.readyState;
      out.base = s.base;
      // Sent before open, in one tick: one batch once the session is there.
      s.send(JSON.stringify({ id: 'register', name: 'api-user' }));
      s.send(JSON.stringify({ id: 'ping' }));
      s.send(JSON.stringify({ id: 'list' }));
      try { s.send('not json'); out.nonJson = 'accepted'; } catch (e) { out.nonJson = e.name; }
      const removed = () => out.events.push('removed listener called');
      s.addEventListener('message', removed);
      s.removeEventListener('message', removed);
      s.addEventListener('message', (e) => out.events.push('listener ' + JSON.parse(e.data).id));
      s.addEventListener('sent', (e) => out.events.push('sent ' + e.messages.length));
      s.onopen = () => { out.events.push('open'); out.openState = s.readyState; };
      s.onmessage = (e) => {
        const m = JSON.parse(e.data);
        out.events.push('onmessage ' + m.id);
        if (m.id === 'listResponse') {
          out.list = m.list;
          s.close();
          out.closingState = s.readyState;
        }
      };
      s.onclose = (e) => {
        out.events.push('close');
        Object.assign(out, { code: e.code, wasClean: e.wasClean, finalState: s.readyState, sid: s.sid,
                             batches: s.stats.sentBatches });
        resolve(out);
      };
      setTimeout(() => resolve(out), 20000);
    }), base.replace(/^http/, 'ws') + '/rtc');
    t.check('api: constants 0..3 on the class and the instance', r.constants === '0,1,2,3,1', r.constants);
    t.check('api: a ws:// URL maps to http://', r.initial === 0 && r.base === base + '/rtc', `${r.initial} ${r.base}`);
    t.check('api: a send that is not JSON throws SyntaxError', r.nonJson === 'SyntaxError', r.nonJson);
    // ("sent" may come after the replies: the server answers a woken poll
    // before the sender's ok.)
    const order = r.events.filter((e) => !e.startsWith('sent'));
    t.check('api: open, then the three queued messages left as one batch, replies in order to the handler and listeners',
            JSON.stringify(order) === JSON.stringify(['open', 'listener registerResponse', 'onmessage registerResponse',
              'listener pong', 'onmessage pong', 'listener listResponse', 'onmessage listResponse', 'close']) &&
            r.events.filter((e) => e.startsWith('sent')).join() === 'sent 3' &&
            r.batches === 1 && r.openState === 1, JSON.stringify(r));
    t.check('api: the list holds the registered name', JSON.stringify(r.list) === '["api-user"]', JSON.stringify(r.list));
    t.check('api: close(): CLOSING, then CLOSED with a clean close event (1000)',
            r.closingState === 2 && r.finalState === 3 && r.code === 1000 && r.wasClean === true, JSON.stringify(r));
    const st = await fetch(`${base}/rtc/poll?sid=${r.sid}&after=0&timeout=0`);
    t.check('api: the closed session is gone on the server (404)', st.status === 404, String(st.status));

    // The server forgets the page's session: a new one, registered again.
    t.check('api: the page registers', await t.register(page, 'dave'));
    const sid = await page.evaluate(() => window.rtc.socket.sid);
    await page.evaluate(() => {
      window.__renewed = false;
      window.rtc.socket.addEventListener('session', (e) => { if (e.renewed) window.__renewed = true; });
      window.__registered = 0;
      window.rtc.on('registered', () => window.__registered++);
    });
    const c = await fetch(`${base}/rtc/close?sid=${sid}`, { method: 'POST', body: '' });
    t.check('api: the session is ended from outside', c.status === 200, String(c.status));
    t.check('api: the page opens a new session (404 -> "session" event, renewed)',
            await t.until(page, (old) => window.__renewed && window.rtc.socket.sid && window.rtc.socket.sid !== old, sid, 30000));
    t.check('api: rtc.js registers the name again',
            await t.until(page, () => window.__registered > 0 && window.rtc.name === 'dave', null, 20000));
    const other = await b.newPage(base + '/', 'other');
    await t.register(other, 'erin');
    t.check('api: the name is held again (the online list shows it)',
            await t.until(other, () => !!document.querySelector('#online li[data-name="dave"]'), null, 20000));

    // Transport state on the page.
    const tstate = () => page.$eval('#transport', (e) => e.dataset.state + ': ' + e.textContent);
    t.check('api: the page shows "connected"', (await tstate()).startsWith('connected'), await tstate());
    await page.route('**/rtc/poll*', (route) => route.abort('connectionreset'));
    await page.evaluate(() => window.rtc.list());  // a poll answers, the next one fails
    t.check('api: polls failing: the page shows "reconnecting" with a countdown',
            await t.until(page, () => {
              const e = document.getElementById('transport');
              return e.dataset.state === 'reconnecting' && /retrying (in \d+ s|now)/.test(e.textContent);
            }, null, 30000), await tstate());
    await page.context().setOffline(true);
    t.check('api: the browser offline: the page shows "offline"',
            await t.until(page, () => document.getElementById('transport').dataset.state === 'offline', null, 30000),
            await tstate());
    await page.context().setOffline(false);
    await page.unroute('**/rtc/poll*');
    t.check('api: back online: "connected" again',
            await t.until(page, () => document.getElementById('transport').dataset.state === 'connected', null, 40000),
            await tstate());
    t.check('api: and the page still works (a list answered)', await page.evaluate(() => new Promise((res) => {
      window.rtc.on('list', () => res(true));
      window.rtc.list();
      setTimeout(() => res(false), 15000);
    })));
    // Three sends in one task on an open socket leave as one batch (an
    // exchange): the first does not leave alone ahead of the other two.
    const burst = await page.evaluate(() => new Promise((res) => {
      const s = window.rtc.socket, b0 = s.stats.sentBatches, x0 = s.stats.exchanges;
      let pongs = 0;
      const on = (e) => {
        if (JSON.parse(e.data).id !== 'pong' || ++pongs < 3) return;
        s.removeEventListener('message', on);
        res({ batches: s.stats.sentBatches - b0, exchanges: s.stats.exchanges - x0 });
      };
      s.addEventListener('message', on);
      for (let i = 0; i < 3; i++) s.send(JSON.stringify({ id: 'ping' }));
      setTimeout(() => res({ pongs }), 15000);
    }));
    t.check('api: three sends in one task leave as one batch, one exchange, and all three are answered',
            burst.batches === 1 && burst.exchanges === 1, JSON.stringify(burst));
    // Cross-origin (the page's origin is 127.0.0.1, the socket's localhost):
    // the driver checks that the relay saw no OPTIONS.
    const x = await page.evaluate((url) => new Promise((resolve) => {
      const s = new LongPollSocket(url);
      const got = [];
      s.onopen = () => { s.send(JSON.stringify({ id: 'ping' })); s.send(JSON.stringify({ id: 'list' })); };
      s.onmessage = (e) => { got.push(JSON.parse(e.data).id); if (got.length === 2) s.close(); };
      s.onclose = () => resolve(got.join());
      s.onerror = (e) => got.push('error ' + e.message);
      setTimeout(() => resolve('timeout: ' + got.join()), 20000);
    }), otherOrigin + '/rtc');
    t.check('api: cross-origin (CORS_ORIGINS=*): ping and list answered', x === 'pong,listResponse', x);
    const errs = await page.$eval('#error', (e) => (e.hidden ? '' : e.textContent));
    console.log('# error shown on the page meanwhile: ' + (errs || '(none)'));
    if (t.failures()) t.dumpLogs(b);
  } finally {
    await b.close();
  }
});
