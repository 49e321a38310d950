import { expect, test } from "@playwright/test";
import { BILLING_PAGE, holdWasm, pageProblems } from "./support/accounts";

// The development server seeds this user (DEMO_ACCOUNTS, see server/src/demo.rs).
const DEMO = { email: "demo@promptbloom.test", password: "sunflower-meadow-42" };

test("pages are rendered on the server", async ({ request }) => {
  const response = await request.get("/login", { maxRedirects: 0 });
  expect(response.status()).toBe(200);
  const html = await response.text();
  expect(html).toContain("<h1>Log in</h1>");
  // Named by their contents (cargo-leptos `hash-files`): `billing.<22 characters>.wasm`.
  expect(html).toMatch(/\/pkg\/billing\.[A-Za-z0-9_-]{22}\.wasm/);

  const billing = await request.get("/app/billing", { maxRedirects: 0 });
  expect(billing.status()).toBe(302);
  expect(billing.headers()["location"]).toMatch(/^\/login\?next=/);
});

test("the page hydrates, filters through its address, and a click gets a server function's answer", async ({ page }) => {
  const problems = pageProblems(page);

  await page.goto("/login?next=/app/billing");
  await page.getByLabel("Email").fill(DEMO.email);
  await page.getByLabel("Password").fill(DEMO.password);
  await page.getByRole("button", { name: "Log in" }).click();
  await expect(page).toHaveURL(BILLING_PAGE);
  // Server-rendered "false"; "true" only once the WASM has taken over the page's islands.
  await expect(page.locator("main[data-hydrated]")).toHaveAttribute("data-hydrated", "true");

  // Filtering the ledger is a plain GET form (the address holds the filter): the next page
  // comes filtered from the server, with only the named fields (no `&=` for the button), and
  // hydrates again.
  await page.getByLabel("Show").selectOption({ label: "Purchase" });
  await page.getByRole("button", { name: "Filter" }).click();
  await expect(page).toHaveURL(/\/app\/billing\?source=stripe_checkout$/);
  await expect(page.getByLabel("Show")).toHaveValue("stripe_checkout");
  await expect(page.locator("main[data-hydrated]")).toHaveAttribute("data-hydrated", "true");

  // A hydrated button calls its server function (a fetch, not a form post) and acts on the
  // answer: Checkout's address.
  const answer = page.waitForResponse((r) => r.url().includes("/api/billing/create-checkout-session"));
  await page.getByRole("listitem").filter({ hasText: "Small pack" }).getByRole("button", { name: "Buy" }).click();
  const response = await answer;
  expect(response.status()).toBe(200);
  expect(response.request().resourceType()).toBe("fetch");
  await expect(page).toHaveURL(/\/simulated-stripe\/checkout\/cs_/);
  expect(problems).toEqual([]);
});

test("an unknown page answers 404 with a way back", async ({ page }) => {
  const response = await page.goto("/no/such/page");
  expect(response?.status()).toBe(404);
  await expect(page.getByRole("link", { name: "Go to billing" })).toBeVisible();
});

test("a form posted before the page hydrated keeps its error once hydrated, and works", async ({ page }) => {
  const problems = pageProblems(page);
  // Hold the WASM back (on this page and the next) so the first post is a plain form post.
  const release = await holdWasm(page);
  await page.goto("/login?next=/app/billing", { waitUntil: "domcontentloaded" });
  await page.getByLabel("Email").fill(DEMO.email);
  await page.getByLabel("Password").fill("not the password");
  await page.getByRole("button", { name: "Log in" }).click();
  // The server sends the post back to the form, its error in the address (`__err`, `__path`).
  await expect(page).toHaveURL(/\/login\?.*__err=/);
  await expect(page.getByRole("alert")).toHaveText("Wrong email or password.");
  await expect(page.locator("main[data-hydrated]")).toHaveAttribute("data-hydrated", "false");

  release();
  await expect(page.locator("main[data-hydrated]")).toHaveAttribute("data-hydrated", "true");
  await expect(page.getByRole("alert")).toHaveText("Wrong email or password.");
  // The hydrated form answers the next try itself.
  await page.getByLabel("Email").fill(DEMO.email);
  await page.getByLabel("Password").fill(DEMO.password);
  await page.getByRole("button", { name: "Log in" }).click();
  await expect(page).toHaveURL(BILLING_PAGE);
  expect(problems).toEqual([]);
});

test("after two refused plain posts, the hydrated form shows the latest error, as the server did", async ({ page }) => {
  const problems = pageProblems(page);
  const release = await holdWasm(page);
  await page.goto("/signup", { waitUntil: "domcontentloaded" });
  // First refusal: a password too easy to guess.
  await page.getByLabel("Email").fill(`twice-${Date.now()}@example.com`);
  await page.getByLabel("Password").fill("password12345");
  await page.getByRole("button", { name: "Create account" }).click();
  await expect(page.getByRole("alert")).toContainText("too easy to guess");
  // Second, from the page the first came back to: the address now holds both errors.
  await page.getByLabel("Email").fill(DEMO.email);
  await page.getByLabel("Password").fill("a fine long passphrase");
  await page.getByRole("button", { name: "Create account" }).click();
  await expect(page.getByRole("alert")).toHaveText("An account with this email already exists. Log in instead.");
  expect(new URL(page.url()).searchParams.getAll("__err")).toHaveLength(2);

  release();
  await expect(page.locator("main[data-hydrated]")).toHaveAttribute("data-hydrated", "true");
  await expect(page.getByRole("alert")).toHaveText("An account with this email already exists. Log in instead.");
  expect(problems).toEqual([]);
});
