// Media through a real TURN relay (issue 13): two pages call each other
// relay-only (LONGCALL_ICE_TRANSPORT_POLICY=relay) with the TURN credential
// the backend minted; coturn runs on loopback (test_media.py).
// Usage: node media.js BASE_URL MODE [PROXY_PORT]
// MODE udp | tcp | tls: the call connects, video plays both ways, and
//   getStats() on both sides selects a relay candidate pair whose local
//   candidate reaches the relay over that protocol; the page shows it.
// MODE proxy: the same over TCP with both browsers behind squid
//   (--proxy-server, loopback included): the relay is reached through the
//   proxy's CONNECT (test_media.py reads squid's log).
// MODE wrong: the backend's secret is not coturn's: the relay refuses the
//   credential, the page says so and the call ends cleanly with a reason.
// Prints `# turn-user NAME USERNAME` for test_media.py to find in coturn's
// log, and `# sid NAME SID` to look for in no log.
'use strict';
const t = require('./lib');
const base = process.argv[2];
const mode = process.argv[3];
const proxyPort = process.argv[4];

// What the page's own stats say of the selected pair (rtc.js's mediaPath
// reads the same report; this reads it independently).
const selected = (p) => p.evaluate(async () => {
  const stats = await window.rtc.pc.getStats();
  const byId = {};
  stats.forEach((r) => { byId[r.id] = r; });
  let pair = null;
  stats.forEach((r) => { if (r.type === 'transport' && r.selectedCandidatePairId) pair = byId[r.selectedCandidatePairId]; });
  if (!pair) return null;
  const l = byId[pair.localCandidateId], r = byId[pair.remoteCandidateId];
  return { local: l.candidateType, relayProtocol: l.relayProtocol || '', url: l.url || '',
           remote: r.candidateType, bytesReceived: pair.bytesReceived || 0 };
});
const pathShown = (p) => p.$eval('#media-path', (e) => ({ path: e.dataset.path, protocol: e.dataset.protocol, text: e.textContent }));

t.main(async () => {
  const args = mode === 'proxy' ? [`--proxy-server=http://127.0.0.1:${proxyPort}`, '--proxy-bypass-list=<-loopback>']
    : mode === 'tls' ? ['--ignore-certificate-errors'] : [];
  const b = await t.browser(args);
  try {
    const alice = await b.newPage(base + '/', 'alice');
    const bob = await b.newPage(base + '/', 'bob');
    t.check(`media ${mode}: two pages register`, await t.register(alice, 'alice') && await t.register(bob, 'bob'));
    for (const [name, p] of [['alice', alice], ['bob', bob]]) {
      const u = await p.evaluate(() => (window.rtc.iceServers().filter((s) => s.username)[0] || {}).username || '');
      console.log(`# turn-user ${name} ${u}`);
      console.log(`# sid ${name} ${await p.evaluate(() => window.rtc.socket.sid || '')}`);
    }
    t.check(`media ${mode}: the pages are relay-only`,
            await alice.evaluate(() => window.rtc.socket.iceTransportPolicy) === 'relay');
    if (mode === 'wrong') {
      await alice.fill('#callee', 'bob');
      await alice.click('#call-btn');
      // The caller's page may end the call before bob answers: relay-only
      // and refused by the relay, it gathers no candidate at all.
      if (await t.until(bob, () => !document.getElementById('incoming').hidden, null, 10000))
        await bob.click('#accept-btn', { timeout: 3000 }).catch(() => {});
      const idle = (p) => t.until(p, () => document.getElementById('call-state').dataset.state === 'idle', null, 60000);
      const ended = await idle(alice) && await idle(bob);
      t.check('media wrong secret: the call ends on both pages (no media can connect)', ended,
              `${await t.callState(alice)} / ${await t.callState(bob)}`);
      const ends = [[await t.endReason(alice), await t.endText(alice)], [await t.endReason(bob), await t.endText(bob)]];
      console.log(`# ended: alice ${JSON.stringify(ends[0])}, bob ${JSON.stringify(ends[1])}`);
      const said = ends.filter(([r, text]) => r === 'failed' && /media relay refused this page's credentials/.test(text) && /401/.test(text));
      t.check('media wrong secret: a page says the media relay refused its credentials (401)', said.length >= 1,
              JSON.stringify(ends));
      t.check('media wrong secret: the other page ends with a reason too (relay refused, the caller left or cancelled)',
              ends.every(([r]) => r === 'failed' || r === 'peer left' || r === 'cancelled'), JSON.stringify(ends));
      const video = await alice.evaluate(() => document.getElementById('remote-video').videoWidth);
      t.check('media wrong secret: no video was received', video === 0, String(video));
      t.check('media wrong secret: both pages can call again (idle, registered)',
              await alice.evaluate(() => window.rtc.state === 'idle' && !document.getElementById('call-btn').disabled) &&
              await bob.evaluate(() => window.rtc.state === 'idle'));
      return;
    }
    const err = await t.placeCall(alice, bob, 'bob', 45000);
    t.check(`media ${mode}: the call connects relay-only`, !err, err);
    if (err) { t.dumpLogs(b); return; }
    for (const [name, p] of [['alice', alice], ['bob', bob]]) {
      const v = await t.remoteVideoPlays(p, 20000);
      t.check(`media ${mode}: ${name} decodes the other's video frames`, v.ok, JSON.stringify(v.info));
    }
    const want = mode === 'proxy' ? 'tcp' : mode;
    const relayed = (s) => s && s.local === 'relay' && s.remote === 'relay' && s.relayProtocol === want && s.bytesReceived > 0;
    for (const [name, p] of [['alice', alice], ['bob', bob]]) {
      // ICE may still move the selection between the relay pairs after the
      // first frames; a pair selected a moment ago has received nothing yet.
      // So read the stats again (at most 40 times in 10 s) until the
      // selected pair is one that carries the media.
      let s = null, reads = 0;
      for (;;) {
        s = await selected(p);
        if (relayed(s) || ++reads >= 40) break;
        await new Promise((r) => setTimeout(r, 250));
      }
      console.log(`# ${name} selected pair ${JSON.stringify(s)} (${relayed(s) ? reads + 1 : reads} reads)`);
      t.check(`media ${mode}: ${name}'s getStats() selects a relay pair, the relay reached over ${want.toUpperCase()}`,
              relayed(s), JSON.stringify(s));
      const shown = await t.until(p, () => document.getElementById('media-path').dataset.path !== '', null, 15000) &&
                    await pathShown(p);
      t.check(`media ${mode}: ${name}'s page shows "via relay (${want.toUpperCase()})"`,
              shown && shown.path === 'relay' && shown.protocol === want && shown.text === `· via relay (${want.toUpperCase()})`,
              JSON.stringify(shown));
    }
    await alice.click('#hangup-btn');
    t.check(`media ${mode}: hang-up returns both to idle and clears the path`,
            await t.until(bob, () => document.getElementById('call-state').dataset.state === 'idle', null, 15000) &&
            await t.until(alice, () => document.getElementById('media-path').dataset.path === '', null, 5000));
  } finally {
    await b.close();
  }
}, 200000);
