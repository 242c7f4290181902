// Test 4: a restrictive network. Chromium reaches everything through squid
// (--proxy-server, loopback included). First a WebSocket handshake through
// squid fails (squid refuses the CONNECT tunnel) although the WebSocket
// server answers a direct handshake (the driver checks that); then a call
// completes as in test 1, its signalling over long polls through squid.
// Usage: node squid.js BASE_URL SQUID_PORT WS_URL
'use strict';
const t = require('./lib');
const [base, squidPort, wsUrl] = process.argv.slice(2);

t.main(async () => {
  const b = await t.browser([`--proxy-server=http://127.0.0.1:${squidPort}`, '--proxy-bypass-list=<-loopback>']);
  try {
    // The probe runs in a blank page: the page's own Content-Security-Policy
    // (connect-src 'self') would refuse a WebSocket to another port before
    // it reached squid, and this checks squid, not the policy.
    const probeCtx = await b.browser.newContext();
    const probe = await probeCtx.newPage();
    await probe.goto('about:blank');
    const ws = await probe.evaluate((url) => new Promise((resolve) => {
      const s = new WebSocket(url);
      const r = { opened: false, error: false, code: 0 };
      const timer = setTimeout(() => resolve(Object.assign(r, { timeout: true })), 15000);
      s.onopen = () => { r.opened = true; s.close(); };
      s.onerror = () => { r.error = true; };
      s.onclose = (e) => { r.code = e.code; clearTimeout(timer); resolve(r); };
    }), wsUrl);
    await probeCtx.close();
    t.check('squid: a WebSocket handshake through the proxy fails', !ws.opened && ws.error && ws.code === 1006,
            JSON.stringify(ws));
    const alice = await b.newPage(base + '/', 'alice');
    const bob = await b.newPage(base + '/', 'bob');
    t.check('squid: both pages register through the proxy', await t.register(alice, 'alice') && await t.register(bob, 'bob'));
    const err = await t.placeCall(alice, bob, 'bob');
    t.check('squid: both peer connections reach "connected"', !err, err);
    for (const [p, who] of [[alice, 'alice'], [bob, 'bob']]) {
      const r = await t.remoteVideoPlays(p);
      t.check(`squid: ${who}'s remote video shows frames`, r.ok, JSON.stringify(r.info));
    }
    await alice.click('#hangup-btn');
    t.check('squid: hang-up returns both to idle',
            await t.until(bob, () => document.getElementById('call-state').dataset.state === 'idle', null, 15000));
    if (t.failures()) t.dumpLogs(b);
  } finally {
    await b.close();
  }
});
