import { expect, type Page } from "@playwright/test";

export const PASSWORD = "a fine long passphrase";

/** The billing page's address, with no query: not `/login?next=/app/billing`, which also ends so. */
export const BILLING_PAGE = /^[^?]*\/app\/billing$/;

/** Signs a brand-new user up and waits for the billing page. */
export async function signUp(page: Page, prefix = "buyer"): Promise<string> {
  const email = `${prefix}-${Date.now()}-${Math.floor(Math.random() * 1e6)}@example.com`;
  await page.goto("/signup");
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password").fill(PASSWORD);
  await page.getByRole("button", { name: "Create account" }).click();
  await expect(page).toHaveURL(BILLING_PAGE);
  return email;
}

/** Buys the small pack through the simulated Checkout, from the billing page of a new user,
 * and waits for its 1,000 tokens. */
export async function buySmallPack(page: Page) {
  await page.getByRole("listitem").filter({ hasText: "Small pack" }).getByRole("button", { name: "Buy" }).click();
  await page.getByRole("button", { name: "Pay $10.00" }).click();
  await expect(page.getByTestId("balance")).toHaveText("1,000 tokens");
}

/** Waits until the WASM has taken over the billing page (it marks its `main` element). */
export async function hydrated(page: Page) {
  await expect(page.locator("main[data-hydrated]")).toHaveAttribute("data-hydrated", "true");
}

/** Before any page loads: keeps every `balance` event the page's stream delivers, in order, as
 * `window.balanceEvents`, to tell a balance that came by the stream from one that was polled. */
export async function recordBalanceStream(page: Page) {
  await page.addInitScript(() => {
    const seen: { data: string; at: number }[] = [];
    (window as any).balanceEvents = seen;
    const Original = window.EventSource;
    (window as any).EventSource = class extends Original {
      constructor(url: string | URL, init?: EventSourceInit) {
        super(url, init);
        this.addEventListener("balance", (event) =>
          seen.push({ data: (event as MessageEvent).data, at: performance.now() }),
        );
      }
    };
  });
}

/** The balances the page's stream has delivered so far. */
export async function streamedBalances(page: Page): Promise<number[]> {
  return page.evaluate(() =>
    ((window as any).balanceEvents as { data: string }[]).map((e) => JSON.parse(e.data).balance),
  );
}

/** Marks the document, to show later that no navigation or reload replaced it. */
export async function markDocument(page: Page) {
  await page.evaluate(() => ((window as any).sameDocument = true));
}

export async function stillSameDocument(page: Page) {
  expect(await page.evaluate(() => (window as any).sameDocument)).toBe(true);
}

/** Holds the WASM back (on this page and the ones after it) until the returned function is
 * called: forms post plainly meanwhile. Routing also turns the browser's cache off. */
export async function holdWasm(page: Page): Promise<() => void> {
  let release!: () => void;
  const held = new Promise<void>((resolve) => (release = resolve));
  await page.route("**/pkg/*.wasm", async (route) => {
    await held;
    await route.continue();
  });
  return release;
}

/** Collects the page's uncaught errors and console errors (a hydration panic is both), to
 * expect none. */
export function pageProblems(page: Page): string[] {
  const problems: string[] = [];
  page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
  page.on("console", (message) => {
    if (message.type() === "error") problems.push(`console error: ${message.text()}`);
  });
  return problems;
}
