import { expect, type Page } from "@playwright/test";

export const PASSWORD = "a fine long passphrase";

/** Signs a brand-new user up and waits for the billing page. */
export async function signUp(page: Page, prefix = "buyer"): Promise<string> {
  const email = `${prefix}-${Date.now()}-${Math.floor(Math.random() * 1e6)}@example.com`;
  await page.goto("/signup");
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password").fill(PASSWORD);
  await page.getByRole("button", { name: "Create account" }).click();
  await expect(page).toHaveURL(/\/app\/billing$/);
  return email;
}

/** Waits until the WASM has taken over the billing page (it marks its `main` element). */
export async function hydrated(page: Page) {
  await expect(page.locator("main[data-hydrated]")).toHaveAttribute("data-hydrated", "true");
}
