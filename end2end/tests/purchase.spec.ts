import { expect, type Page, test } from "@playwright/test";
import {
  BILLING_PAGE,
  hydrated,
  markDocument,
  recordBalanceStream,
  signUp,
  stillSameDocument,
  streamedBalances,
} from "./support/accounts";
import { adminPage } from "./support/admin";

test("buy the medium pack through Checkout, see 5,000 tokens and the ledger row", async ({ page }) => {
  await signUp(page);
  await hydrated(page);
  await expect(page.getByTestId("balance")).toHaveText("0 tokens");

  const medium = page.getByRole("listitem").filter({ has: page.getByRole("heading", { name: "Medium pack" }) });
  await expect(medium).toContainText("5,000 tokens");
  await expect(medium).toContainText("$40.00");
  await medium.getByRole("button", { name: "Buy" }).click();

  // The simulated Stripe Checkout.
  await expect(page).toHaveURL(/\/simulated-stripe\/checkout\/cs_/);
  await expect(page.getByText("Simulated Stripe")).toBeVisible();
  await page.getByRole("button", { name: "Pay $40.00" }).click();

  await expect(page).toHaveURL(/\/app\/billing\?.*session_id=cs_/);
  await expect(page.getByTestId("checkout-banner")).toContainText("5,000 tokens added");
  await expect(page.getByTestId("checkout-banner")).toBeFocused(); // not the page's body
  await expect(page.getByTestId("balance")).toHaveText("5,000 tokens");
  const row = page.getByRole("row", { name: /Medium pack/ });
  await expect(row).toContainText("Purchase");
  await expect(row).toContainText("+5,000");
});

test("cancelling Checkout shows the banner and charges nothing", async ({ page }) => {
  await signUp(page);
  await page.getByRole("listitem").filter({ hasText: "Small pack" }).getByRole("button", { name: "Buy" }).click();
  await page.getByRole("button", { name: "Cancel and return" }).click();
  await expect(page).toHaveURL(/canceled=1/);
  await expect(page.getByText("Checkout canceled. Nothing was charged.")).toBeFocused();
  await expect(page.getByTestId("balance")).toHaveText("0 tokens");
});

test("a payment that clears later shows as pending, then the tokens arrive without a reload", async ({ page }) => {
  await recordBalanceStream(page);
  await signUp(page);
  await page.getByRole("listitem").filter({ hasText: "Small pack" }).getByRole("button", { name: "Buy" }).click();
  await page.getByRole("button", { name: /clears in a few seconds/ }).click();
  await expect(page.getByTestId("checkout-banner")).toContainText(
    "Payment received: adding 1,000 tokens as soon as your bank confirms it",
  );
  await hydrated(page);
  await markDocument(page);
  // No reload: the live balance and the banner update themselves.
  await expect(page.getByTestId("balance")).toHaveText("1,000 tokens", { timeout: 20_000 });
  await expect(page.getByTestId("checkout-banner")).toContainText("1,000 tokens added", { timeout: 20_000 });
  await stillSameDocument(page);
  // The stream told the page (the banner also asks while a payment clears).
  await expect.poll(() => streamedBalances(page), { timeout: 5_000 }).toContain(1000);
});

test("the balance follows the stream: a credit made elsewhere shows at once, without polling", async ({
  page,
  browser,
}) => {
  await recordBalanceStream(page);
  const email = await signUp(page, "streamed");
  await hydrated(page);
  await expect.poll(() => streamedBalances(page)).toEqual([0]);
  await markDocument(page);

  // An admin credits the user from another browser. Nothing on the user's page polls here
  // (no payment is clearing; the fallback poll runs only without a stream, every 10 s).
  const admin = await adminPage(browser);
  const credited = await admin.request.post("/api/admin/tokens/credit", {
    form: { user: email, tokens: "250", reason: "Stream test" },
  });
  expect(credited.status()).toBe(200);
  const creditedAt = Date.now();

  await expect(page.getByTestId("balance")).toHaveText("250 tokens", { timeout: 5_000 });
  expect(Date.now() - creditedAt).toBeLessThan(5_000);
  expect(await streamedBalances(page)).toEqual([0, 250]);
  await stillSameDocument(page);
  await admin.context().close();
});

