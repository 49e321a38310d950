import { expect, test, type Page } from "@playwright/test";
import { buySmallPack, hydrated, signUp } from "./support/accounts";
import { adminPage, debitAsAdmin } from "./support/admin";
import { subjectsTo } from "./support/mailbox";

/** A user with a small pack (1,000 tokens) who turns auto top-up on with `card`. */
async function turnOn(page: Page, prefix: string, card: string): Promise<string> {
  const email = await signUp(page, prefix);
  await hydrated(page);
  await buySmallPack(page);
  await hydrated(page);

  const auto = page.getByRole("region", { name: "Auto top-up" });
  await auto.getByLabel("When fewer tokens than this are left").fill("500");
  await auto.getByLabel("Buy").selectOption("small");
  await auto.getByLabel("At most this many tokens a month").fill("5000");
  await auto.getByRole("button", { name: "Turn on" }).click();
  await expect(auto.getByTestId("auto-topup-state")).toContainText("Add a card to turn it on");
  await auto.getByRole("button", { name: "Add a card" }).click();
  await expect(page).toHaveURL(/\/simulated-stripe\/setup\//);
  await page.getByRole("button", { name: new RegExp(`Save card •••• ${card}`) }).click();
  await expect(page).toHaveURL(/\/app\/billing\?card_setup=/);
  await hydrated(page);
  await expect(page.getByTestId("auto-topup-outcome")).toHaveText("Card saved.");
  return email;
}

test("auto top-up buys a pack when the balance goes under the mark, and says so by email", async ({
  page,
  browser,
}) => {
  const email = await turnOn(page, "topup", "4242");
  const auto = page.getByRole("region", { name: "Auto top-up" });
  await expect(auto.getByTestId("auto-topup-state")).toHaveText(
    "On: when fewer than 500 tokens are left, buys the Small pack (1,000 tokens), at most 5,000 tokens a month. Pays with Visa •••• 4242.",
  );

  await debitAsAdmin(await adminPage(browser), email, "600"); // 400: under the mark
  // The live balance follows: 400, then the pack's 1,000 on top.
  await expect(page.getByTestId("balance")).toHaveText("1,400 tokens");
  await expect(auto.getByTestId("topups")).toContainText("Small pack: +1,000 tokens");
  await expect(page.getByRole("row", { name: /Auto top-up: Small pack/ })).toContainText("+1,000");
  await expect.poll(() => subjectsTo(email), { timeout: 10_000 }).toEqual(["Auto top-up: 1,000 tokens added"]);
});

test("a declined card pauses auto top-up, and the page offers to update it", async ({ page, browser }) => {
  const email = await turnOn(page, "declined", "0002");
  await debitAsAdmin(await adminPage(browser), email, "600");
  const auto = page.getByRole("region", { name: "Auto top-up" });
  await expect(auto.getByTestId("auto-topup-state")).toHaveText(
    "Paused: your bank declined the last top-up. Update your card to turn it back on.",
  );
  await expect(page.getByTestId("balance")).toHaveText("400 tokens");
  await expect(auto.getByRole("button", { name: "Update card" })).toBeVisible();
  await expect.poll(() => subjectsTo(email), { timeout: 10_000 }).toEqual([
    "Auto top-up paused: your card was declined",
  ]);
});
