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

/** A lazy island's code (`#[island(lazy)]`), split out of the WASM by cargo-leptos `--split`. */
const LAZY_ISLAND = /\/pkg\/split_([a-z_]+)_loader_\d+\.[A-Za-z0-9_-]{22}\.wasm$/;
/** The loader that names the split files. */
const SPLIT_LOADER = /\/pkg\/__wasm_split\.[A-Za-z0-9_-]{22}\.js$/;

test("a lazy island's code comes only to a page that shows it, compressed and kept; its loader is asked again", async ({
  page,
}) => {
  const loaded: Response[] = [];
  page.on("response", (response) => {
    if (new URL(response.url()).pathname.startsWith("/pkg/")) loaded.push(response);
  });
  const islands = () =>
    loaded.map((r) => LAZY_ISLAND.exec(new URL(r.url()).pathname)?.[1]).filter((name) => name !== undefined);

  await signUp(page, "lazy");
  await page.goto("/app/billing");
  await hydrated(page);
  loaded.length = 0;
  await page.reload();
  await hydrated(page);
  expect(islands()).toEqual([]);

  await page.context().clearCookies();
  await page.goto("/login");
  await hydrated(page);
  expect(islands()).toEqual(["login_form"]);
  const island = loaded.find((r) => LAZY_ISLAND.test(new URL(r.url()).pathname))!;
  const headers = await island.allHeaders();
  expect(headers["content-encoding"]).toBe("br");
  expect(headers["cache-control"]).toBe("public, max-age=31536000, immutable");
  const loader = loaded.find((r) => SPLIT_LOADER.test(new URL(r.url()).pathname));
  expect(loader, "the split loader").toBeDefined();
  expect((await loader!.allHeaders())["cache-control"]).toBe("public, no-cache");
});
