// Test 3: the callee's tab closes during a call: the caller is told (as
// "peer left") within the session expiry time, and the name is free again.
//   a) the tab closes normally: pagehide sends the close beacon;
//   b) the tab's renderer crashes (no pagehide, no beacon): the server
//      expires the session.
// Usage: node close.js BASE_URL EXPIRY_SECONDS
// The driver (test_close.py) checks in the database which way each ended.
'use strict';
const t = require('./lib');
const base = process.argv[2];
const expiry = Number(process.argv[3]);

async function scenario(b, label, callee, abrupt) {
  const alice = await b.newPage(base + '/', 'alice-' + label);
  const bob = await b.newPage(base + '/', callee);
  t.check(`close ${label}: pages register`, await t.register(alice, 'alice-' + label) && await t.register(bob, callee));
  const err = await t.placeCall(alice, bob, callee);
  t.check(`close ${label}: call connects`, !err, err);
  const start = Date.now();
  if (abrupt) {
    // The renderer crashes: no pagehide, no beacon; its held poll dies.
    const cdp = await bob.context().newCDPSession(bob);
    const crashed = new Promise((r) => bob.once('crash', () => r(true)));
    cdp.send('Page.crash').catch(() => {});  // never answers: the page is gone
    // Closed only once the renderer is gone: a context closed first would
    // unload the page normally (pagehide, beacon). (That the page really
    // went silent shows in the database: its session must end as
    // "expired", not "closed"; test_close.py checks.)
    t.check(`close ${label}: the renderer crashed`, await t.bounded(crashed, 10000) === true);
    t.bounded(bob.context().close(), 10000);
  } else {
    await bob.close({ runBeforeUnload: false });
  }
  // Bounded by the expiry plus the server's maintenance tick and a held
  // poll's return; generous because the machine is shared.
  const told = await t.until(alice, () => {
    const e = document.getElementById('call-end');
    return document.getElementById('call-state').dataset.state === 'idle' && !e.hidden && e.dataset.reason === 'peer left';
  }, null, (expiry + 20) * 1000);
  const secs = (Date.now() - start) / 1000;
  t.check(`close ${label}: the caller is told "peer left" (after ${secs.toFixed(1)} s; expiry ${expiry} s)`, told,
          `${await t.callState(alice)} / ${await t.endReason(alice)}`);
  // The name is free again: a new page takes it.
  const again = await b.newPage(base + '/', callee + '-again');
  t.check(`close ${label}: the name "${callee}" can be registered again`, await t.register(again, callee));
  t.check(`close ${label}: the new holder can be called`, !(await t.placeCall(alice, again, callee)));
  await alice.click('#hangup-btn');
  await t.until(again, () => document.getElementById('call-state').dataset.state === 'idle', null, 15000);
  await again.close();
  await alice.close();
}

t.main(async () => {
  const b = await t.browser();
  try {
    await scenario(b, 'a', 'bob', false);
    await scenario(b, 'b', 'carol', true);
    if (t.failures()) t.dumpLogs(b);
  } finally {
    await b.close();
  }
});
