import { expect, test, type Page } from "@playwright/test";
import { hydrated, signUp } from "./support/accounts";

/** Collects what the browser reports against the page's Content-Security-Policy. */
async function watchViolations(page: Page): Promise<() => Promise<string[]>> {
  const reported: string[] = [];
  page.on("console", (message) => {
    if (message.text().includes("Content Security Policy")) reported.push(message.text());
  });
  page.on("pageerror", (error) => reported.push(`page error: ${error.message}`));
  // Runs before the page's own scripts, on every document the page opens.
  await page.addInitScript(() => {
    const seen: string[] = ((window as any).__violations = []);
    document.addEventListener("securitypolicyviolation", (event) => {
      seen.push(`${event.effectiveDirective} blocked ${event.blockedURI || "inline"}`);
    });
  });
  return async () => [...reported, ...(await page.evaluate(() => (window as any).__violations ?? []))];
}

test("pages hydrate under the policy, through a purchase, and the browser reports no violation", async ({ page }) => {
  const violations = await watchViolations(page);

  const response = await page.goto("/signup");
  const policy = response?.headers()["content-security-policy"] ?? "";
  expect(policy).toMatch(/script-src 'self' 'nonce-[A-Za-z0-9_-]{22,}'/);
  expect(policy).toContain("frame-ancestors 'none'");
  expect(policy).not.toContain("unsafe-inline");
  expect(response?.headers()["x-content-type-options"]).toBe("nosniff");

  await signUp(page, "policy");
  await hydrated(page);

  // A server function, the simulated Checkout's pages and the way back, all under the policy.
  await page.getByRole("listitem").filter({ hasText: "Small pack" }).getByRole("button", { name: "Buy" }).click();
  await expect(page).toHaveURL(/\/simulated-stripe\/checkout\/cs_/);
  await page.getByRole("button", { name: /^Pay \$/ }).click();
  await expect(page).toHaveURL(/\/app\/billing\?.*session_id=cs_/);
  await hydrated(page);
  await expect(page.getByTestId("checkout-banner")).toContainText("1,000 tokens added");
  await expect(page.getByTestId("balance")).toHaveText("1,000 tokens");

  expect(await violations()).toEqual([]);
});

test("the policy is enforced: a script the server did not send does not run", async ({ page }) => {
  const violations = await watchViolations(page);
  await page.goto("/login");
  await page.evaluate(() => {
    const script = document.createElement("script");
    script.textContent = "window.__injected = true";
    document.body.append(script);
  });
  await expect.poll(violations).toContainEqual(expect.stringContaining("script-src"));
  expect(await page.evaluate(() => (window as any).__injected)).toBeUndefined();
});
