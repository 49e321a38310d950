// Time to a hydrated billing page (`main[data-hydrated="true"]`, from the start of the
// navigation) in Chromium, signed in as the demo user: on loopback, and on a link Chromium
// emulates at 10 Mbit/s each way with 40 ms of latency; each with a cold cache (a new browser
// context) and a warm one (the same context again). Prints the median and the slowest of
// RUNS runs of each. `scripts/hydration` builds the release site and starts the server.
import { chromium } from "@playwright/test";

const base = process.env.BASE_URL;
const runs = Number(process.env.RUNS ?? 5);
const DEMO = { email: "demo@promptbloom.test", password: "sunflower-meadow-42" };
const LINKS = {
  loopback: null,
  "10 Mbit/s, 40 ms": { latency: 40, throughput: (10 * 1000 * 1000) / 8 },
};

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync"],
});

/** A context signed in as the demo user, its pages timing their own hydration. */
async function signedIn() {
  const context = await browser.newContext({ baseURL: base });
  const login = await context.request.post("/api/auth/login", {
    form: { email: DEMO.email, password: DEMO.password },
    headers: { origin: base },
    maxRedirects: 0,
  });
  if (login.status() >= 400) throw new Error(`login: ${login.status()} ${await login.text()}`);
  await context.addInitScript(() => {
    new MutationObserver((_, observer) => {
      if (document.querySelector('main[data-hydrated="true"]')) {
        window.__hydratedAt = performance.now();
        observer.disconnect();
      }
    }).observe(document, { subtree: true, attributes: true, childList: true });
  });
  return context;
}

/** Milliseconds from the start of the navigation to the hydrated page. */
async function timeOne(page, link) {
  const cdp = await page.context().newCDPSession(page);
  await cdp.send("Network.enable");
  await cdp.send("Network.emulateNetworkConditions", link
    ? { offline: false, latency: link.latency, downloadThroughput: link.throughput, uploadThroughput: link.throughput }
    : { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });
  await page.goto("/app/billing");
  await page.waitForFunction(() => window.__hydratedAt !== undefined, null, { timeout: 60_000 });
  const at = await page.evaluate(() => window.__hydratedAt);
  const bytes = await page.evaluate(() =>
    performance.getEntriesByType("resource").concat(performance.getEntriesByType("navigation"))
      .reduce((sum, e) => sum + (e.transferSize ?? 0), 0));
  await cdp.detach();
  return { ms: at, bytes };
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
console.log(`${"link".padEnd(18)}${"cache".padEnd(7)}${"median".padStart(10)}${"slowest".padStart(10)}${"on the wire".padStart(14)}`);
for (const [name, link] of Object.entries(LINKS)) {
  const cold = [], warm = [];
  let coldBytes = 0, warmBytes = 0;
  for (let i = 0; i < runs; i++) {
    const context = await signedIn();
    const page = await context.newPage();
    const first = await timeOne(page, link);
    const second = await timeOne(page, link);
    cold.push(first.ms); warm.push(second.ms);
    coldBytes = first.bytes; warmBytes = second.bytes;
    await context.close();
  }
  for (const [cache, times, bytes] of [["cold", cold, coldBytes], ["warm", warm, warmBytes]]) {
    console.log(`${name.padEnd(18)}${cache.padEnd(7)}${(median(times).toFixed(0) + " ms").padStart(10)}${(Math.max(...times).toFixed(0) + " ms").padStart(10)}${((bytes / 1024).toFixed(1) + " KiB").padStart(14)}`);
  }
}
await browser.close();
