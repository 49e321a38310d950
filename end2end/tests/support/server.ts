import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, openSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

export const ROOT = resolve(__dirname, "../../..");

/** The environment a development server runs with on `port` and the database in `dataDir`: the
 * shared test server's (playwright.config.ts) and any a test starts of its own. */
export function serverEnv(port: number, dataDir: string): Record<string, string> {
  const url = `http://127.0.0.1:${port}`;
  return {
    APP_ENV: "development",
    DATA_DIR: dataDir,
    SITE_URL: url,
    LEPTOS_SITE_ADDR: `127.0.0.1:${port}`,
    LEPTOS_SITE_ROOT: join(ROOT, "target/site"),
    LEPTOS_OUTPUT_NAME: "billing",
    RUST_LOG: process.env.RUST_LOG ?? "info",
  };
}

/** A server of one test's own: the same binary and site as the shared one, with its own port and
 * database, which the test may kill and start again (as a crash and a restart would). */
export class OwnServer {
  private process?: ChildProcess;

  private constructor(
    readonly port: number,
    readonly dataDir: string,
  ) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  static async start(): Promise<OwnServer> {
    const server = new OwnServer(await freePort(), mkdtempSync(join(tmpdir(), "billing-e2e-own-")));
    await server.restart();
    return server;
  }

  /** Starts the server (again, on the same port and database) and waits until it answers. */
  async restart() {
    // Its output goes to a file beside its database, to read when a test fails.
    const log = openSync(join(this.dataDir, "server.log"), "a");
    const child = spawn(process.env.E2E_SERVER_BIN!, [], {
      cwd: ROOT,
      env: { ...process.env, ...serverEnv(this.port, this.dataDir) },
      stdio: ["ignore", log, log],
    });
    this.process = child;
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      if (child.exitCode !== null) {
        throw new Error(`the server exited with ${child.exitCode}: see ${this.dataDir}/server.log`);
      }
      try {
        if ((await fetch(`${this.url}/healthz`)).ok) return;
      } catch {
        // Not listening yet.
      }
      await new Promise((done) => setTimeout(done, 100));
    }
    await this.kill();
    throw new Error(`the server did not answer /healthz within 30 s: see ${this.dataDir}/server.log`);
  }

  /** Kills the server at once (SIGKILL: no graceful shutdown, its connections just drop). */
  async kill() {
    const child = this.process;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((done) => child.once("exit", done));
    child.kill("SIGKILL");
    await exited;
  }
}

async function freePort(): Promise<number> {
  return new Promise((done, fail) => {
    const probe = createServer();
    probe.once("error", fail);
    probe.listen(0, "127.0.0.1", () => {
      const { port } = probe.address() as { port: number };
      probe.close(() => done(port));
    });
  });
}
