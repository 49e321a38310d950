import { expect, test } from "@playwright/test";
import { hydrated, signUp } from "./support/accounts";

for (const { name, width, height } of [
  { name: "desktop", width: 1280, height: 900 },
  { name: "phone", width: 360, height: 780 },
]) {
  test(`the billing page fits a ${name} screen (${width}px)`, async ({ page }, testInfo) => {
    await page.setViewportSize({ width, height });
    await signUp(page, name);
    await hydrated(page);
    await expect(page.getByRole("heading", { name: "Buy tokens" })).toBeVisible();
    // Nothing sticks out sideways: the page never scrolls horizontally.
    const overflow = await page.evaluate(
      () => document.documentElement.scrollWidth - document.documentElement.clientWidth,
    );
    expect(overflow).toBeLessThanOrEqual(0);
    // The header takes two lines at most (the brand, the links and Log out; the email may go
    // under them), counted by where each of its parts sits.
    const lines = await page.evaluate(() => {
      const parts = document.querySelectorAll(".site-header .brand, .site-header nav > *");
      const boxes = [...parts].map((part) => part.getBoundingClientRect()).sort((a, b) => a.top - b.top);
      let rows = 0;
      let bottom = -Infinity;
      for (const box of boxes) {
        // A part that starts below the line so far starts a new line.
        if (box.top >= bottom - 1) rows += 1;
        bottom = Math.max(bottom, box.bottom);
      }
      return rows;
    });
    expect(lines, "lines in the header").toBeLessThanOrEqual(2);
    // Cards are one gap apart, stacked or side by side (no margin added to the grid's gap).
    const balance = (await page.getByRole("region", { name: "Your balance" }).boundingBox())!;
    const subscription = (await page.getByRole("region", { name: "Subscription" }).boundingBox())!;
    const apart = subscription.y > balance.y + balance.height
      ? subscription.y - (balance.y + balance.height)
      : subscription.x - (balance.x + balance.width);
    expect(apart).toBeCloseTo(16, 0);
    // Every control has an accessible name (as the browser computes it: label, text,
    // aria-label or aria-labelledby), and the balance is announced when it changes.
    for (const role of ["button", "link", "textbox", "combobox", "listbox", "checkbox", "radio", "spinbutton"] as const) {
      const all = await page.getByRole(role).count();
      const named = await page.getByRole(role, { name: /\S/ }).count();
      expect(named, `every ${role} has an accessible name`).toBe(all);
    }
    expect(await page.getByRole("button").count()).toBeGreaterThan(3);
    expect(await page.getByRole("combobox").count()).toBeGreaterThan(0);
    expect(await page.getByRole("link").count()).toBeGreaterThan(0);
    const live = page.getByTestId("balance-live");
    await expect(live).toHaveAttribute("aria-live", "polite");
    await expect(live).toHaveAttribute("role", "status");
    await expect(live.getByTestId("balance")).toBeVisible();

    // A ledger row shows whole, its change included, without scrolling sideways.
    await page.getByRole("listitem").filter({ hasText: "Small pack" }).getByRole("button", { name: "Buy" }).click();
    await page.getByRole("button", { name: "Pay $10.00" }).click();
    const change = page.getByRole("row", { name: /Small pack/ }).getByText("+1,000");
    await expect(change).toBeVisible();
    const box = await change.boundingBox();
    expect(box!.x + box!.width).toBeLessThanOrEqual(width);
    await page.screenshot({ path: testInfo.outputPath(`billing-${name}.png`), fullPage: true });
  });
}

test("the keyboard reaches the purchase buttons in reading order", async ({ page }) => {
  await signUp(page, "keys");
  await hydrated(page);
  const order: string[] = [];
  for (let i = 0; i < 40 && order.length < 30; i++) {
    await page.keyboard.press("Tab");
    order.push(await page.evaluate(() => (document.activeElement as HTMLElement | null)?.innerText?.trim() ?? ""));
  }
  const manage = order.indexOf("Manage billing");
  const firstBuy = order.indexOf("Buy");
  expect(manage).toBeGreaterThan(-1);
  expect(firstBuy).toBeGreaterThan(manage);
  // Three packs, then the plan, before the ledger's controls.
  expect(order.slice(firstBuy, firstBuy + 4)).toEqual(["Buy", "Buy", "Buy", "Subscribe"]);
  expect(order.indexOf("Export CSV")).toBeGreaterThan(firstBuy + 3);
});
