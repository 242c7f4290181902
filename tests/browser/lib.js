// Helpers of the browser scenarios: Chromium from Debian through
// playwright-core, the page's DOM hooks, `ok - ` / `not ok - ` lines.
// Every wait is bounded; nothing asserts a duration.
'use strict';
const { chromium } = require('playwright-core');

let failed = 0;
function check(name, cond, why) {
  if (cond) console.log('ok - ' + name);
  else { failed++; console.log('not ok - ' + name + ': ' + (why || 'failed')); }
  return !!cond;
}
function failures() { return failed; }

// Chromium's flags. The first group is what the machine notes say keeps a
// headless Chromium off the closed network; the media flags give fake
// camera and microphone without a prompt.
// WebRTC between two pages of one host. Chromium gathers no candidate on
// loopback unless told to: where 127.0.0.1 is the only address (checked in
// a network namespace holding only `lo`: both connections stay "new"),
// --allow-loopback-in-peer-connection is what makes the call connect. With
// camera permission granted (the fake UI grants it) Chromium already offers
// raw host addresses; a page without it would offer mDNS ".local" names that
// nothing here resolves, so WebRtcHideLocalIpsWithMdns is turned off too
// (not needed by the scenarios as they are: kept so that a receive-only page
// still connects).
function chromiumArgs(extra) {
  return [
    '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream',
    '--allow-loopback-in-peer-connection',
    '--disable-features=WebRtcHideLocalIpsWithMdns',
  ].concat(extra || []);
}

// Launches Chromium (playwright-core gives each launch a fresh, temporary
// --user-data-dir) and hands out one isolated context per page, like two
// people's browsers. Returns {newPage, close, logs}.
async function browser(extraArgs) {
  const b = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: chromiumArgs(extraArgs),
    timeout: 60000,
  });
  const logs = [];
  return {
    browser: b,
    logs,
    async newPage(url, label) {
      const ctx = await b.newContext({ viewport: { width: 1100, height: 800 } });
      const page = await ctx.newPage();
      page.label = label || 'page';
      page.on('console', (m) => logs.push(`[${page.label}] console.${m.type()}: ${m.text()}`));
      page.on('pageerror', (e) => logs.push(`[${page.label}] pageerror: ${e.message}`));
      // Content-Security-Policy violations, as the page itself sees them
      // (cspReport): a blocked script, style, request or frame.
      await page.addInitScript(() => {
        window.__cspViolations = [];
        document.addEventListener('securitypolicyviolation', (e) => {
          window.__cspViolations.push(`${e.effectiveDirective} blocked ${e.blockedURI || '(inline)'}` +
                                      (e.sourceFile ? ` at ${e.sourceFile}:${e.lineNumber}` : ''));
        });
      });
      page.mainResponse = await page.goto(url, { timeout: 30000 });
      await page.waitForFunction(() => window.rtc && window.rtc.socket && window.rtc.socket.readyState === 1,
                                 null, { timeout: 30000 });
      return page;
    },
    async close() { try { await b.close(); } catch (e) { /* already gone */ } },
  };
}

// Waits until fn(arg) is truthy in the page; returns true, or false on timeout.
async function until(page, fn, arg, timeout) {
  try {
    await page.waitForFunction(fn, arg, { timeout: timeout || 20000, polling: 100 });
    return true;
  } catch (e) {
    return false;
  }
}

async function register(page, name) {
  await page.fill('#name', name);
  await page.click('#register-btn');
  return until(page, (n) => document.getElementById('me').dataset.name === n, name, 20000);
}

const callState = (page) => page.$eval('#call-state', (e) => e.dataset.state);
const endReason = (page) => page.$eval('#call-end', (e) => (e.hidden ? '' : e.dataset.reason));
const endText = (page) => page.$eval('#call-end', (e) => e.textContent);

// a calls b by typing the name; b accepts. Returns true when both pages'
// RTCPeerConnection is connected.
async function placeCall(a, b, bName, timeout) {
  await a.fill('#callee', bName);
  await a.click('#call-btn');
  if (!await until(b, () => !document.getElementById('incoming').hidden, null, 20000)) return 'no incoming call shown';
  await b.click('#accept-btn');
  const conn = () => window.rtc.pc && window.rtc.pc.connectionState === 'connected';
  if (!await until(a, conn, null, timeout || 30000)) return 'caller not connected: ' + await a.evaluate(() => window.rtc.pc && window.rtc.pc.connectionState);
  if (!await until(b, conn, null, timeout || 30000)) return 'callee not connected: ' + await b.evaluate(() => window.rtc.pc && window.rtc.pc.connectionState);
  return '';
}

// The remote <video> shows frames: a size, and currentTime moving on.
async function remoteVideoPlays(page, timeout) {
  const ok = await until(page, () => {
    const v = document.getElementById('remote-video');
    if (!(v.videoWidth > 0)) return false;
    if (window.__t0 === undefined) { window.__t0 = v.currentTime; return false; }
    return v.currentTime > window.__t0;
  }, null, timeout || 20000);
  const info = await page.evaluate(() => {
    const v = document.getElementById('remote-video');
    const r = { w: v.videoWidth, h: v.videoHeight, t: v.currentTime };
    delete window.__t0;
    return r;
  });
  return { ok, info };
}

// The page's Content-Security-Policy header (as served, '' if none) and the
// violations the page reported since it loaded.
async function cspReport(page) {
  const headers = page.mainResponse ? await page.mainResponse.allHeaders() : {};
  const violations = await page.evaluate(() => window.__cspViolations || ['(not recorded)']);
  return { policy: headers['content-security-policy'] || '', violations };
}

function dumpLogs(b, n) {
  for (const l of b.logs.slice(-(n || 40))) console.error(l);
}

// A promise that settles within ms whatever p does (a crashed page's
// calls may never answer).
function bounded(p, ms) {
  return Promise.race([Promise.resolve(p).catch(() => {}), new Promise((r) => setTimeout(r, ms))]);
}

// Runs the async main; prints a failure line when it throws; bounded.
function main(fn, limitMs) {
  limitMs = limitMs || 240000;
  const timer = setTimeout(() => {
    check('scenario finished in its time limit', false, `still running after ${limitMs / 1000} s`);
    process.exit(1);
  }, limitMs);
  fn().then(() => {
    clearTimeout(timer);
    process.exit(failed ? 1 : 0);
  }, (e) => {
    clearTimeout(timer);
    check('scenario ran without an exception', false, (e && e.stack) || String(e));
    process.exit(1);
  });
}

module.exports = { check, failures, browser, until, register, callState, endReason, endText,
                   placeCall, remoteVideoPlays, cspReport, dumpLogs, main, bounded, chromiumArgs };
