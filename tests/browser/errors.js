// Test 2: reject; busy (a third page calls someone in a call); calling a
// name nobody holds; hang-up on either side (and a cancel before the answer)
// returns both pages to idle with the reason shown.
// Usage: node errors.js BASE_URL
'use strict';
const t = require('./lib');
const base = process.argv[2];

const idle = (p) => t.until(p, () => document.getElementById('call-state').dataset.state === 'idle', null, 15000);

async function ended(p, reason) {
  const ok = await idle(p) &&
    await t.until(p, (r) => { const e = document.getElementById('call-end'); return !e.hidden && e.dataset.reason === r; }, reason, 15000);
  return { ok, got: `${await t.callState(p)} / ${await t.endReason(p)} / ${await t.endText(p)}` };
}

async function both(name, a, ra, b, rb) {
  const x = await ended(a, ra), y = await ended(b, rb);
  t.check(name, x.ok && y.ok, `first page: ${x.got}; second page: ${y.got}`);
}

t.main(async () => {
  const b = await t.browser();
  try {
    const alice = await b.newPage(base + '/', 'alice');
    const bob = await b.newPage(base + '/', 'bob');
    const carol = await b.newPage(base + '/', 'carol');
    t.check('errors: three pages register',
            await t.register(alice, 'alice') && await t.register(bob, 'bob') && await t.register(carol, 'carol'));

    // Reject.
    await alice.fill('#callee', 'bob');
    await alice.click('#call-btn');
    t.check('errors: the caller shows "calling"',
            await t.until(alice, () => document.getElementById('call-state').dataset.state === 'calling', null, 10000));
    t.check('errors: the callee shows who is calling with Accept and Reject',
            await t.until(bob, () => !document.getElementById('incoming').hidden &&
              document.getElementById('incoming-from').textContent === 'alice' &&
              document.getElementById('call-state').dataset.state === 'ringing', null, 20000));
    await bob.click('#reject-btn');
    await both('errors: reject: both idle, reason "rejected" on both', alice, 'rejected', bob, 'rejected');

    // Nobody holds the name.
    await alice.fill('#callee', 'nobody');
    await alice.click('#call-btn');
    const nr = await ended(alice, 'not registered');
    t.check('errors: calling a name nobody holds: idle, reason "not registered"', nr.ok, nr.got);
    t.check('errors: the reason is a sentence naming the callee', /nobody/.test(await t.endText(alice)), await t.endText(alice));

    // Busy: carol calls alice while alice and bob talk.
    let err = await t.placeCall(alice, bob, 'bob');
    t.check('errors: alice and bob connect', !err, err);
    await carol.fill('#callee', 'alice');
    await carol.click('#call-btn');
    const busy = await ended(carol, 'busy');
    t.check('errors: a third page calling someone in a call: idle, reason "busy"', busy.ok, busy.got);
    t.check('errors: the call in progress goes on',
            await t.callState(alice) === 'incall' && await t.callState(bob) === 'incall' &&
            await alice.evaluate(() => window.rtc.pc.connectionState) === 'connected');

    // The callee hangs up.
    await bob.click('#hangup-btn');
    await both('errors: callee hangs up: both idle; "peer left" for the caller, "hung up" for the callee',
               alice, 'peer left', bob, 'hung up');
    t.check('errors: the remote video is cleared and the camera is off after the call',
            await alice.evaluate(() => document.getElementById('remote-video').srcObject === null &&
              document.getElementById('local-video').srcObject === null && window.rtc.localStream === null));

    // The caller hangs up.
    err = await t.placeCall(alice, bob, 'bob');
    t.check('errors: a second call between the same pages connects', !err, err);
    await alice.click('#hangup-btn');
    await both('errors: caller hangs up: both idle; "hung up" for the caller, "peer left" for the callee',
               alice, 'hung up', bob, 'peer left');

    // The caller gives up before the answer.
    await carol.fill('#callee', 'bob');
    await carol.click('#call-btn');
    t.check('errors: bob rings again',
            await t.until(bob, () => document.getElementById('call-state').dataset.state === 'ringing', null, 20000));
    await carol.click('#hangup-btn');
    await both('errors: caller cancels while ringing: both idle; "hung up" / "cancelled"', carol, 'hung up', bob, 'cancelled');

    const errors = await Promise.all([alice, bob, carol].map((p) => p.$eval('#error', (e) => e.hidden ? '' : e.textContent)));
    t.check('errors: no unexpected error message on any page', errors.every((e) => !e), JSON.stringify(errors));
    if (t.failures()) t.dumpLogs(b);
  } finally {
    await b.close();
  }
});
