import { expect, test, type Response } from "@playwright/test";
import { hydrated, signUp } from "./support/accounts";

/** The front end's files, named by their contents (cargo-leptos `hash-files`). */
const HASHED = /\/pkg\/billing\.[A-Za-z0-9_-]{22}\.(wasm|js|css)$/;

test("the front end arrives brotli-compressed under names the browser keeps; pages are private", async ({ page }) => {
  const files = new Map<string, Response>(); // the first answer for each file
  page.on("response", (response) => {
    if (HASHED.test(new URL(response.url()).pathname) && !files.has(response.url())) {
      files.set(response.url(), response);
    }
  });
  await signUp(page, "wire");
  const billing = await page.goto("/app/billing");
  await hydrated(page);

  const kinds = [...files.keys()].map((url) => HASHED.exec(new URL(url).pathname)![1]).sort();
  expect(kinds).toEqual(["css", "js", "wasm"]);
  for (const [url, file] of files) {
    const headers = await file.allHeaders();
    expect(headers["content-encoding"], url).toBe("br");
    expect(headers["cache-control"], url).toBe("public, max-age=31536000, immutable");
  }
  const page_headers = await billing!.allHeaders();
  expect(page_headers["content-encoding"]).toBe("br");
  expect(page_headers["cache-control"]).toBe("private, no-cache");

  // The next page takes the files from the browser's cache, without asking the server
  // (a file from the cache has a transfer size of 0).
  await page.goto("/app/billing");
  await hydrated(page);
  const transferred = await page.evaluate(
    (urls) =>
      urls.map((url) => (performance.getEntriesByName(url)[0] as PerformanceResourceTiming | undefined)?.transferSize),
    [...files.keys()],
  );
  expect(transferred).toEqual([0, 0, 0]);
});
