// Browser test: a page's network drops for longer than the session expiry
// (its context goes offline); meanwhile another page tries to take its name
// and is told the name is reserved; when the network is back the first page
// renews its session, registers its name again with the reclaim key it kept
// in sessionStorage, and holds it. The driver (test_reclaim.py) checks in
// the database that the name's first session expired and its second holds
// the name.
// Usage: node reclaim.js BASE_URL EXPIRY_SECONDS
'use strict';
const t = require('./lib');
const base = process.argv[2];
const expiry = Number(process.argv[3]);

t.main(async () => {
  const b = await t.browser();
  try {
    const dora = await b.newPage(base + '/', 'dora');
    const eve = await b.newPage(base + '/', 'eve');
    t.check('reclaim: the page registers "dora"', await t.register(dora, 'dora'));
    const sid0 = await dora.evaluate(() => window.rtc.socket.sid);
    t.check('reclaim: the page keeps the name\'s reclaim key in sessionStorage',
            await dora.evaluate(() => (sessionStorage.getItem('longcall.reclaim.dora') || '').length === 43));
    await dora.context().setOffline(true);
    // eve tries every 2 s until the server no longer says "taken": once
    // dora's session expired, the name must be reserved for her.
    let shown = '';
    const end = Date.now() + (expiry + 30) * 1000;
    for (let i = 0; i < 60 && Date.now() < end; i++) {
      await eve.fill('#name', 'dora');
      await eve.click('#register-btn');
      // Until the answer: "reserved" shown, or (still "taken") a refusal logged.
      await t.until(eve, () => /reserved/.test(document.getElementById('me').textContent), null, 2000);
      shown = await eve.$eval('#me', (e) => e.textContent);
      if (/reserved/.test(shown) || (await eve.$eval('#me', (e) => e.dataset.name)) === 'dora') break;
    }
    t.check('reclaim: another page trying to take the name is told it is reserved', /reserved/.test(shown), shown);
    t.check('reclaim: the other page did not get the name',
            (await eve.$eval('#me', (e) => e.dataset.name)) !== 'dora');
    await dora.context().setOffline(false);
    const back = await t.until(dora, (s) => window.rtc.socket.sid && window.rtc.socket.sid !== s &&
                                           window.rtc.name === 'dora', sid0, 90000);
    t.check('reclaim: back online, the page renews its session and has its name again', back,
            await dora.evaluate(() => `sid ${window.rtc.socket.sid}, name ${window.rtc.name}, ` +
                                      document.getElementById('me').textContent));
    t.check('reclaim: the page shows it is registered as "dora"',
            (await dora.$eval('#me', (e) => e.dataset.name)) === 'dora');
    if (t.failures()) t.dumpLogs(b);
  } finally {
    await b.close();
  }
});
