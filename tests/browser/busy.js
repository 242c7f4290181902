// Busy database (run by test_busy.py): two LongPollSocket clients in one
// page, in a call; a `sqlite3` shell holds a write transaction (BEGIN
// IMMEDIATE) on the server's database for 10 s while each client sends N
// candidates. The server answers those sends 503 with Retry-After; the
// library retries the batch with its batch id. After the shell commits,
// every candidate arrives exactly once, in order, on both sides.
// Prints 6 results. Usage: node busy.js BASE_URL DB_PATH N
'use strict';
const { spawn } = require('child_process');
const fs = require('fs');
const t = require('./lib');
const [base, db, nArg] = process.argv.slice(2);
const N = parseInt(nArg || '20', 10);
const LOCK_MS = 10000;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// A sqlite3 shell holding the write lock, as the database file's owner;
// resolves once it printed "locked".
function holdLock() {
  const st = fs.statSync(db);
  const p = spawn('sqlite3', ['-batch', db], { uid: st.uid, gid: st.gid, stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  const ready = new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), 15000);
    p.stdout.on('data', (d) => {
      out += d;
      if (out.includes('locked')) { clearTimeout(timer); resolve(true); }
    });
    p.on('exit', () => { clearTimeout(timer); resolve(false); });
  });
  p.stdin.write(".timeout 10000\nBEGIN IMMEDIATE;\nSELECT 'locked';\n");
  return { proc: p, ready,
           release() { try { p.stdin.write('COMMIT;\n.quit\n'); p.stdin.end(); } catch (e) { /* gone */ } },
           kill() { try { p.kill('SIGKILL'); } catch (e) { /* gone */ } } };
}

