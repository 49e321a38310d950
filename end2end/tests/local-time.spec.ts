import { expect, test, type Locator, type Page } from "@playwright/test";
import { buySmallPack, hydrated, signUp } from "./support/accounts";

// A zone half an hour off the hour, so that no other zone's time can pass for it.
test.use({ timezoneId: "Asia/Kolkata", locale: "en-US" });

/** Expects `time` to show its moment as the browser writes it for Kolkata, with UTC on hover. */
async function shownInKolkata(page: Page, time: Locator) {
  await expect(time).toHaveAttribute("title", /^\d{4}-\d\d-\d\d \d\d:\d\d UTC$/);
  const moment = (await time.getAttribute("datetime"))!;
  // The same moment, written by the browser for Kolkata by name.
  const inKolkata = await page.evaluate(
    (at) =>
      new Intl.DateTimeFormat("en-US", {
        timeZone: "Asia/Kolkata",
        year: "numeric",
        month: "short",
        day: "numeric",
        hour: "numeric",
        minute: "2-digit",
        timeZoneName: "short",
      }).format(new Date(at)),
    moment,
  );
  expect(inKolkata).toMatch(/GMT\+5:30$/);
  await expect(time).toHaveText(inKolkata);
}

test("the ledger shows when in the viewer's zone, with UTC on hover", async ({ page }) => {
  await signUp(page, "zone");
  await hydrated(page);
  await buySmallPack(page);
  await hydrated(page);

  await shownInKolkata(page, page.getByRole("row").filter({ hasText: "Small pack" }).locator("time"));
});

test("the subscription's renewal is shown in the viewer's zone too", async ({ page }) => {
  await signUp(page, "zone-plan");
  await page.getByRole("listitem").filter({ hasText: "Starter monthly" }).getByRole("button", { name: "Subscribe" }).click();
  await page.getByRole("button", { name: /^Pay \$35\.00/ }).click();
  await expect(page.getByTestId("subscription-status")).toContainText("Starter monthly: Active", { timeout: 20_000 });
  await hydrated(page);

  const detail = page.getByTestId("subscription-detail");
  await expect(detail).toContainText("Renews on");
  await shownInKolkata(page, detail.locator("time"));
});
