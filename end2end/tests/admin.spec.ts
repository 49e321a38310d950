import { expect, test } from "@playwright/test";
import { hydrated } from "./support/accounts";
import { adminPage } from "./support/admin";

// The development server seeds this user (DEMO_ACCOUNTS, see server/src/demo.rs).
const DEMO_EMAIL = "demo@promptbloom.test";

test("what an admin types before the page hydrates is kept, and finds the user", async ({ browser }) => {
  const admin = await adminPage(browser);
  // Hold the WASM back (routing also turns the browser's cache off) to type first.
  let release!: () => void;
  const held = new Promise<void>((resolve) => (release = resolve));
  await admin.route("**/pkg/*.wasm", async (route) => {
    await held;
    await route.continue();
  });
  await admin.goto("/admin", { waitUntil: "domcontentloaded" });
  const search = admin.getByLabel("Email or user id");
  await search.fill(DEMO_EMAIL);
  await expect(admin.locator("main[data-hydrated]")).toHaveAttribute("data-hydrated", "false");

  release();
  await hydrated(admin);
  await expect(search).toHaveValue(DEMO_EMAIL);
  await admin.getByRole("button", { name: "Find" }).click();
  await expect(admin.getByRole("heading", { name: DEMO_EMAIL })).toBeVisible();
  await admin.context().close();
});
