import { expect, test } from "@playwright/test";
import { hydrated, recordBalanceStream, signUp, streamedBalances } from "./support/accounts";
import { adminPage, creditAsAdmin } from "./support/admin";
import { OwnServer } from "./support/server";

test("when the server goes away the page says so once, keeps the balance marked as not current, and recovers by itself", async ({
  browser,
}) => {
  test.setTimeout(90_000);
  const server = await OwnServer.start();
  try {
    const page = await (await browser.newContext({ baseURL: server.url })).newPage();
    const email = await signUp(page, "outage");
    await hydrated(page);
    const admin = await adminPage(browser, server);
    await creditAsAdmin(admin, email, "1250");
    await expect(page.getByTestId("balance")).toHaveText("1,250 tokens");

    await server.kill();
    const notice = page.getByTestId("connection-lost");
    await expect(notice).toHaveCount(1);
    await expect(notice).toContainText("The server cannot be reached");
    // While the stream is opened again and again, nothing else says so (no error in any part).
    await page.waitForTimeout(3000);
    await expect(page.getByRole("alert")).toHaveCount(0);
    await expect(notice).toHaveCount(1);
    await expect(page.getByTestId("balance")).toHaveText("1,250 tokens");
    await expect(page.getByTestId("balance")).toHaveClass(/stale/);
    await expect(page.getByText("Last known balance, not current:")).toBeVisible();
    await expect(page.getByRole("row").filter({ hasText: "Goodwill credit" })).toBeVisible();

    await server.restart();
    await expect(notice).toHaveCount(0, { timeout: 40_000 });
    await expect(page.getByTestId("balance")).not.toHaveClass(/stale/);
    await expect(page.getByText("Last known balance, not current:")).toBeHidden();
    // The stream is open again: a change made now shows without a reload.
    await creditAsAdmin(admin, email, "250");
    await expect(page.getByTestId("balance")).toHaveText("1,500 tokens");
  } finally {
    await server.kill();
  }
});

test("a part whose load gets no answer keeps what it showed, the page says so once, and all load again once the server answers", async ({
  page,
  browser,
}) => {
  test.setTimeout(90_000);
  const email = await signUp(page, "doubt");
  await hydrated(page);
  await expect(page.getByTestId("balance")).toHaveText("0 tokens");
  // The balance's server function gets no answer; the stream stays open.
  await page.route("**/api/tokens/balance**", (route) => route.abort("connectionrefused"));
  const admin = await adminPage(browser);
  await creditAsAdmin(admin, email, "300");

  const notice = page.getByTestId("connection-lost");
  await expect(notice).toHaveCount(1);
  await expect(page.getByRole("row").filter({ hasText: "Goodwill credit" })).toBeVisible();
  await expect(page.getByTestId("balance")).toHaveText("0 tokens");
  await expect(page.getByTestId("balance")).toHaveClass(/stale/);
  await expect(page.getByRole("alert")).toHaveCount(0);

  await page.unroute("**/api/tokens/balance**");
  await expect(page.getByTestId("balance")).toHaveText("300 tokens", { timeout: 40_000 });
  await expect(notice).toHaveCount(0);
  await expect(page.getByTestId("balance")).not.toHaveClass(/stale/);
});

test("once hydrated, the page loads nothing again while the ledger is as it was rendered, and loads when it changes", async ({
  page,
  browser,
}) => {
  await recordBalanceStream(page);
  const email = await signUp(page, "quiet");
  const loads: string[] = [];
  page.on("request", (request) => {
    const path = new URL(request.url()).pathname;
    if (path.startsWith("/api/") && path !== "/api/tokens/stream") loads.push(path);
  });
  await page.goto("/app/billing");
  await hydrated(page);
  // The stream's first event says what the page already shows: nothing to load again.
  await expect.poll(() => streamedBalances(page)).toEqual([0]);
  await page.waitForTimeout(1500);
  expect(loads).toEqual([]);

  const admin = await adminPage(browser);
  await creditAsAdmin(admin, email, "300");
  await expect(page.getByTestId("balance")).toHaveText("300 tokens");
  expect(loads).toContain("/api/tokens/balance");
  await admin.context().close();
});
