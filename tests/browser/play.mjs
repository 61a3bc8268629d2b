// Drives Debian's Chromium (headless, through playwright-core) against a running hlss, for
// tests/browser.rs. Usage: node play.mjs SCENARIO BASE_URL OPTIONS_JSON
//   index  - open the listing, click a file, play it on the player page; keyboard; screenshot
//   seek   - open a long file's player page, play, seek to 80 %, keep playing
//   seeks  - open a long file's player page and seek to random places (fixed seed) for a while,
//            recording hls.js fatal errors and whether playback advanced after each seek
//   cors   - a page on another origin plays the playlist with hls.js served by hlss
//   end    - open a file's player page, play, seek to some seconds before the end and play
//            until the video element says it ended
//   tracks - open a film's player page, switch to its second audio track mid-play through the
//            menu, turn subtitles on, read the cue shown at its time, reload: choices remembered
// Prints "RESULT {json}" on success; exits 1 with a reason otherwise.
import { chromium } from 'playwright-core';
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';

const [scenario, base, optionsJson] = process.argv.slice(2);
const options = JSON.parse(optionsJson || '{}');
const executablePath = options.chromium || '/usr/bin/chromium';

class Failure extends Error {}
function check(condition, message) {
  if (!condition) throw new Failure(message);
}

const browser = await chromium.launch({
  executablePath,
  headless: true,
  // Without the background-networking flags a closed network refuses many connections.
  args: [
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
  ],
  timeout: 60_000,
});
// A certificate made at test time is trusted for https runs (options.https).
const context = await browser.newContext({
  viewport: { width: 1000, height: 760 },
  ignoreHTTPSErrors: !!options.https,
});
const page = await context.newPage();
const log = [];
page.on('console', (m) => log.push(`console.${m.type()}: ${m.text()}`));
page.on('pageerror', (e) => log.push(`pageerror: ${e.message}`));
page.on('requestfailed', (r) => log.push(`requestfailed: ${r.url()} ${r.failure()?.errorText}`));

/** Player state as the page sees it. */
async function playerState() {
  return page.evaluate(() => ({
    engine: window.hlssPlayer && window.hlssPlayer.engine,
    fatal: window.hlssPlayer && window.hlssPlayer.fatal,
    warnings: window.hlssPlayer ? window.hlssPlayer.warnings.slice() : [],
    currentTime: document.getElementById('video').currentTime,
    duration: document.getElementById('video').duration,
    paused: document.getElementById('video').paused,
    videoWidth: document.getElementById('video').videoWidth,
    status: document.getElementById('status').textContent,
    durationText: document.getElementById('duration').textContent,
  }));
}

/** Waits until the player's media time passes `seconds`, failing early on a fatal error. */
async function playPast(seconds, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  let state;
  for (;;) {
    state = await playerState();
    check(!state.fatal, `player failed: ${state.fatal}`);
    if (state.currentTime > seconds) return state;
    if (Date.now() > deadline) {
      throw new Failure(`media time ${state.currentTime.toFixed(2)} s did not pass ${seconds} s ` +
        `within ${timeoutMs} ms: ${JSON.stringify(state)}`);
    }
    await page.waitForTimeout(200);
  }
}

/** Distinct colours (quantised) in a PNG, decoded by the browser itself. */
async function distinctColours(png) {
  const scratch = await context.newPage();
  try {
    const url = 'data:image/png;base64,' + png.toString('base64');
    return await scratch.evaluate(async (src) => {
      const img = new Image();
      img.src = src;
      await img.decode();
      const canvas = document.createElement('canvas');
      canvas.width = img.width;
      canvas.height = img.height;
      const g = canvas.getContext('2d');
      g.drawImage(img, 0, 0);
      const pixels = g.getImageData(0, 0, img.width, img.height).data;
      const seen = new Set();
      for (let i = 0; i < pixels.length; i += 4 * 7) {
        seen.add((pixels[i] >> 4) << 8 | (pixels[i + 1] >> 4) << 4 | (pixels[i + 2] >> 4));
      }
      return seen.size;
    }, url);
  } finally {
    await scratch.close();
  }
}

