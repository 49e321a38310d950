import { expect, test } from "@playwright/test";
import { BILLING_PAGE } from "./support/accounts";

// The basics work as plain HTML: server rendering, links and form posts.
test.use({ javaScriptEnabled: false });

test("without JavaScript: sign up, buy a pack, see the tokens, filter the ledger", async ({ page }) => {
  const email = `plain-${Date.now()}@example.com`;
  await page.goto("/signup");
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password").fill("password12345");
  await page.getByRole("button", { name: "Create account" }).click();
  // The form's error comes back from the server.
  await expect(page.getByRole("alert")).toContainText("too easy to guess");
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password").fill("a fine long passphrase");
  await page.getByRole("button", { name: "Create account" }).click();
  await expect(page).toHaveURL(BILLING_PAGE);

  await page.getByRole("listitem").filter({ hasText: "Small pack" }).getByRole("button", { name: "Buy" }).click();
  await expect(page).toHaveURL(/\/simulated-stripe\/checkout\//);
  await page.getByRole("button", { name: "Pay $10.00" }).click();
  await expect(page.getByTestId("checkout-banner")).toContainText("1,000 tokens added");
  await expect(page.getByTestId("balance")).toHaveText("1,000 tokens");

  await page.getByLabel("Show").selectOption("consume");
  await page.getByRole("button", { name: "Filter" }).click();
  await expect(page).toHaveURL(/source=consume/);
  await expect(page.getByText("No token activity yet")).toBeVisible();
  await page.getByLabel("Show").selectOption("stripe_checkout");
  await page.getByRole("button", { name: "Filter" }).click();
  await expect(page.getByRole("row", { name: /Small pack/ })).toBeVisible();
});
