import { expect, test } from "@playwright/test";

test("the billing page is rendered on the server", async ({ request }) => {
  const response = await request.get("/app/billing");
  expect(response.status()).toBe(200);
  const html = await response.text();
  expect(html).toContain("<h1>Billing</h1>");
  expect(html).toContain("/pkg/billing.wasm");
});

test("the page hydrates and a click gets a server function's answer", async ({ page }) => {
  const problems: string[] = [];
  page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
  page.on("console", (message) => {
    if (message.type() === "error") problems.push(`console error: ${message.text()}`);
  });

  await page.goto("/app/billing");
  const button = page.getByRole("button", { name: "Check connection" });
  // Server-rendered disabled; enabled only once the WASM has taken over the page.
  await expect(button).toHaveAttribute("data-hydrated", "true");
  await expect(button).toBeEnabled();

  const answer = page.waitForResponse((r) => r.url().includes("/api/status"));
  await button.click();
  expect((await answer).status()).toBe(200);
  await expect(page.getByRole("status")).toHaveText(
    /^Server \d+\.\d+\.\d+ answered: simulated payments, sqlite database\.$/,
  );
  expect(problems).toEqual([]);
});

test("an unknown page answers 404 with a way back", async ({ page }) => {
  const response = await page.goto("/no/such/page");
  expect(response?.status()).toBe(404);
  await expect(page.getByRole("link", { name: "Go to billing" })).toBeVisible();
});