/** Distinct colours in the video's current frame, drawn onto a canvas in the page. */
async function frameColours() {
  return page.evaluate(() => {
    const video = document.getElementById('video');
    const canvas = document.createElement('canvas');
    canvas.width = video.videoWidth;
    canvas.height = video.videoHeight;
    const g = canvas.getContext('2d');
    g.drawImage(video, 0, 0);
    const pixels = g.getImageData(0, 0, canvas.width, canvas.height).data;
    const seen = new Set();
    for (let i = 0; i < pixels.length; i += 4 * 3) {
      seen.add((pixels[i] >> 4) << 8 | (pixels[i + 1] >> 4) << 4 | (pixels[i + 2] >> 4));
    }
    return seen.size;
  });
}

async function index() {
  await page.goto(base + '/', { waitUntil: 'load' });
  // A person clicks the file's name in the listing.
  await Promise.all([
    page.waitForURL(/\/watch\//),
    page.getByRole('link', { name: options.file, exact: true }).click(),
  ]);
  check(page.url() === base + options.watchPath,
    `clicking ${options.file} opened ${page.url()}, wanted ${base + options.watchPath}`);
  check((await page.locator('h1').textContent()) === options.file, 'the page names the file');
  const played = await playPast(4, 40_000);
  check(played.engine === 'hls.js', `engine ${played.engine}, wanted hls.js in Chromium`);
  check(/^0:0[5-7]$/.test(played.durationText), `duration shown as ${played.durationText}`);
  check(played.videoWidth > 0, 'no video size');
  const colours = await frameColours();
  check(colours > 20, `the video frame has only ${colours} colours`);

  // Keyboard: K pauses and resumes, wherever focus is.
  await page.keyboard.press('k');
  await page.waitForFunction(() => document.getElementById('video').paused, null, { timeout: 5000 });
  await page.keyboard.press('k');
  await page.waitForFunction(() => !document.getElementById('video').paused, null, { timeout: 5000 });

  const shot = await page.screenshot({ fullPage: true });
  fs.mkdirSync(path.dirname(options.screenshot), { recursive: true });
  fs.writeFileSync(options.screenshot, shot);
  const shotColours = await distinctColours(shot);
  check(shotColours > 20, `the screenshot has only ${shotColours} colours: blank?`);

  // The back link leads to the folder.
  const back = await page.locator('#back').getAttribute('href');
  check(back === options.folder, `back link ${back}, wanted ${options.folder}`);

  // A name that needs escaping everywhere shows as itself and plays.
  let awkward = null;
  if (options.awkwardPath) {
    await page.goto(base + options.awkwardPath, { waitUntil: 'load' });
    const shown = await page.locator('h1').textContent();
    check(shown === options.awkwardName, `awkward name shown as ${JSON.stringify(shown)}`);
    awkward = (await playPast(1, 40_000)).currentTime;
  }
  return {
    mediaTime: played.currentTime,
    duration: played.duration,
    durationText: played.durationText,
    status: played.status,
    warnings: played.warnings,
    frameColours: colours,
    screenshotColours: shotColours,
    screenshotBytes: shot.length,
    awkwardMediaTime: awkward,
  };
}

async function seek() {
  await page.goto(base + options.watchPath, { waitUntil: 'load' });
  const before = await playPast(2, 40_000);
  check(before.duration > 60, `duration ${before.duration}`);
  const target = before.duration * 0.8;
  await page.evaluate((t) => { document.getElementById('video').currentTime = t; }, target);
  const started = Date.now();
  const after = await playPast(target + 3, 60_000);
  const frame = await frameColours();
  check(frame > 20, `the frame after the seek has only ${frame} colours`);
  return {
    beforeSeek: before.currentTime,
    duration: before.duration,
    seekTo: target,
    reached: after.currentTime,
    msToPlay3sAfterSeek: Date.now() - started,
    warnings: after.warnings,
    frameColours: frame,
  };
}

/** A number in [0, 1) from xorshift32, so that every run seeks to the same places. */
function generator(seed) {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 4294967296;
  };
}

