// Test 5 (run by test_cut.py): pages behind a proxy that cuts every held
// poll after 3 s and drops one poll answer and one send answer in ten.
// Counts the signalling messages each page sent (the library's "sent"
// event: batches the server took) and received ("message"), and checks on
// both sides that none was lost or duplicated; prints a "# summary" line for
// the driver to compare with the server's history.
// Usage: node cut.js BASE_URL (the proxy)
'use strict';
const t = require('./lib');
const base = process.argv[2];

// Installed in each page before it registers.
function instrument() {
  window.__sig = { sent: [], recv: [] };
  window.rtc.socket.addEventListener('sent', (e) => e.messages.forEach((m) => window.__sig.sent.push(JSON.parse(m))));
  window.rtc.socket.addEventListener('message', (e) => window.__sig.recv.push(JSON.parse(e.data)));
}

const RELAY = { call: 'incomingCall', incomingCallResponse: 'callResponse', onIceCandidate: 'iceCandidate',
                stop: 'stopCommunication' };
const REPLY = { register: 'registerResponse', list: 'listResponse' };
const count = (arr, id) => arr.filter((m) => m.id === id).length;

async function proxyStats() {
  const r = await fetch(base + '/__proxy_stats');
  return r.json();
}

t.main(async () => {
  const b = await t.browser();
  try {
    const alice = await b.newPage(base + '/', 'alice');
    const bob = await b.newPage(base + '/', 'bob');
    await alice.evaluate(instrument);
    await bob.evaluate(instrument);
    t.check('cut: both pages register through the cutting proxy',
            await t.register(alice, 'alice') && await t.register(bob, 'bob'));
    const err = await t.placeCall(alice, bob, 'bob', 60000);
    t.check('cut: the call connects', !err, err);
    for (const [p, who] of [[alice, 'alice'], [bob, 'bob']]) {
      const r = await t.remoteVideoPlays(p, 30000);
      t.check(`cut: ${who}'s remote video shows frames`, r.ok, JSON.stringify(r.info));
    }
    // Keep the call up (the page asks for the list every 5 s) until the
    // proxy has cut and dropped a few; bounded.
    const until = Date.now() + 90000;
    let ps = await proxyStats();
    while (Date.now() < until && (ps.cut < 2 || ps.dropped_polls < 2 || ps.dropped_sends < 1)) {
      await new Promise((r) => setTimeout(r, 1000));
      if (ps.sends < 15) await alice.evaluate(() => window.rtc.list());
      ps = await proxyStats();
    }
    await bob.click('#hangup-btn');
    t.check('cut: hang-up reaches the caller',
            await t.until(alice, () => document.getElementById('call-state').dataset.state === 'idle', null, 30000));
    // No more list refreshes: the counts below are taken once all is quiet.
    await alice.evaluate(() => { window.rtc.list = () => {}; });
    await bob.evaluate(() => { window.rtc.list = () => {}; });
    // Quiet: wait until every list asked has been answered, every relayed
    // message one page sent the other received, and neither page has
    // anything queued or in flight (bounded), then compare. Each page's
    // counts and its bufferedAmount are read in one evaluate (one task):
    // read apart, a batch confirmed between the two reads (a retried stop)
    // looked settled while its "sent" was not in the counts yet.
    const snap = () => ({ sent: window.__sig.sent, recv: window.__sig.recv,
                          buffered: window.rtc.socket.bufferedAmount });
    const settled = async () => {
      const [a, c] = await Promise.all([alice.evaluate(snap), bob.evaluate(snap)]);
      let ok = a.buffered === 0 && c.buffered === 0;
      for (const [x, y] of [[a, c], [c, a]]) {
        for (const [sentId, recvId] of Object.entries(RELAY)) ok = ok && count(x.sent, sentId) === count(y.recv, recvId);
        for (const [sentId, recvId] of Object.entries(REPLY)) ok = ok && count(x.sent, sentId) === count(x.recv, recvId);
      }
      return { ok, a, c };
    };
    let s = await settled();
    for (let i = 0; i < 60 && !s.ok; i++) {
      await new Promise((r) => setTimeout(r, 500));
      s = await settled();
    }
    console.log(`# settled: ${s.ok} (alice buffers ${s.a.buffered} bytes, bob ${s.c.buffered})`);
    const pages = { alice: s.a, bob: s.c };
    const summary = {};
    for (const [me, other] of [['alice', 'bob'], ['bob', 'alice']]) {
      const mine = pages[me], theirs = pages[other];
      const seqs = mine.recv.map((m) => m.seq);
      const contiguous = seqs.every((q, i) => q === i + 1);
      t.check(`cut: ${me} received seq 1..${seqs.length} each once, in order`, contiguous && seqs.length > 0,
              JSON.stringify(seqs));
      for (const [sentId, recvId] of Object.entries(RELAY)) {
        const sent = mine.sent.filter((m) => m.id === sentId);
        const got = theirs.recv.filter((m) => m.id === recvId);
        let same = sent.length === got.length;
        if (same && sentId === 'onIceCandidate')
          same = sent.every((m, i) => JSON.stringify(m.candidate) === JSON.stringify(got[i].candidate));
        t.check(`cut: ${me} sent ${sent.length} ${sentId}, ${other} received ${got.length} ${recvId}` +
                (sentId === 'onIceCandidate' ? ' (same candidates, same order)' : ''), same);
      }
      for (const [sentId, recvId] of Object.entries(REPLY))
        t.check(`cut: ${me}'s ${count(mine.sent, sentId)} ${sentId} got as many ${recvId}`,
                count(mine.sent, sentId) === count(mine.recv, recvId) && count(mine.sent, sentId) > 0);
      const stats = await (me === 'alice' ? alice : bob).evaluate(() => ({
        stats: window.rtc.socket.stats, hold: window.rtc.socket.hold }));
      console.log(`# ${me}: ${JSON.stringify(stats)}`);
      t.check(`cut: ${me}'s socket saw cut polls (${stats.stats.cutPolls}) and now asks for shorter holds (${stats.hold} s)`,
              stats.stats.cutPolls >= 1 && stats.hold < 25);
      const sentRelayed = {};
      for (const [sentId, recvId] of Object.entries(RELAY)) {
        const n = count(mine.sent, sentId);
        if (n) sentRelayed[recvId] = n;
      }
      summary[me] = { received: mine.recv.map((m) => [m.seq, m.id]), sentRelayed };
    }
    console.log('# summary ' + JSON.stringify(summary));

    // The proxy calms down: holds that survive make the page ask for longer
    // ones again (probeAfter lowered from 20 to 4 survivals to keep this short).
    await fetch(base + '/__proxy_calm');
    await alice.evaluate(() => { LongPollSocket.tuning.probeAfter = 4; });
    const before = await alice.evaluate(() => window.rtc.socket.hold);
    const grew = await t.until(alice, (h) => window.rtc.socket.hold > Math.max(h, 3), before, 90000);
    t.check(`cut: once polls are no longer cut, holds grow back (from ${before} s to ${await alice.evaluate(() => window.rtc.socket.hold)} s)`,
            grew);
    if (t.failures()) t.dumpLogs(b, 60);
  } finally {
    await b.close();
  }
});