test("subscribe and get 6,000 tokens; the portal cancels the plan", async ({ page }) => {
  await signUp(page);
  await page.getByRole("listitem").filter({ hasText: "Starter monthly" }).getByRole("button", { name: "Subscribe" }).click();
  await page.getByRole("button", { name: /^Pay \$35\.00/ }).click();
  await expect(page.getByTestId("checkout-banner")).toContainText("Subscription started");
  await expect(page.getByTestId("balance")).toHaveText("6,000 tokens", { timeout: 20_000 });
  await expect(page.getByTestId("subscription-status")).toContainText("Starter monthly: Active", { timeout: 20_000 });
  // Subscribed: the plan is not offered a second time.
  const plan = page.getByRole("listitem").filter({ hasText: "Starter monthly" });
  await expect(plan.getByTestId("plan-subscribed")).toContainText("You are subscribed", { timeout: 20_000 });
  await expect(plan.getByRole("button", { name: "Subscribe" })).toHaveCount(0);

  await hydrated(page);
  await page.getByRole("button", { name: "Manage billing" }).click();
  await expect(page).toHaveURL(/\/simulated-stripe\/portal\//);
  await page.getByRole("button", { name: "Cancel plan" }).click();
  await expect(page.getByTestId("sim-subscription-state")).toContainText("Cancels on");
  await page.getByRole("link", { name: "Return to PromptBloom" }).click();
  await expect(page.getByTestId("subscription-status")).toContainText("cancels at the end of the period");
  await expect(page.getByTestId("balance")).toHaveText("6,000 tokens");
});

test("a partial refund reverses tokens in proportion", async ({ page }) => {
  const missing: string[] = []; // the simulated pages' icon, say
  page.on("response", (r) => {
    if (r.status() === 404) missing.push(r.url());
  });
  await signUp(page);
  await page.getByRole("listitem").filter({ hasText: "Medium pack" }).getByRole("button", { name: "Buy" }).click();
  await expect(page).toHaveURL(/\/simulated-stripe\/checkout\//);
  await hasItsIcon(page);
  await page.getByRole("button", { name: "Pay $40.00" }).click();
  await expect(page.getByTestId("balance")).toHaveText("5,000 tokens");

  await hydrated(page);
  await page.getByRole("button", { name: "Manage billing" }).click();
  await expect(page).toHaveURL(/\/simulated-stripe\/portal\//);
  await hasItsIcon(page);
  const amount = page.getByLabel("Amount to refund, up to $40.00");
  expect(await amount.getAttribute("placeholder")).toBeNull(); // nothing that looks like a value
  await amount.fill("10.00");
  await page.getByRole("button", { name: "Refund", exact: true }).click();
  await expect(page.getByText("refunded $10.00")).toBeVisible();
  // More than is left is refused on a page with a way back.
  await page.getByLabel("Amount to refund, up to $30.00").fill("50.00");
  await page.getByRole("button", { name: "Refund", exact: true }).click();
  await expect(page.getByRole("heading", { name: "Not possible" })).toBeVisible();
  await page.getByRole("link", { name: "Back to billing" }).click();
  await expect(page).toHaveURL(BILLING_PAGE);

  // $10 of $40 back: a quarter of 5,000 tokens taken back.
  await expect(page.getByTestId("balance")).toHaveText("3,750 tokens");
  const row = page.getByRole("row", { name: /Partial refund \(1,250 of 5,000 tokens\): Medium pack/ });
  await expect(row).toContainText("-1,250");
  await expect(row).toContainText("Refund");
  expect(missing).toEqual([]);
});

/** The page names an icon the server has: the browser asks for one on every visit (a 404 there
 * is an error in the console; the browser's own icon request is not seen by `page.on`). */
async function hasItsIcon(page: Page) {
  const href = await page.locator('link[rel="icon"]').getAttribute("href");
  expect(href).toBeTruthy();
  const icon = await page.request.get(new URL(href!, page.url()).toString());
  expect(icon.status()).toBe(200);
  expect(icon.headers()["content-type"]).toContain("image/svg+xml");
}

/** Opens (and leaves) five checkouts in a row through the API: the billing writes a user may
 * make in a short while, so the next one is refused. */
async function openFiveCheckouts(page: Page) {
  for (let i = 0; i < 5; i++) {
    const response = await page.request.post("/api/billing/create-checkout-session", {
      data: { product: "small" },
      headers: { origin: new URL(page.url()).origin },
    });
    expect(response.status()).toBe(200);
  }
}

test("the sixth quick checkout shows the rate-limit message", async ({ page }) => {
  await signUp(page);
  await hydrated(page);
  await openFiveCheckouts(page);
  // The sixth, from the page.
  await page.getByRole("listitem").filter({ hasText: "Large pack" }).getByRole("button", { name: "Buy" }).click();
  await expect(page.getByTestId("buy-error")).toHaveText(/Too many requests\. Please wait \d+ seconds and try again\./);
  await expect(page).toHaveURL(BILLING_PAGE);
});

test("a refused portal post comes back to the billing page with its reason", async ({ page }) => {
  await signUp(page);
  await hydrated(page);
  // The portal is a billing write too: five checkouts opened in a row use up the allowance...
  await openFiveCheckouts(page);
  // ...so the portal's plain form post is refused, and the page says why instead of leaving.
  await page.getByRole("button", { name: "Manage billing" }).click();
  await expect(page).toHaveURL(/\/app\/billing/);
  const card = page.getByRole("region", { name: "Subscription" });
  await expect(card.getByRole("alert").filter({ hasText: /\S/ })).toHaveText(
    /Too many requests\. Please wait \d+ seconds and try again\./,
  );
  await hydrated(page);
  await expect(card.getByRole("alert").filter({ hasText: /\S/ })).toHaveText(/Too many requests/);
});
