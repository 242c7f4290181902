// Reject & block (issue 12, item 3; run by test_block.py): mallory calls
// bob; bob clicks "Reject & block"; bob's page lists mallory as blocked for
// this session; mallory calls again and her page says "bob does not take
// your calls" (reason blocked) while bob's page shows no incoming call;
// alice still calls bob and the call connects. No page reports a CSP
// violation or an unexpected error.
// Prints 9 results. Usage: node block.js BASE_URL
'use strict';
const t = require('./lib');
const base = process.argv[2];
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const idle = (p) => t.until(p, () => document.getElementById('call-state').dataset.state === 'idle', null, 15000);
const ended = async (p, reason) => await idle(p) &&
  await t.until(p, (r) => { const e = document.getElementById('call-end'); return !e.hidden && e.dataset.reason === r; }, reason, 15000);

t.main(async () => {
  const b = await t.browser();
  try {
    const alice = await b.newPage(base + '/', 'alice');
    const bob = await b.newPage(base + '/', 'bob');
    const mallory = await b.newPage(base + '/', 'mallory');
    t.check('block: three pages register',
            await t.register(alice, 'alice') && await t.register(bob, 'bob') && await t.register(mallory, 'mallory'));
    // Every incoming call bob's page is told of, from now on.
    await bob.evaluate(() => {
      window.__incoming = [];
      window.rtc.on('incoming', (e) => window.__incoming.push(e.from));
    });

    // mallory calls; bob rejects and blocks.
    await mallory.fill('#callee', 'bob');
    await mallory.click('#call-btn');
    t.check('block: bob\'s incoming call offers Accept, Reject and "Reject & block"',
            await t.until(bob, () => !document.getElementById('incoming').hidden &&
              document.getElementById('incoming-from').textContent === 'mallory' &&
              !document.getElementById('block-btn').hidden &&
              document.getElementById('block-btn').textContent === 'Reject & block', null, 20000));
    await bob.click('#block-btn');
    const first = await ended(mallory, 'rejected') && await ended(bob, 'rejected');
    t.check('block: the first call ends "rejected" on both pages', first,
            `mallory: ${await t.callState(mallory)} / ${await t.endReason(mallory)}; bob: ${await t.callState(bob)} / ${await t.endReason(bob)}`);
    const listed = await t.until(bob, () => {
      const box = document.getElementById('blocked-box');
      const names = Array.from(document.querySelectorAll('#blocked li')).map((li) => li.dataset.name);
      return !box.hidden && names.length === 1 && names[0] === 'mallory';
    }, null, 5000);
    t.check('block: bob\'s page lists mallory as blocked for this session', listed,
            await bob.$eval('#blocked-box', (e) => e.hidden + ' ' + e.textContent));

    // mallory calls again: refused at once, bob is not rung.
    const rungBefore = await bob.evaluate(() => window.__incoming.length);
    await mallory.fill('#callee', 'bob');
    await mallory.click('#call-btn');
    const blocked = await ended(mallory, 'blocked');
    const text = await t.endText(mallory);
    t.check('block: mallory\'s next call ends "blocked": "bob does not take your calls"',
            blocked && /bob does not take your calls/.test(text), `${await t.callState(mallory)} / ${await t.endReason(mallory)} / ${text}`);
    await sleep(2000); // anything on its way to bob would have arrived by now
    const bobSaw = await bob.evaluate(() => ({
      incoming: window.__incoming.slice(), shown: !document.getElementById('incoming').hidden,
      state: document.getElementById('call-state').dataset.state }));
    t.check('block: bob\'s page shows no incoming call from mallory',
            bobSaw.incoming.length === rungBefore && !bobSaw.shown && bobSaw.state === 'idle', JSON.stringify(bobSaw));

    // alice still reaches bob.
    const err = await t.placeCall(alice, bob, 'bob');
    t.check('block: alice can still call bob, and the call connects', !err, err);
    await alice.click('#hangup-btn');
    await idle(alice);
    await idle(bob);

    const errors = await Promise.all([alice, bob, mallory].map((p) => p.$eval('#error', (e) => e.hidden ? '' : e.textContent)));
    t.check('block: no unexpected error message on any page', errors.every((e) => !e), JSON.stringify(errors));
    const csp = await Promise.all([alice, bob, mallory].map((p) => t.cspReport(p)));
    t.check('block: the pages came with the Content-Security-Policy and reported no violation',
            csp.every((c) => /default-src 'self'/.test(c.policy) && c.violations.length === 0), JSON.stringify(csp));
    if (t.failures()) t.dumpLogs(b);
  } finally {
    await b.close();
  }
});