async function seeks() {
  await page.goto(base + options.watchPath, { waitUntil: 'load' });
  // Every fatal hls.js error, also the first media error, which the page recovers from; one that
  // makes the page give up also shows in hlssPlayer.fatal.
  await page.evaluate(() => {
    window.fatalErrors = [];
    window.hlssPlayer.hls.on(Hls.Events.ERROR, (_name, d) => {
      if (d.fatal) {
        window.fatalErrors.push(`${d.type}: ${d.details}` +
          (d.response && d.response.code ? ` (HTTP ${d.response.code})` : '') +
          ` at ${document.getElementById('video').currentTime.toFixed(2)} s`);
      }
    });
  });
  const first = await playPast(1, 40_000);
  check(first.duration > 60, `duration ${first.duration}`);
  const random = generator(options.seed);
  const log = [];
  const end = Date.now() + options.seconds * 1000;
  let state = first;
  while (Date.now() < end && !state.fatal) {
    // Anywhere but the last 10 s, where playback could end before it advanced a second.
    const target = random() * (first.duration - 10);
    const started = Date.now();
    await page.evaluate((t) => { document.getElementById('video').currentTime = t; }, target);
    let progressed = false;
    while (Date.now() - started < options.perSeekMs) {
      state = await playerState();
      if (state.fatal) break;
      if (state.currentTime >= target + 1) {
        progressed = true;
        break;
      }
      await page.waitForTimeout(100);
    }
    log.push({ to: +target.toFixed(2), progressed, ms: Date.now() - started,
      at: +state.currentTime.toFixed(2) });
    // Watch a moment, as a person does before jumping again.
    await page.waitForTimeout(random() * 2000);
  }
  const fatalErrors = await page.evaluate(() => window.fatalErrors.slice());
  state = await playerState();
  return {
    seekCount: log.length,
    progressedCount: log.filter((s) => s.progressed).length,
    fatalCount: fatalErrors.length,
    pageFatal: state.fatal,
    fatalErrors,
    // The last ones: a server that loses segments makes hls.js warn about every retry.
    warnings: state.warnings.slice(-12),
    seekLog: log,
  };
}

