import { expect, type Browser, type Page } from "@playwright/test";
import { execFileSync } from "node:child_process";
import { BILLING_PAGE, PASSWORD, hydrated } from "./accounts";
import type { OwnServer } from "./server";

// The development server seeds this admin (DEMO_ACCOUNTS, see server/src/demo.rs).
export const ADMIN = { email: "admin@promptbloom.test", password: "orchard-lantern-97" };

/** Logs `page` in with `email` and `password` (the login form, as a person would). */
export async function logIn(page: Page, email: string, password: string) {
  await page.goto("/login");
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Log in" }).click();
}

/** A page in a browser context of its own, logged in as a new admin made for it by the
 * server's own command (`server user create --admin`) on the test server's database: each
 * admin's billing writes have their own rate limit (5 a minute), so one test's adjustments do
 * not use up the next one's. */
export async function adminPage(browser: Browser, server?: OwnServer): Promise<Page> {
  const email = `admin-${Date.now()}-${Math.floor(Math.random() * 1e6)}@example.com`;
  const dataDir = server?.dataDir ?? process.env.E2E_DATA_DIR;
  execFileSync(
    process.env.E2E_SERVER_BIN!,
    ["user", "create", "--email", email, "--admin", "--password-env", "E2E_ADMIN_PASSWORD"],
    { env: { ...process.env, DATA_DIR: dataDir, E2E_ADMIN_PASSWORD: PASSWORD }, stdio: "pipe" },
  );
  const admin = await (await browser.newContext(server ? { baseURL: server.url } : {})).newPage();
  await logIn(admin, email, PASSWORD);
  await expect(admin).toHaveURL(BILLING_PAGE);
  return admin;
}

/** Opens `email`'s account on the admin page and debits `tokens` with a reason, as an admin
 * would; waits for the new balance. */
export async function debitAsAdmin(admin: Page, email: string, tokens: string) {
  await adjustAsAdmin(admin, email, tokens, "Debit tokens", "Usage by hand");
}

/** As [`debitAsAdmin`], crediting. */
export async function creditAsAdmin(admin: Page, email: string, tokens: string) {
  await adjustAsAdmin(admin, email, tokens, "Credit tokens", "Goodwill credit");
}

async function adjustAsAdmin(admin: Page, email: string, tokens: string, button: string, reason: string) {
  await admin.goto("/admin");
  await hydrated(admin);
  await admin.getByLabel("Email or user id").fill(email);
  await admin.getByRole("button", { name: "Find" }).click();
  await expect(admin.getByRole("heading", { name: email })).toBeVisible();
  const before = await admin.getByTestId("admin-balance").textContent();
  await hydrated(admin);
  await admin.getByLabel("Tokens", { exact: true }).fill(tokens);
  await admin.getByLabel("Reason (shown in the user's ledger)").fill(reason);
  await admin.getByRole("button", { name: button }).click();
  await expect(admin.getByTestId("admin-balance")).not.toHaveText(before ?? "");
}
