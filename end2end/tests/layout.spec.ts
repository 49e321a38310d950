import { expect, type Page, test } from "@playwright/test";
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

/** The channels of a computed colour (`rgb(r, g, b)` or `rgba(r, g, b, a)`). */
function channels(color: string): [number, number, number, number] {
  const [r, g, b, a = 1] = color.match(/\d*\.?\d+/g)!.map(Number);
  return [r, g, b, a];
}

/** WCAG's contrast ratio of a colour, seen over an opaque background, against that background. */
function contrast(color: string, behind: string): number {
  const [r, g, b, alpha] = channels(color);
  const under = channels(behind);
  // A translucent colour is seen blended with what is behind it.
  const seen = [r, g, b].map((c, i) => alpha * c + (1 - alpha) * under[i]);
  const luminance = (rgb: number[]) => {
    const [lr, lg, lb] = rgb.map((c) => {
      const s = c / 255;
      return s <= 0.04045 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
    });
    return 0.2126 * lr + 0.7152 * lg + 0.0722 * lb;
  };
  const [light, dark] = [luminance(seen), luminance(under.slice(0, 3))].sort((x, y) => y - x);
  return (light + 0.05) / (dark + 0.05);
}

/** The focused element's outline and the colour behind it (its first opaque ancestor's). */
async function focusRing(page: Page) {
  return page.evaluate(() => {
    const focused = document.activeElement as HTMLElement;
    const style = getComputedStyle(focused);
    let behind = "rgb(255, 255, 255)";
    for (let node = focused.parentElement; node; node = node.parentElement) {
      const color = getComputedStyle(node).backgroundColor;
      if (color !== "rgba(0, 0, 0, 0)" && color !== "transparent") {
        behind = color;
        break;
      }
    }
    return {
      what: focused.innerText?.trim() || focused.tagName,
      style: style.outlineStyle,
      width: parseFloat(style.outlineWidth),
      color: style.outlineColor,
      behind,
    };
  });
}

test("the focus ring stands out at 3:1 at least, on the app's pages and the simulated Checkout", async ({ page }) => {
  const expectVisibleRing = async (stops: number) => {
    for (let i = 0; i < stops; i++) {
      await page.keyboard.press("Tab");
      const ring = await focusRing(page);
      expect(ring.style, `${ring.what} has an outline`).not.toBe("none");
      expect(ring.width, `${ring.what}'s outline width`).toBeGreaterThanOrEqual(2);
      expect(contrast(ring.color, ring.behind), `${ring.what}: ${ring.color} on ${ring.behind}`).toBeGreaterThanOrEqual(3);
    }
  };
  await signUp(page, "focus");
  await hydrated(page);
  await expectVisibleRing(12);
  await page.getByRole("listitem").filter({ hasText: "Small pack" }).getByRole("button", { name: "Buy" }).click();
  await expect(page).toHaveURL(/\/simulated-stripe\/checkout\//);
  await expectVisibleRing(3);
});

test("the login and sign-up buttons stand clear of what is above them", async ({ page }) => {
  for (const [path, button] of [["/login", "Log in"], ["/signup", "Create account"]]) {
    await page.goto(path);
    const submit = page.getByRole("button", { name: button });
    await expect(submit).toBeVisible();
    // The gap to the lowest edge of anything before the button in its form (the field, or
    // the hint under it).
    const gap = await submit.evaluate((button) => {
      const form = button.closest("form")!;
      const top = button.getBoundingClientRect().top;
      const above = [...form.querySelectorAll("*")]
        .filter((part) => part !== button && !part.contains(button) && button.compareDocumentPosition(part) & Node.DOCUMENT_POSITION_PRECEDING)
        .map((part) => part.getBoundingClientRect())
        // What starts above the button: a part reaching into it makes the gap negative.
        .filter((box) => box.height > 0 && box.top < top);
      return above.length ? top - Math.max(...above.map((box) => box.bottom)) : null;
    });
    expect(gap, `something stands above ${button}`).not.toBeNull();
    expect(gap, `the gap above ${button}`).toBeGreaterThanOrEqual(8);
  }
});
