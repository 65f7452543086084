// Runs one scenario of the official RivetKit client against a rivetgreen server and prints its results as JSON.
// Usage: node scenarios.mjs <endpoint> <encoding> <scenario>
// The client is the npm package rivetkit@2.3.19, installed by tests/compat/conftest.py into .cache/node.
import { createClient } from "rivetkit/client";

const [endpoint, encoding, scenario] = process.argv.slice(2);
const client = createClient({ endpoint, encoding, disableMetadataLookup: false });
const key = (name) => [`${name}-${encoding}-${process.pid}`];

function describeError(error) {
	return { group: error.group, code: error.code, message: error.message, metadata: error.metadata ?? null };
}

async function expectError(promise) {
	try {
		await promise;
	} catch (error) {
		return describeError(error);
	}
	return { unexpected: "no error" };
}

function withTimeout(promise, ms, what) {
	let timer;
	const timeout = new Promise((_, reject) => {
		timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms);
	});
	return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function encodeValue(value) {
	// JSON.stringify cannot show BigInt and bytes; tag them so Python can check the exact JS types.
	if (typeof value === "bigint") return { bigint: value.toString() };
	if (value instanceof Uint8Array) return { bytes: Array.from(value) };
	if (Array.isArray(value)) return value.map(encodeValue);
	if (value === undefined) return { undefined: true };
	if (value && typeof value === "object") {
		return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, encodeValue(v)]));
	}
	return value;
}

const scenarios = {
	async actions() {
		const counter = client.counter.getOrCreate(key("actions"));
		const first = await counter.increment(5);
		const second = await counter.increment(2);
		const echoed = await counter.echo(
			42, -7, 1.5, 2 ** 40, "héllo", true, null, { nested: { list: [1, "two", { three: 3 }] } },
			new Uint8Array([1, 2, 255]), 1n << 70n, ["$x", 1],
		);
		const types = await counter.describe(1n << 70n, new Uint8Array([9, 8]), 2 ** 40, 3);
		return { first, second, echoed: encodeValue(echoed), types };
	},

	async errors() {
		const counter = client.counter.getOrCreate(key("errors"));
		const user = await expectError(counter.fail("bad things", "teapot", { hint: 418 }));
		const unknown = await expectError(counter.noSuchAction());
		const internal = await expectError(counter.crash());
		const state = await counter.getCount();
		return { user, unknown, internal, state };
	},

	async events() {
		const counter = client.counter.getOrCreate(key("events"));
		const conn = counter.connect();
		const seen = [];
		const got = new Promise((resolve) => {
			conn.on("newCount", (count) => {
				seen.push(count);
				if (seen.length === 2) resolve();
			});
		});
		const viaConn = await conn.increment(1);
		const viaHandle = await counter.increment(10);
		await withTimeout(got, 5000, "two events");
		const connError = await expectError(conn.fail("over the socket", "socket_error", { n: 1 }));
		const unknown = await expectError(conn.nope());
		const afterError = await conn.getCount();
		await conn.dispose();
		return { viaConn, viaHandle, seen, connError, unknown, afterError };
	},

	async params() {
		const room = client.chatRoom.getOrCreate(key("room"));
		const alice = room.connect({ user: "alice" });
		const messages = [];
		const got = new Promise((resolve) => alice.on("message", (m) => { messages.push(m); resolve(); }));
		const sent = await alice.post("hi there");
		await withTimeout(got, 5000, "message event");
		const whoami = await alice.whoami();
		const viaHeader = await room.whoamiHttp();
		const paramsHandle = client.chatRoom.getOrCreate(key("room"), { params: { user: "bob" } });
		const bob = await paramsHandle.whoamiHttp();
		await alice.dispose();
		const refused = client.chatRoom.getOrCreate(key("room")).connect({ user: "" });
		const refusal = await new Promise((resolve) => {
			refused.onError((error) => resolve(describeError(error)));
			refused.whoami().catch((error) => resolve(describeError(error)));
		});
		await refused.dispose();
		return { sent, messages, whoami, viaHeader, bob, refusal };
	},

	async queue() {
		const worker = client.worker.getOrCreate(key("queue"));
		const noWait = await worker.send("jobs", { task: "a" });
		const waited = await worker.send("jobs", { task: "b" }, { wait: true, timeout: 5000 });
		const timedOut = await worker.send("slow", { task: "c" }, { wait: true, timeout: 200 });
		const processed = await worker.processed();
		return { noWait: noWait ?? null, waited, timedOut, processed };
	},

	async raw() {
		const raw = client.rawServer.getOrCreate(key("raw"));
		const response = await raw.fetch("/hello/world?x=1", {
			method: "POST", body: "hi", headers: { "x-custom": "1" },
		});
		const fetched = { status: response.status, body: await response.json(), header: response.headers.get("x-served-by") };
		const missing = await raw.fetch("/missing");
		const ws = await raw.webSocket("/echo?room=1");
		const replies = [];
		const done = new Promise((resolve) => {
			ws.addEventListener("message", (event) => {
				replies.push(typeof event.data === "string" ? event.data : `binary:${event.data.byteLength ?? event.data.length}`);
				if (replies.length === 2) resolve();
			});
		});
		await new Promise((resolve) => (ws.readyState === 1 ? resolve() : ws.addEventListener("open", resolve)));
		ws.send("ping");
		ws.send(new Uint8Array(3));
		await withTimeout(done, 5000, "websocket echoes");
		ws.close();
		return { fetched, missingStatus: missing.status, replies };
	},

	async addressing() {
		const name = key("addr")[0];
		const created = await client.counter.create([name], { input: { start: 7 } });
		const id = await created.resolve();
		const viaId = await client.counter.getForId(id).getCount();
		const viaGet = await client.counter.get([name]).getCount();
		const duplicate = await expectError(client.counter.create([name]));
		const resolvedAgain = await client.counter.getOrCreate([name]).resolve();
		const missing = await expectError(client.counter.get([`${name}-missing`]).getCount());
		const withInput = await client.counter.getOrCreate([`${name}-input`], { createWithInput: { start: 3 } }).getCount();
		const oddKey = client.counter.getOrCreate([name, "k/2", "back\\slash"]);
		const oddKeyCount = await oddKey.increment(1);
		const oddKeyId = await oddKey.resolve();
		return { idIsString: typeof id === "string", viaId, viaGet, duplicate, sameId: resolvedAgain === id, missing, withInput, oddKeyCount, oddKeyIdIsString: typeof oddKeyId === "string" };
	},

	async reconnect() {
		const counter = client.counter.getOrCreate(key("reconnect"));
		const conn = counter.connect();
		const opened = [];
		conn.onOpen(() => opened.push(Date.now()));
		await conn.increment(1);
		const kicked = await expectError(conn.kickMe());
		// The client reconnects on its own with a new WebSocket; the next call goes through it.
		const after = await withTimeout(conn.increment(1), 10000, "call after reconnect");
		await conn.dispose();
		return { kicked, after, opens: opened.length };
	},
};

const run = scenarios[scenario];
if (!run) {
	console.error(`unknown scenario ${scenario}`);
	process.exit(2);
}
try {
	const result = await withTimeout(run(), 30000, scenario);
	process.stdout.write(JSON.stringify({ ok: true, result }) + "\n");
	process.exit(0);
} catch (error) {
	process.stdout.write(JSON.stringify({ ok: false, error: String(error?.stack ?? error), details: error?.group ? describeError(error) : null }) + "\n");
	process.exit(1);
}
