// Drives the rivetgreen inspector page in headless Chromium (playwright-core, Debian's /usr/bin/chromium).
//
//   node inspector_page.mjs <base url> <admin token> <actor id> <screenshot path>
//
// Talks to the pytest test over stdio, one JSON object per line: prints {"step": "ready", ...} once the page shows
// the actor live, waits for the line "changed" on stdin (the test has changed the actor's state meanwhile), checks the
// page shows the new state without a reload, takes the screenshot, calls actions from the page's form, and prints
// {"step": "done", ...}. Any failure prints {"step": "error", ...} and exits 1. Every wait is bounded.
import { chromium } from "playwright-core";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import readline from "node:readline";

const [base, adminToken, actorId, screenshotPath] = process.argv.slice(2);
const WAIT = { timeout: 10000 };
const lines = readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const say = (message) => process.stdout.write(JSON.stringify(message) + "\n");
const problems = [];

async function nextLine() {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error("no instruction from the test")), 30000);
  });
  const { value, done } = await Promise.race([lines.next(), timeout]).finally(() => clearTimeout(timer));
  if (done) throw new Error("stdin closed");
  return value.trim();
}

const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), "rivetgreen-inspector-"));
let context;
try {
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: "/usr/bin/chromium",
    headless: true,
    viewport: { width: 1360, height: 900 },
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
           "--disable-component-update", "--disable-sync"],
  });
  const page = context.pages()[0] || await context.newPage();
  page.on("pageerror", (error) => problems.push(`pageerror: ${error.message}`));
  // A refused request is logged by Chromium as "Failed to load resource" (the page calls a failing action on purpose).
  page.on("console", (message) => {
    if (message.type() === "error" && !message.text().startsWith("Failed to load resource")) {
      problems.push(`console: ${message.text()}`);
    }
  });

  await page.goto(`${base}/inspector/?token=${encodeURIComponent(adminToken)}`, WAIT);
  const row = page.locator(`tr[data-actor-id="${actorId}"]`);
  await row.waitFor(WAIT);
  const listed = await page.locator("#actors tbody tr").count();
  await row.click();
  await page.waitForFunction(() => document.getElementById("live-status").textContent === "live"
    && document.getElementById("state").textContent.includes('"count"'), null, WAIT);
  const before = await page.locator("#state").textContent();
  const addressBar = page.url();
  await page.evaluate(() => { window.__sameDocument = true; });
  say({ step: "ready", state: before, listed, addressBar, rpcs: await page.locator("#action-name option").allTextContents() });

  if ((await nextLine()) !== "changed") throw new Error("unexpected instruction");
  await page.waitForFunction(() => document.getElementById("state").textContent.includes('"count": 42'), null, WAIT);
  const sameDocument = await page.evaluate(() => window.__sameDocument === true);
  const after = await page.locator("#state").textContent();
  fs.mkdirSync(path.dirname(screenshotPath), { recursive: true });
  await page.screenshot({ path: screenshotPath, fullPage: true });

  await page.selectOption("#action-name", "increment");
  await page.fill("#action-args", "[8]");
  await page.click("#action-call");
  await page.waitForFunction(() => document.getElementById("action-output").textContent.trim() === "50", null, WAIT);
  await page.waitForFunction(() => document.getElementById("state").textContent.includes('"count": 50'), null, WAIT);
  const output = (await page.locator("#action-output").textContent()).trim();

  await page.selectOption("#action-name", "fail");
  await page.fill("#action-args", "[]");
  await page.click("#action-call");
  await page.waitForFunction(() => document.getElementById("action-error").textContent.includes("user/"), null, WAIT);
  const actionError = await page.locator("#action-error").textContent();

  await page.fill("#action-args", "[not json");
  await page.click("#action-call");
  await page.waitForFunction(() => document.getElementById("action-error").textContent.includes("not valid JSON"),
    null, WAIT);

  say({ step: "done", before, after, sameDocument, output, actionError, problems,
        connections: await page.locator("#connections").textContent(),
        schedules: await page.locator("#schedules").textContent(),
        queue: await page.locator("#queue").textContent() });
} catch (error) {
  say({ step: "error", message: String(error && error.stack || error), problems });
  process.exitCode = 1;
} finally {
  if (context) await context.close().catch(() => {});
  fs.rmSync(userDataDir, { recursive: true, force: true });
  process.stdin.destroy();
}
