// The official RivetKit client sharing one counter actor with the Python client (tests/test_python_client.py).
// Usage: node shared_events.mjs <endpoint> <encoding> <key> <python amount> <own amount>
// 1. connects to counter[key], subscribes to newCount and confirms the subscription with increment(0) probes,
//    then prints {"subscribed": true, "base": n};
// 2. waits for the event caused by the Python client's increment(<python amount>);
// 3. calls increment(<own amount>) itself and prints {"ok": true, "result": {...}} (or {"ok": false, ...}).
import { createClient } from "rivetkit/client";

const [endpoint, encoding, key, pythonAmountText, ownAmountText] = process.argv.slice(2);
const pythonAmount = Number(pythonAmountText);
const ownAmount = Number(ownAmountText);
const client = createClient({ endpoint, encoding });

const events = [];
const waiters = new Set();

function waitForEvent(predicate, ms, what) {
	const found = events.find(predicate);
	if (found !== undefined) return Promise.resolve(found);
	return new Promise((resolve, reject) => {
		const waiter = (value) => {
			if (!predicate(value)) return;
			clearTimeout(timer);
			waiters.delete(waiter);
			resolve(value);
		};
		const timer = setTimeout(() => {
			waiters.delete(waiter);
			reject(new Error(`timed out waiting for ${what}; events so far: ${JSON.stringify(events)}`));
		}, ms);
		waiters.add(waiter);
	});
}

function print(value) {
	process.stdout.write(JSON.stringify(value) + "\n");
}

async function main() {
	const conn = client.counter.getOrCreate([key]).connect();
	conn.on("newCount", (count) => {
		events.push(count);
		for (const waiter of [...waiters]) waiter(count);
	});
	// The subscription is active once an event of our own arrives; probe a bounded number of times.
	let base;
	for (let attempt = 0; ; attempt++) {
		base = await conn.increment(0);
		try {
			await waitForEvent(() => true, 2000, "a probe event");
			break;
		} catch (error) {
			if (attempt === 4) throw error;
		}
	}
	print({ subscribed: true, base });
	const sawPython = await waitForEvent((count) => count >= base + pythonAmount, 20000, "the Python increment");
	const own = await conn.increment(ownAmount);
	await conn.dispose();
	return { base, sawPython, own, events };
}

const timeout = setTimeout(() => {
	print({ ok: false, error: "shared_events timed out" });
	process.exit(1);
}, 40000);
try {
	const result = await main();
	clearTimeout(timeout);
	print({ ok: true, result });
	process.exit(0);
} catch (error) {
	print({ ok: false, error: String(error?.stack ?? error) });
	process.exit(1);
}
