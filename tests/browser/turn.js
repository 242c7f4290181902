// TURN credentials in the page (issue 13): the session answer's TURN entry
// and ICE transport policy reach the RTCPeerConnection; a credential past
// half its life is refreshed ({"id":"iceServers"}) before a call.
// Usage: node turn.js BASE_URL all|relay
// all: the backend has a TURN secret, TTL 60 s and policy "all" (no TURN
// server runs: the call connects over host candidates). relay: policy
// "relay": the page's RTCPeerConnection is configured relay-only (media
// through a real relay is the coturn browser tests' job).
'use strict';
const t = require('./lib');
const base = process.argv[2];
const mode = process.argv[3];

const turnUser = (p) => p.evaluate(() => {
  const e = window.rtc.iceServers().filter((s) => s.username)[0];
  return e ? e.username : '';
});
const pcConfig = (p) => p.evaluate(() => {
  const c = window.rtc.pc && window.rtc.pc.getConfiguration();
  if (!c) return null;
  const e = (c.iceServers || []).filter((s) => s.username)[0];
  return { policy: c.iceTransportPolicy, username: e ? e.username : '', credential: e ? e.credential : '' };
});

t.main(async () => {
  const b = await t.browser();
  try {
    const alice = await b.newPage(base + '/', 'alice');
    const bob = await b.newPage(base + '/', 'bob');
    t.check(`turn (${mode}): two pages register`, await t.register(alice, 'alice') && await t.register(bob, 'bob'));
    const u0 = await turnUser(alice), bu0 = await turnUser(bob);
    t.check(`turn (${mode}): the page has the session's TURN credential`, /^\d+:[A-Za-z0-9_-]{16}$/.test(u0), u0);
    if (mode === 'relay') {
      t.check('turn (relay): the session answer says relay',
              await alice.evaluate(() => window.rtc.socket.iceTransportPolicy) === 'relay');
      await alice.fill('#callee', 'bob');
      await alice.click('#call-btn');
      t.check('turn (relay): the call rings', await t.until(bob, () => !document.getElementById('incoming').hidden, null, 20000));
      const cfg = await pcConfig(alice);
      t.check('turn (relay): the caller\'s RTCPeerConnection is relay-only with the TURN credential',
              cfg && cfg.policy === 'relay' && cfg.username === u0, JSON.stringify(cfg));
      await bob.click('#accept-btn');
      const bcfg = await t.until(bob, () => window.rtc.pc && window.rtc.pc.getConfiguration().iceTransportPolicy === 'relay', null, 10000);
      t.check('turn (relay): the callee\'s RTCPeerConnection is relay-only', bcfg);
      // Nothing listens on the TURN URI: once the caller's page has given up
      // gathering (no relay candidate), it ends the call itself.
      await alice.click('#hangup-btn', { timeout: 3000 }).catch(() => {});
      t.check('turn (relay): hang-up returns both to idle',
              await t.until(bob, () => document.getElementById('call-state').dataset.state === 'idle', null, 15000));
      return;
    }
    // A credential past half its life: the page's clock of when it got it
    // is moved back (TTL is 60 s here; waiting 30 s would do the same).
    await alice.evaluate(() => {
      window.__iceAnswers = 0;
      window.rtc.socket.addEventListener('message', (e) => { if (JSON.parse(e.data).id === 'iceServers') window.__iceAnswers++; });
      window.rtc._ice.received -= 61000;
    });
    const err = await t.placeCall(alice, bob, 'bob');
    t.check('turn (all): the call connects', !err, err);
    const u1 = await turnUser(alice), cfg = await pcConfig(alice);
    const answers = await alice.evaluate(() => window.__iceAnswers);
    t.check('turn (all): the caller asked for a fresh credential before the call (one answer, expiry not earlier, same id)',
            answers === 1 && Number(u1.split(':')[0]) >= Number(u0.split(':')[0]) && u1.split(':')[1] === u0.split(':')[1],
            `${answers} iceServers answers; ${u0} then ${u1}`);
    t.check('turn (all): the caller\'s RTCPeerConnection uses the fresh one, policy all',
            cfg && cfg.username === u1 && cfg.policy === 'all', JSON.stringify(cfg));
    const bcfg = await pcConfig(bob);
    t.check('turn (all): the callee, whose credential is fresh, did not ask and uses its own',
            await turnUser(bob) === bu0 && bcfg && bcfg.username === bu0, JSON.stringify(bcfg));
    await alice.click('#hangup-btn');
    t.check('turn (all): hang-up returns both to idle',
            await t.until(bob, () => document.getElementById('call-state').dataset.state === 'idle', null, 15000));
    const errors = await alice.evaluate(() => document.getElementById('error').hidden ? '' : document.getElementById('error-text').textContent);
    t.check('turn (all): no error shown on the caller\'s page', errors === '', errors);
  } finally {
    await b.close();
  }
});
