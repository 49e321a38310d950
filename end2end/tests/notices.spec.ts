import { expect, test } from "@playwright/test";
import { buySmallPack, hydrated, signUp } from "./support/accounts";
import { adminPage, debitAsAdmin } from "./support/admin";
import { subjectsTo } from "./support/mailbox";

test("a user sets a low-balance mark, gets one email when the balance goes under it, and turns it off", async ({
  page,
  browser,
}) => {
  const email = await signUp(page, "notices");
  await hydrated(page);
  await buySmallPack(page);
  await hydrated(page);

  const notices = page.getByRole("region", { name: "Email notices" });
  await expect(notices.getByTestId("low-balance-state")).toHaveText("No low-balance email.");
  await notices.getByLabel("Email me when fewer tokens than this are left").fill("500");
  await notices.getByRole("button", { name: "Save" }).click();
  await expect(notices.getByTestId("low-balance-outcome")).toHaveText(
    "Saved. We email you when fewer than 500 tokens are left.",
  );
  await page.reload();
  await expect(page.getByLabel("Email me when fewer tokens than this are left")).toHaveValue("500");

  const admin = await adminPage(browser);
  await debitAsAdmin(admin, email, "300"); // 700: over the mark
  await expect(admin.getByTestId("admin-balance")).toHaveText("700 tokens");
  await debitAsAdmin(admin, email, "300"); // 400: under
  await expect(admin.getByTestId("admin-balance")).toHaveText("400 tokens");
  await expect.poll(() => subjectsTo(email), { timeout: 10_000 }).toEqual([
    "Your balance is low: 400 tokens left",
  ]);
  await debitAsAdmin(admin, email, "100"); // 300: still under, no second email
  await expect(admin.getByTestId("admin-balance")).toHaveText("300 tokens");
  await page.waitForTimeout(1500);
  expect(subjectsTo(email)).toHaveLength(1);

  await hydrated(page);
  await page.getByRole("region", { name: "Email notices" }).getByRole("button", { name: "Turn off" }).click();
  await expect(page.getByTestId("low-balance-outcome")).toHaveText("Low-balance emails are off.");
  await expect(page.getByTestId("low-balance-state")).toHaveText("No low-balance email.");
});
