import { expect, test } from "@playwright/test";
import { buySmallPack, hydrated, signUp } from "./support/accounts";

test("a purchase shows in the month's statement, which adds up, prints without navigation and downloads", async ({ page }) => {
  await signUp(page, "statement");
  await hydrated(page);
  await buySmallPack(page);
  // The pack is a grant: what is left of it and when it expires.
  await expect(page.getByTestId("grants")).toContainText("1,000 of 1,000 left");
  await expect(page.getByTestId("grants")).toContainText("expires");

  await page.getByRole("link", { name: "Monthly statement" }).click();
  await expect(page).toHaveURL(/\/app\/billing\/statement/);
  await expect(page.getByTestId("opening")).toHaveText("0");
  await expect(page.getByTestId("credits")).toHaveText("+1,000");
  await expect(page.getByTestId("closing")).toHaveText("1,000");
  await expect(page.getByRole("row", { name: /Small pack/ })).toContainText("+1,000");

  const download = page.getByRole("link", { name: "Download CSV" });
  const csv = await page.request.get((await download.getAttribute("href"))!);
  expect(csv.status()).toBe(200);
  const lines = (await csv.text()).split("\n");
  expect(lines[0]).toBe("month,opening,credits,reversals,usage,expiries,closing");
  expect(lines[1]).toMatch(/^\d{4}-\d{2},0,1000,0,0,0,1000$/);

  await page.emulateMedia({ media: "print" });
  await expect(download).toBeHidden();
  await expect(page.getByRole("link", { name: "← Previous month" })).toBeHidden();
  await expect(page.getByTestId("closing")).toBeVisible();

  await page.emulateMedia({ media: "screen" });
  await page.getByRole("link", { name: "← Previous month" }).click();
  await expect(page.getByText("No token activity this month.")).toBeVisible();
  await expect(page.getByTestId("closing")).toHaveText("0");
});
