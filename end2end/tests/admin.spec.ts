import { expect, test } from "@playwright/test";
import { holdWasm, hydrated, signUp } from "./support/accounts";
import { adminPage } from "./support/admin";

// The development server seeds this user (DEMO_ACCOUNTS, see server/src/demo.rs).
const DEMO_EMAIL = "demo@promptbloom.test";

test("what an admin types before the page hydrates is kept, and finds the user", async ({ browser }) => {
  const admin = await adminPage(browser);
  // Hold the WASM back, to type first.
  const release = await holdWasm(admin);
  await admin.goto("/admin", { waitUntil: "domcontentloaded" });
  const search = admin.getByLabel("Email or user id");
  await search.fill(DEMO_EMAIL);
  await expect(admin.locator("main[data-hydrated]")).toHaveAttribute("data-hydrated", "false");

  release();
  await hydrated(admin);
  await expect(search).toHaveValue(DEMO_EMAIL);
  await admin.getByRole("button", { name: "Find" }).click();
  await expect(admin.getByRole("heading", { name: DEMO_EMAIL })).toBeVisible();
  await admin.context().close();
});

test("each adjustment shows its own answer with separators; a success empties the form, a refusal keeps it", async ({
  browser,
}) => {
  const user = await (await browser.newContext()).newPage();
  const email = await signUp(user, "adjusted");
  const admin = await adminPage(browser);
  await admin.goto(`/admin?q=${encodeURIComponent(email)}`);
  await hydrated(admin);
  const tokens = admin.getByLabel("Tokens", { exact: true });
  const reason = admin.getByLabel("Reason (shown in the user's ledger)");
  const outcome = admin.getByTestId("adjust-outcome");

  const adjust = async (way: "Credit" | "Debit", amount: string, why?: string) => {
    await tokens.fill(amount);
    if (why) await reason.fill(why);
    await admin.getByRole("button", { name: `${way} tokens` }).click();
  };

  await adjust("Credit", "1", "Goodwill");
  await expect(outcome).toHaveText("+1 token. New balance: 1.");
  await expect(tokens).toHaveValue("");
  await expect(reason).toHaveValue("");

  await adjust("Credit", "12000", "Bulk grant");
  await expect(outcome).toHaveText("+12,000 tokens. New balance: 12,001.");
  await expect(admin.getByTestId("admin-balance")).toHaveText("12,001 tokens");

  // Refused: its own message replaces the last success, and what was typed stays to correct.
  await adjust("Debit", "20000", "Too much");
  await expect(outcome).toHaveText("Not enough tokens: the balance is 12,001; 20,000 were requested.");
  await expect(tokens).toHaveValue("20000");
  await expect(reason).toHaveValue("Too much");
  await expect(admin.getByTestId("admin-balance")).toHaveText("12,001 tokens");

  await adjust("Debit", "2000");
  await expect(outcome).toHaveText("-2,000 tokens. New balance: 10,001.");
  await expect(tokens).toHaveValue("");
  // A refusal after a success keeps what was typed too.
  await adjust("Debit", "50000", "Far too much");
  await expect(outcome).toHaveText("Not enough tokens: the balance is 10,001; 50,000 were requested.");
  await expect(tokens).toHaveValue("50000");
  await admin.context().close();
  await user.context().close();
});

test("a refusal of a plain post made before the page hydrated is shown, and stays once hydrated", async ({ browser }) => {
  const user = await (await browser.newContext()).newPage();
  const email = await signUp(user, "refused-plain");
  const admin = await adminPage(browser);
  const release = await holdWasm(admin);
  await admin.goto(`/admin?q=${encodeURIComponent(email)}`, { waitUntil: "domcontentloaded" });
  await admin.getByLabel("Tokens", { exact: true }).fill("500");
  await admin.getByLabel("Reason (shown in the user's ledger)").fill("Too much");
  await admin.getByRole("button", { name: "Debit tokens" }).click();
  await expect(admin).toHaveURL(/__err=/);
  const outcome = admin.getByTestId("adjust-outcome");
  await expect(outcome).toHaveText("Not enough tokens: the balance is 0; 500 were requested.");
  await expect(admin.locator("main[data-hydrated]")).toHaveAttribute("data-hydrated", "false");

  release();
  await hydrated(admin);
  await expect(outcome).toHaveText("Not enough tokens: the balance is 0; 500 were requested.");
  await admin.context().close();
  await user.context().close();
});

test("the next adjustment typed while the account is still being read again is kept, and applies once", async ({
  browser,
}) => {
  const user = await (await browser.newContext()).newPage();
  const email = await signUp(user, "typed-quickly");
  const admin = await adminPage(browser);
  await admin.goto(`/admin?q=${encodeURIComponent(email)}`);
  await hydrated(admin);
  const tokens = admin.getByLabel("Tokens", { exact: true });
  const reason = admin.getByLabel("Reason (shown in the user's ledger)");
  const outcome = admin.getByTestId("adjust-outcome");

  // The account's new balance (and the next adjustment's request id) comes late.
  let slow = false;
  await admin.route("**/api/admin/users/find**", async (route) => {
    if (slow) await new Promise((resolve) => setTimeout(resolve, 1500));
    await route.continue();
  });
  await tokens.fill("1");
  await reason.fill("Goodwill");
  slow = true;
  await admin.getByRole("button", { name: "Credit tokens" }).click();
  await expect(outcome).toHaveText("+1 token. New balance: 1.");

  // A quick admin types the next one at once, while the account is still on its way.
  await tokens.fill("7");
  await reason.fill("Second thought");
  await admin.getByRole("button", { name: "Credit tokens" }).click();
  await expect(outcome).toHaveText("+7 tokens. New balance: 8.");
  await expect(admin.getByTestId("admin-balance")).toHaveText("8 tokens");
  await admin.context().close();
  await user.context().close();
});
