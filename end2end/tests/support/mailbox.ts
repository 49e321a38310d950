import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

/** The subjects of the letters to `to` in the development mailbox (DATA_DIR/mailbox), in no
 * particular order. */
export function subjectsTo(to: string): string[] {
  const mailbox = join(process.env.E2E_DATA_DIR!, "mailbox");
  let files: string[] = [];
  try {
    files = readdirSync(mailbox).filter((name) => name.endsWith(".eml"));
  } catch {
    return [];
  }
  return files
    .map((name) => readFileSync(join(mailbox, name), "utf8"))
    .filter((mail) => new RegExp(`^To: ${to.replace(/[.+]/g, "\\$&")}\\r?$`, "m").test(mail))
    .map((mail) => /^Subject: (.*?)\r?$/m.exec(mail)?.[1] ?? "");
}
