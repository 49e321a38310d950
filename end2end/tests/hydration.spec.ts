import { expect, test } from "@playwright/test";

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

test("the page hydrates and a click gets a server function's answer", async ({ page }) => {
  const problems: string[] = [];
  page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
  page.on("console", (message) => {
    if (message.type() === "error") problems.push(`console error: ${message.text()}`);
  });

  await page.goto("/login?next=/app/billing");
  await page.getByLabel("Email").fill(DEMO.email);
  await page.getByLabel("Password").fill(DEMO.password);
  await page.getByRole("button", { name: "Log in" }).click();
  await expect(page).toHaveURL(/\/app\/billing$/);
  // Server-rendered "false"; "true" only once the WASM has taken over the page.
  await expect(page.locator("main[data-hydrated]")).toHaveAttribute("data-hydrated", "true");

  // Filtering the ledger is a form that also works as a plain page load; hydrated, it stays
  // on this page and asks the ledger server function instead.
  await page.evaluate(() => ((window as any).sameDocument = true));
  const answer = page.waitForResponse(
    (r) => r.url().includes("/api/tokens/ledger") && r.url().includes("source=stripe_checkout"),
  );
  await page.getByLabel("Show").selectOption({ label: "Purchase" });
  await page.getByRole("button", { name: "Filter" }).click();
  const response = await answer;
  expect(response.status()).toBe(200);
  expect(response.request().resourceType()).toBe("fetch");
  const body = await response.json();
  expect(Array.isArray(body.entries)).toBe(true);
  expect(body.entries.every((e: { source: string }) => e.source === "stripe_checkout")).toBe(true);
  // Only the named fields: no `&=` for the button.
  await expect(page).toHaveURL(/\/app\/billing\?source=stripe_checkout$/);
  await expect(page.getByLabel("Show")).toHaveValue("stripe_checkout");
  expect(await page.evaluate(() => (window as any).sameDocument)).toBe(true);
  expect(problems).toEqual([]);
});

test("an unknown page answers 404 with a way back", async ({ page }) => {
  const response = await page.goto("/no/such/page");
  expect(response?.status()).toBe(404);
  await expect(page.getByRole("link", { name: "Go to billing" })).toBeVisible();
});
