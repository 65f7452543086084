// The official client must not notice its actor sleeping: its /connect socket stays open, and the next call wakes
// the actor through it. Usage: node hibernation.mjs <endpoint> <encoding> <key>
// Prints {"ready": true} once connected and subscribed, then waits for a line on stdin (the test puts the actor to
// sleep meanwhile), then calls again and prints {"ok": true, "result": {...}}.
import { createInterface } from "node:readline";
import { createClient } from "rivetkit/client";

const [endpoint, encoding, key] = process.argv.slice(2);
const client = createClient({ endpoint, encoding });
const lines = createInterface({ input: process.stdin });
const nextLine = () => new Promise((resolve) => lines.once("line", resolve));

const events = [];
let opens = 0;
let closes = 0;
let notify = () => {};
const eventAtLeast = (value) => new Promise((resolve, reject) => {
	const timer = setTimeout(() => reject(new Error(`no event >= ${value}; got ${JSON.stringify(events)}`)), 10000);
	const check = () => {
		if (events.some((count) => count >= value)) {
			clearTimeout(timer);
			resolve();
		}
	};
	notify = check;
	check();
});

async function main() {
	const conn = client.counter.getOrCreate([key]).connect();
	conn.onOpen(() => opens++);
	conn.onClose(() => closes++);
	conn.on("newCount", (count) => {
		events.push(count);
		notify();
	});
	const first = await conn.increment(1);
	await eventAtLeast(first);
	process.stdout.write(JSON.stringify({ ready: true }) + "\n");
	await nextLine();
	const second = await conn.increment(1);
	await eventAtLeast(second);
	const closesBeforeDispose = closes;
	await conn.dispose();
	return { first, second, events, opens, closesBeforeDispose };
}

try {
	const result = await main();
	process.stdout.write(JSON.stringify({ ok: true, result }) + "\n");
	process.exit(0);
} catch (error) {
	process.stdout.write(JSON.stringify({ ok: false, error: String(error?.stack ?? error) }) + "\n");
	process.exit(1);
}
