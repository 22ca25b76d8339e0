// Starts the real Plinth gateway (the binary scripts/test-ts.sh builds, at
// $PLINTH_BIN) for the SDK's tests.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface Gateway {
  /** e.g. http://127.0.0.1:40123 */
  baseUrl: string;
  /** The admin principal's API key, bootstrapped at start. */
  adminKey: string;
  /** What the gateway wrote to stdout and stderr so far. */
  output(): string;
  stop(): Promise<void>;
}

function binary(): string {
  const bin = process.env["PLINTH_BIN"];
  if (!bin) {
    throw new Error("PLINTH_BIN is not set: build the gateway (go build -o /tmp/plinth ./cmd/plinth) and set PLINTH_BIN, or run scripts/test-ts.sh");
  }
  return bin;
}

// The environment without PLINTH_ variables, which would configure the gateway.
function cleanEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("PLINTH_")));
}

/**
 * Runs `plinth dev --listen 127.0.0.1:0` (memory backends) and reads the
 * address and admin key from the banner it prints.
 */
export function startDevGateway(): Promise<Gateway> {
  const child = spawn(binary(), ["dev", "--listen", "127.0.0.1:0"], { env: cleanEnv(), stdio: ["ignore", "pipe", "pipe"] });
  return watch(child, (stdout) => {
    const addr = /Listening on (http:\/\/\S+) \(loopback only\)/.exec(stdout)?.[1];
    const key = /^\s+(plk_\S+)\s*$/m.exec(stdout)?.[1];
    return addr && key ? { baseUrl: addr, adminKey: key } : undefined;
  });
}

/**
 * Runs `plinth serve` with a configuration file holding toml (memory
 * backends unless it says otherwise, on a free loopback port): the admin
 * key comes from stdout, the address from the JSON "listening" log line.
 */
export async function startServeGateway(toml: string): Promise<Gateway> {
  const dir = await mkdtemp(join(tmpdir(), "plinth-sdk-test-"));
  const config = join(dir, "plinth.toml");
  await writeFile(config, `listen = "127.0.0.1:0"\n${toml}\n`);
  const child = spawn(binary(), ["serve", "--config", config], { env: cleanEnv(), stdio: ["ignore", "pipe", "pipe"] });
  const gw = await watch(child, (stdout, stderr) => {
    const key = /^\s+(plk_\S+)\s*$/m.exec(stdout)?.[1];
    let addr: string | undefined;
    for (const line of stderr.split("\n")) {
      try {
        const entry = JSON.parse(line) as { msg?: string; addr?: string };
        if (entry.msg === "listening" && entry.addr) {
          addr = `http://${entry.addr}`;
        }
      } catch {
        // not a JSON line
      }
    }
    return addr && key ? { baseUrl: addr, adminKey: key } : undefined;
  });
  return {
    ...gw,
    stop: async () => {
      await gw.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

function watch(
  child: ChildProcess,
  ready: (stdout: string, stderr: string) => { baseUrl: string; adminKey: string } | undefined,
): Promise<Gateway> {
  let stdout = "";
  let stderr = "";
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) {
      return;
    }
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
    await exited;
    clearTimeout(timer);
  };
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      void stop();
      reject(new Error(`the gateway did not start within 60s; its output:\n${stdout}${stderr}`));
    }, 60_000);
    const check = () => {
      const r = ready(stdout, stderr);
      if (r) {
        clearTimeout(timer);
        resolve({ ...r, output: () => stdout + stderr, stop });
      }
    };
    child.stdout!.setEncoding("utf8").on("data", (d: string) => {
      stdout += d;
      check();
    });
    child.stderr!.setEncoding("utf8").on("data", (d: string) => {
      stderr += d;
      check();
    });
    child.once("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`the gateway exited (${code ?? signal}) before it was ready; its output:\n${stdout}${stderr}`));
    });
  });
}

/** A unique suffix, so tests sharing a gateway do not collide (emails are unique). */
export function unique(): string {
  return `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`;
}