async function cors() {
  // Another origin: same host, another port, serving one page that uses hlss's hls.js and playlist.
  const html = `<!DOCTYPE html><html><head><meta charset="utf-8"><title>elsewhere</title>
<script src="${base}/assets/hls.min.js"></script></head><body>
<video id="video" muted controls></video><p id="status"></p><p id="duration"></p>
<script>
  window.hlssPlayer = { engine: 'hls.js', fatal: null, warnings: [] };
  const video = document.getElementById('video');
  const hls = new Hls();
  hls.on(Hls.Events.ERROR, (_e, d) => {
    const text = d.type + ': ' + d.details + (d.response ? ' HTTP ' + d.response.code : '');
    if (d.fatal) window.hlssPlayer.fatal = text; else window.hlssPlayer.warnings.push(text);
  });
  hls.on(Hls.Events.MANIFEST_PARSED, () => video.play());
  hls.loadSource(${JSON.stringify(base + options.playlistPath)});
  hls.attachMedia(video);
</script></body></html>`;
  const server = http.createServer((req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
    res.end(html);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const origin = `http://127.0.0.1:${server.address().port}`;
  try {
    await page.goto(origin + '/', { waitUntil: 'load' });
    check(await page.evaluate(() => typeof Hls === 'function'), 'hls.js did not load from hlss');
    const played = await playPast(3, 40_000);
    // Listings are not for other origins: the browser must refuse to let the page read one.
    const listing = await page.evaluate((u) => fetch(u).then(() => 'readable', () => 'blocked'),
      base + '/');
    check(listing === 'blocked', `another origin could read the listing (${listing})`);
    return { origin, mediaTime: played.currentTime, warnings: played.warnings, listing };
  } finally {
    server.close();
  }
}

async function end() {
  await page.goto(base + options.watchPath, { waitUntil: 'load' });
  const before = await playPast(1, 40_000);
  const target = Math.max(before.currentTime, before.duration - options.lastSeconds);
  await page.evaluate((t) => { document.getElementById('video').currentTime = t; }, target);
  const deadline = Date.now() + 60_000;
  let state;
  for (;;) {
    state = await playerState();
    check(!state.fatal, `player failed: ${state.fatal}`);
    const ended = await page.evaluate(() => document.getElementById('video').ended);
    if (ended) break;
    check(Date.now() < deadline, `not ended within 60 s: ${JSON.stringify(state)}`);
    await page.waitForTimeout(200);
  }
  return {
    duration: before.duration,
    seekTo: target,
    endedAt: state.currentTime,
    videoWidth: state.videoWidth,
    warnings: state.warnings,
  };
}

/** Texts of the cues showing now, in the video's showing text track. */
async function shownCues() {
  return page.evaluate(() => {
    const video = document.getElementById('video');
    const showing = Array.from(video.textTracks).find((t) => t.mode === 'showing');
    if (!showing || !showing.activeCues) return null;
    return Array.from(showing.activeCues).map((c) => c.text);
  });
}

async function tracks() {
  // Responses for the second audio rendition's segments, with when they ended.
  const audioSegments = [];
  page.on('requestfinished', (r) => {
    if (/\/audio1-\d+\.ts/.test(r.url())) audioSegments.push({ url: r.url(), at: Date.now() });
  });
  await page.goto(base + options.watchPath, { waitUntil: 'load' });
  await playPast(2, 40_000);
  const menus = await page.evaluate(() => ({
    audio: Array.from(document.querySelectorAll('#audio-track option')).map((o) => o.textContent),
    subtitles: Array.from(document.querySelectorAll('#subtitle-track option')).map((o) => o.textContent),
    audioHidden: document.getElementById('audio-track').parentNode.hidden,
  }));
  check(!menus.audioHidden && menus.audio.length === options.audioTracks,
    `audio menu ${JSON.stringify(menus)}`);
  check(menus.subtitles.length === options.subtitleTracks + 1, `subtitle menu ${JSON.stringify(menus)}`);

  // Mid-play, a person picks the second audio track.
  await page.evaluate(() => {
    window.hlssWaits = 0;
    document.getElementById('video').addEventListener('waiting', () => { window.hlssWaits += 1; });
  });
  const switchedAt = Date.now();
  const switchedFrom = (await playerState()).currentTime;
  await page.selectOption('#audio-track', '1');
  await page.waitForFunction(() => window.hlssPlayer.audioTrack === 1, null, { timeout: 10_000 });
  const after = await playPast(switchedFrom + 3, 30_000);
  const afterSwitch = audioSegments.filter((r) => r.at >= switchedAt);
  check(afterSwitch.length > 0, 'no segment of the second audio track was fetched');
  check(afterSwitch.length === audioSegments.length,
    `the second track was fetched before anyone chose it: ${JSON.stringify(audioSegments)}`);
  const firstSegmentMs = afterSwitch[0].at - switchedAt;
  const waits = await page.evaluate(() => window.hlssWaits);

  // Subtitles on, then the cue due at options.cueAt must show then, and not before.
  await page.selectOption('#subtitle-track', '0');
  const cueAt = options.cueAt;
  await page.evaluate((t) => { document.getElementById('video').currentTime = t; }, cueAt - 1.5);
  let early = null;
  let shown = null;
  const deadline = Date.now() + 30_000;
  for (;;) {
    const state = await playerState();
    check(!state.fatal, `player failed: ${state.fatal}`);
    const cues = await shownCues();
    if (cues && cues.length) {
      shown = { time: state.currentTime, cues };
      break;
    }
    if (state.currentTime > cueAt + 1.5) break;
    check(Date.now() < deadline, `no cue by ${JSON.stringify(state)}`);
    await page.waitForTimeout(50);
  }
  check(shown !== null, `no cue shown around ${cueAt} s`);
  if (shown.time < cueAt - 0.3) early = shown;

  // The choices outlive the page.
  await page.reload({ waitUntil: 'load' });
  await playPast(1, 40_000);
  for (const [what, want] of [['audioTrack', 1], ['subtitleTrack', 0]]) {
    await page.waitForFunction(([w, v]) => window.hlssPlayer[w] === v, [what, want],
      { timeout: 10_000 }).catch(() => {});
  }
  const remembered = await page.evaluate(() => ({
    audio: document.getElementById('audio-track').value,
    subtitles: document.getElementById('subtitle-track').value,
    audioTrack: window.hlssPlayer.audioTrack,
    subtitleTrack: window.hlssPlayer.subtitleTrack,
  }));
  return {
    menus,
    firstSegmentMs,
    waits,
    reached: after.currentTime,
    switchedFrom,
    cue: shown,
    early,
    remembered,
    warnings: after.warnings,
  };
}

/** Logs in through the form (after a wrong try), plays, makes a link with "Copy a link", logs out. */
async function login() {
  await page.goto(base + options.watchPath, { waitUntil: 'load' });
  const loginUrl = page.url();
  check(loginUrl.startsWith(base + '/login?next='), `not sent to the login form: ${loginUrl}`);
  await page.fill('#user', options.user);
  await page.fill('#password', options.password + 'x');
  await Promise.all([page.waitForNavigation(), page.click('#login')]);
  const refused = (await page.locator('#message').textContent()) || '';
  check(refused.includes('Wrong name or password'), `a wrong password showed ${JSON.stringify(refused)}`);
  await page.fill('#user', options.user);
  await page.fill('#password', options.password);
  await Promise.all([page.waitForNavigation(), page.click('#login')]);
  check(page.url() === base + options.watchPath, `after logging in the browser is at ${page.url()}`);
  const played = await playPast(2, 40_000);
  await page.selectOption('#share-expires', '1h');
  await page.click('#share');
  await page.waitForFunction(() => window.hlssPlayer.sharedLink, null, { timeout: 10_000 });
  const sharedLink = await page.evaluate(() => window.hlssPlayer.sharedLink);
  const sharedPage = await page.evaluate(() => window.hlssPlayer.sharedPage);
  const shown = await page.inputValue('#share-url');
  check(shown === sharedLink, `the field shows ${shown}, the link is ${sharedLink}`);
  check(sharedPage.startsWith(base + options.watchPath + '?t='), `the page link is ${sharedPage}`);
  // A friend's browser: no cookie, only the page link. It plays there, and nothing else opens.
  const stranger = await browser.newContext({ ignoreHTTPSErrors: !!options.https });
  const friend = await stranger.newPage();
  friend.on('pageerror', (e) => log.push(`friend pageerror: ${e.message}`));
  await friend.goto(sharedPage, { waitUntil: 'load' });
  check(friend.url() === sharedPage, `the friend landed on ${friend.url()}`);
  const friendDeadline = Date.now() + 40_000;
  let friendTime = 0;
  while (friendTime <= 2) {
    check(Date.now() < friendDeadline, 'the friend\'s page did not play');
    await friend.waitForTimeout(200);
    friendTime = await friend.evaluate(() => {
      if (window.hlssPlayer && window.hlssPlayer.fatal) throw new Error(window.hlssPlayer.fatal);
      return document.getElementById('video').currentTime;
    });
  }
  const friendShare = await friend.evaluate(() => !document.querySelector('.share').hidden);
  check(!friendShare, 'a link holder was offered to make links');
  const withoutLink = await stranger.request.get(base + options.watchPath,
    { maxRedirects: 0, headers: { Accept: 'text/html' } });
  const listing = await stranger.request.get(base + '/?t=' + sharedPage.split('?t=')[1], { maxRedirects: 0 });
  await stranger.close();
  check(withoutLink.status() === 303, `without the link the page answered ${withoutLink.status()}`);
  check(listing.status() === 403, `the link opened the listing: ${listing.status()}`);
  // Log out from a listing; the player page asks for a login again.
  await page.goto(base + '/', { waitUntil: 'load' });
  await Promise.all([page.waitForNavigation(), page.click('#logout')]);
  await page.goto(base + options.watchPath, { waitUntil: 'load' });
  const afterLogout = page.url();
  check(afterLogout.startsWith(base + '/login?next='), `after logging out the page opened: ${afterLogout}`);
  return { loginUrl, playedTo: played.currentTime, sharedLink, sharedPage, friendTime, afterLogout,
    warnings: played.warnings };
}

try {
  const scenarios = { index, seek, seeks, cors, end, tracks, login };
  check(scenarios[scenario], `unknown scenario ${scenario}`);
  const result = await scenarios[scenario]();
  console.log('RESULT ' + JSON.stringify(result));
  await browser.close();
} catch (err) {
  console.error(`FAILED ${scenario}: ${err instanceof Failure ? err.message : err.stack}`);
  console.error('--- browser log (tail)\n' + log.slice(-40).join('\n'));
  await browser.close().catch(() => {});
  process.exit(1);
}
