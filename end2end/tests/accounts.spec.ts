import { expect, test } from "@playwright/test";
import { ADMIN, logIn } from "./support/admin";
import { BILLING_PAGE } from "./support/accounts";

const PASSWORD = "a fine long passphrase";

test("sign up, log out, log in; an admin credits the user, who then sees the tokens", async ({
  browser,
}) => {
  const email = `reader-${Date.now()}@example.com`;
  const user = await (await browser.newContext()).newPage();

  // A visitor is sent to log in, and from there to sign up.
  await user.goto("/app/billing");
  await expect(user).toHaveURL(/\/login\?next=%2Fapp%2Fbilling|\/login\?next=\/app\/billing/);
  await user.getByRole("link", { name: "Create an account" }).click();
  await user.getByLabel("Email").fill(email);
  await user.getByLabel("Password").fill("password12345");
  await user.getByRole("button", { name: "Create account" }).click();
  await expect(user.getByRole("alert")).toContainText("too easy to guess");
  // The error marks the field it is about, and is read with it.
  const password = user.getByLabel("Password");
  await expect(password).toHaveAttribute("aria-invalid", "true");
  await expect(password).toHaveAccessibleDescription(/too easy to guess.*At least 10 characters/);
  await expect(user.getByLabel("Email")).not.toHaveAttribute("aria-invalid", "true");

  await user.getByLabel("Password").fill(PASSWORD);
  await user.getByRole("button", { name: "Create account" }).click();
  await expect(user).toHaveURL(BILLING_PAGE);
  await expect(user.getByTestId("balance")).toHaveText("0 tokens");

  await user.getByRole("button", { name: "Log out" }).click();
  await expect(user).toHaveURL(/\/login$/);
  // The same email again: the email field is at fault now.
  await user.goto("/signup");
  await user.getByLabel("Email").fill(email);
  await user.getByLabel("Password").fill(PASSWORD);
  await user.getByRole("button", { name: "Create account" }).click();
  await expect(user.getByRole("alert")).toContainText("An account with this email already exists");
  await expect(user.getByLabel("Email")).toHaveAttribute("aria-invalid", "true");
  await expect(user.getByLabel("Email")).toHaveAccessibleDescription(/already exists/);
  await expect(user.getByLabel("Password")).not.toHaveAttribute("aria-invalid", "true");
  await user.goto("/app/billing");
  await expect(user).toHaveURL(/\/login\?next=/);

  await logIn(user, email, "not my password");
  await expect(user.getByRole("alert")).toHaveText("Wrong email or password.");
  await logIn(user, email, PASSWORD);
  await expect(user).toHaveURL(BILLING_PAGE);

  // The admin finds the user and credits them.
  const admin = await (await browser.newContext()).newPage();
  await logIn(admin, ADMIN.email, ADMIN.password);
  await expect(admin).toHaveURL(BILLING_PAGE);
  await admin.getByRole("link", { name: "Admin" }).click();
  await admin.getByLabel("Email or user id").fill(email);
  await admin.getByRole("button", { name: "Find" }).click();
  await expect(admin.getByRole("heading", { name: email })).toBeVisible();
  await admin.getByLabel("Tokens", { exact: true }).fill("2500");
  await admin.getByLabel("Reason (shown in the user's ledger)").fill("Welcome bonus");
  await admin.getByRole("button", { name: "Credit tokens" }).click();
  await expect(admin.getByTestId("admin-balance")).toHaveText("2,500 tokens");

  // The user sees the tokens and the ledger row.
  await user.reload();
  await expect(user.getByTestId("balance")).toHaveText("2,500 tokens");
  const row = user.getByRole("row", { name: /Welcome bonus/ });
  await expect(row).toContainText("Adjustment");
  await expect(row).toContainText("+2,500");
});

test("a user cannot open the admin page", async ({ page }) => {
  const email = `curious-${Date.now()}@example.com`;
  await page.goto("/signup");
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password").fill(PASSWORD);
  await page.getByRole("button", { name: "Create account" }).click();
  await expect(page).toHaveURL(BILLING_PAGE);
  const response = await page.goto("/admin");
  expect(response?.status()).toBe(403);
  await expect(page.getByRole("heading", { name: "Admins only" })).toBeVisible();
});