t.main(async () => {
  const b = await t.browser();
  let lock = null;
  try {
    const page = await b.newPage(base + '/', 'busy');
    // Two sockets in a call, each recording what it received.
    const setUp = await page.evaluate((url) => new Promise((resolve) => {
      const mk = (label) => {
        const s = new LongPollSocket(url);
        s.label = label;
        s.recv = [];
        s.errors = [];
        s.sessions = 0;
        s.waiters = [];
        s.addEventListener('session', () => { s.sessions++; });
        s.addEventListener('error', (e) => s.errors.push(e.message || 'error'));
        s.taken = new Set();  // messages next() handed out already
        s.onmessage = (e) => {
          const m = JSON.parse(e.data);
          s.recv.push(m);
          const w = s.waiters.find((x) => x.id === m.id);
          if (w) { s.waiters.splice(s.waiters.indexOf(w), 1); s.taken.add(m); w.resolve(m); }
        };
        // The next message with this id not handed out yet (perhaps one
        // that already arrived).
        s.next = (id) => new Promise((r) => {
          const m = s.recv.find((x) => x.id === id && !s.taken.has(x));
          if (m) { s.taken.add(m); r(m); } else s.waiters.push({ id, resolve: r });
        });
        return s;
      };
      const A = mk('busy-a'), B = mk('busy-b');
      window.__busy = { A, B };
      (async () => {
        A.send(JSON.stringify({ id: 'register', name: 'busy-a' }));
        B.send(JSON.stringify({ id: 'register', name: 'busy-b' }));
        const ra = await A.next('registerResponse'), rb = await B.next('registerResponse');
        A.send(JSON.stringify({ id: 'call', to: 'busy-b', sdpOffer: 'o' }));
        await B.next('incomingCall');
        B.send(JSON.stringify({ id: 'incomingCallResponse', from: 'busy-a', callResponse: 'accept', sdpOffer: 'a' }));
        const cr = await A.next('callResponse');
        await B.next('startCommunication');
        resolve({ ok: ra.response === 'accepted' && rb.response === 'accepted' && cr.response === 'accepted',
                  ra, rb, cr });
      })();
      setTimeout(() => resolve({ ok: false, why: 'timed out' }), 20000);
    }), base + '/rtc');
    t.check('busy: two LongPollSocket clients register and are in a call', setUp.ok, JSON.stringify(setUp));

    lock = holdLock();
    const held = await lock.ready;
    t.check('busy: a sqlite3 shell holds the write lock (BEGIN IMMEDIATE)', held);
    const lockedAt = Date.now();
    // While locked: each client sends N candidates, one every 100 ms.
    await page.evaluate((n) => new Promise((resolve) => {
      const { A, B } = window.__busy;
      let i = 0;
      const tick = setInterval(() => {
        A.send(JSON.stringify({ id: 'onIceCandidate', candidate: { from: 'a', n: i } }));
        B.send(JSON.stringify({ id: 'onIceCandidate', candidate: { from: 'b', n: i } }));
        if (++i >= n) { clearInterval(tick); resolve(); }
      }, 100);
    }), N);
    await sleep(Math.max(0, lockedAt + LOCK_MS - Date.now()));
    const during = await page.evaluate(() => {
      const { A, B } = window.__busy;
      const c = (s) => s.recv.filter((m) => m.id === 'iceCandidate').length;
      return { aGot: c(A), bGot: c(B), aRetries: A.stats.retries, bRetries: B.stats.retries,
               aQueued: A.bufferedAmount, bQueued: B.bufferedAmount };
    });
    console.log('# while locked: ' + JSON.stringify(during));
    t.check(`busy: while locked no candidate got through and both libraries retried (retries ${during.aRetries}, ${during.bRetries})`,
            held && during.aGot === 0 && during.bGot === 0 && during.aRetries > 0 && during.bRetries > 0,
            JSON.stringify(during));
    lock.release();
    const exited = await Promise.race([new Promise((r) => lock.proc.on('exit', () => r(true))), sleep(10000)]);
    if (!exited) lock.kill();

    // Afterwards: everything arrives (bounded), then a little longer for duplicates.
    const all = await t.until(page, (n) => {
      const { A, B } = window.__busy;
      const c = (s) => s.recv.filter((m) => m.id === 'iceCandidate').length;
      return c(A) >= n && c(B) >= n && A.bufferedAmount === 0 && B.bufferedAmount === 0;
    }, N, 60000);
    await sleep(1500);
    const res = await page.evaluate(() => {
      const { A, B } = window.__busy;
      const c = (s) => s.recv.filter((m) => m.id === 'iceCandidate').map((m) => m.candidate);
      const seqs = (s) => s.recv.map((m) => m.seq);
      return { a: c(A), b: c(B), aSeqs: seqs(A), bSeqs: seqs(B), aStats: A.stats, bStats: B.stats,
               errors: A.errors.concat(B.errors), sessions: [A.sessions, B.sessions],
               states: [A.readyState, B.readyState] };
    });
    console.log('# after the commit: a ' + JSON.stringify(res.aStats) + ', b ' + JSON.stringify(res.bStats));
    const want = (from) => JSON.stringify(Array.from({ length: N }, (_, i) => ({ from, n: i })));
    t.check(`busy: after the commit busy-b received busy-a's ${N} candidates exactly once, in order`,
            all && JSON.stringify(res.b) === want('a'), JSON.stringify(res.b).slice(0, 400));
    t.check(`busy: after the commit busy-a received busy-b's ${N} candidates exactly once, in order`,
            all && JSON.stringify(res.a) === want('b'), JSON.stringify(res.a).slice(0, 400));
    const contiguous = (q) => q.every((x, i) => i === 0 || x === q[i - 1] + 1);
    t.check('busy: both sockets kept their session (no error, no renewal, still OPEN, seqs contiguous)',
            res.errors.length === 0 && res.sessions.join() === '1,1' && res.states.join() === '1,1' &&
            contiguous(res.aSeqs) && contiguous(res.bSeqs), JSON.stringify(res).slice(0, 400));
    if (t.failures()) t.dumpLogs(b, 40);
  } finally {
    if (lock) lock.kill();
    await b.close();
  }
});
