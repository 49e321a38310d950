import { expect, test } from "@playwright/test";
import { buySmallPack, hydrated, signUp } from "./support/accounts";

// A zone half an hour off the hour, so that no other zone's time can pass for it.
test.use({ timezoneId: "Asia/Kolkata", locale: "en-US" });

test("the ledger shows when in the viewer's zone, with UTC on hover", async ({ page }) => {
  await signUp(page, "zone");
  await hydrated(page);
  await buySmallPack(page);
  await hydrated(page);

  const time = page.getByRole("row").filter({ hasText: "Small pack" }).locator("time");
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
});
