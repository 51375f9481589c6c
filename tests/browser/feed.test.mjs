// feed.test: web/feed.js's protocol handling against a scripted WebSocket:
// auth first, snapshot/change/event into the store, seq gaps, resync,
// refusal without retry, backoff. Run: node --test tests/browser/feed.test.mjs
// (test_dashboard.py does).

import assert from 'node:assert/strict';
import { mock, test } from 'node:test';

class FakeSocket {
	static all = [];

	constructor(url, protocol) {
		this.url = url;
		this.protocol = protocol;
		this.sent = [];
		this.closed = null;
		FakeSocket.all.push(this);
	}

	send(data) { this.sent.push(JSON.parse(data)); }

	close(code, reason) {
		this.closed = { code, reason };
	}

	/* the server's side */
	open() { this.onopen(); }
	msg(obj) { this.onmessage({ data: typeof obj === 'string' ? obj : JSON.stringify(obj) }); }
	serverClose(code, reason = '') { this.onclose({ code, reason }); }
}

globalThis.WebSocket = FakeSocket;
globalThis.location = { protocol: 'http:', host: '127.0.0.1:9997' };
console.info = () => {};

const { Feed, Store } = await import('../../web/feed.js');

function snapshot(seq, extra = {}) {
	return {
		v: 1, type: 'snapshot', seq, at: '2026-11-23T10:00:00.000000Z', reason: 'connect',
		banks: [{ bank_id: 1, online: true }],
		bank_slots: [{ bank_id: 1, slot_nr: 0, apdu_count: 0 }, { bank_id: 1, slot_nr: 1, apdu_count: 0 }],
		clients: [{ client_id: 23 }],
		client_slots: [{ client_id: 23, slot_nr: 0, online: true }],
		slotmaps: [],
		events: [{ event_id: 1, kind: 'bankd.connect' }],
		...extra,
	};
}

function start() {
	FakeSocket.all = [];
	const store = new Store();
	const states = [];
	const refused = [];
	const feed = new Feed(store, 'tok', {
		onState: (s) => states.push(s),
		onRefused: (m) => refused.push(m),
	});
	feed.start();
	return { store, feed, states, refused, ws: FakeSocket.all[0] };
}

test('authenticates first, then fills the store from snapshot and deltas', () => {
	const { store, feed, states, ws } = start();
	assert.equal(ws.url, 'ws://127.0.0.1:9997/feed');
	assert.equal(ws.protocol, 'remsim-feed.v1');
	ws.open();
	assert.deepEqual(ws.sent, [{ type: 'auth', token: 'tok' }]);
	ws.msg(snapshot(1));
	assert.equal(feed.state, 'live');
	assert.equal(store.rows('bank_slots').length, 2);
	ws.msg({ v: 1, type: 'change', seq: 2, table: 'slotmaps', op: 'upsert',
		row: { bank_id: 1, bank_slot: 0, client_id: 23, client_slot: 0, state: 'NEW' } });
	ws.msg({ v: 1, type: 'change', seq: 3, table: 'bank_slots', op: 'upsert',
		row: { bank_id: 1, slot_nr: 0, apdu_count: 42 } });
	assert.equal(store.get('bank_slots', 1, 0).apdu_count, 42);
	// a move: delete of the old key, upsert of the new row
	ws.msg({ v: 1, type: 'change', seq: 4, table: 'slotmaps', op: 'delete',
		row: { bank_id: 1, bank_slot: 0 } });
	ws.msg({ v: 1, type: 'change', seq: 5, table: 'slotmaps', op: 'upsert',
		row: { bank_id: 1, bank_slot: 1, client_id: 23, client_slot: 0, state: 'NEW' } });
	assert.deepEqual(store.rows('slotmaps').map((m) => m.bank_slot), [1]);
	ws.msg({ v: 1, type: 'event', seq: 6, event: { event_id: 2, kind: 'slotmap.move' } });
	ws.msg({ v: 1, type: 'heartbeat', seq: 7, at: '2026-11-23T10:00:15.000000Z' });
	assert.deepEqual(store.events.map((e) => e.event_id), [1, 2]);
	assert.equal(feed.seq, 7);
	assert.deepEqual(states, ['connecting', 'live']);
	feed.stop();
});

test('a sequence gap drops the connection and reconnects with backoff', () => {
	mock.timers.enable({ apis: ['setTimeout'] });
	try {
		const { store, feed, ws } = start();
		ws.open();
		ws.msg(snapshot(1));
		ws.msg({ v: 1, type: 'heartbeat', seq: 3 });
		assert.equal(ws.closed.code, 4000);
		assert.equal(feed.state, 'offline');
		mock.timers.tick(300);
		assert.equal(FakeSocket.all.length, 1, 'not before the backoff');
		mock.timers.tick(500);
		assert.equal(FakeSocket.all.length, 2);
		const ws2 = FakeSocket.all[1];
		ws2.open();
		ws2.msg(snapshot(1, { banks: [] }));
		assert.equal(feed.state, 'live');
		assert.equal(store.rows('banks').length, 0, 'the new snapshot replaced the store');
		feed.stop();
	} finally {
		mock.timers.reset();
	}
});

test('resync then a snapshot replaces everything; bad JSON or version reconnects', () => {
	const { store, feed, ws } = start();
	ws.open();
	ws.msg(snapshot(1));
	ws.msg({ v: 1, type: 'resync', seq: 2, reason: 'queue overflow' });
	ws.msg(snapshot(3, { bank_slots: [] }));
	assert.equal(store.rows('bank_slots').length, 0);
	assert.equal(feed.state, 'live');
	ws.msg('{not json');
	assert.equal(ws.closed.code, 4000);
	assert.equal(feed.state, 'offline');
	feed.stop();
	const b = start();
	b.ws.open();
	b.ws.msg({ ...snapshot(1), v: 2 });
	assert.equal(b.feed.state, 'offline');
	b.feed.stop();
});

test('a refused token stops the feed: no retry', () => {
	mock.timers.enable({ apis: ['setTimeout'] });
	try {
		for (const refuse of [
			(ws) => ws.msg({ v: 1, type: 'error', code: 'unauthorized', message: 'revoked' }),
			(ws) => ws.serverClose(4401, 'unauthorized'),
		]) {
			const { feed, refused, ws } = start();
			ws.open();
			refuse(ws);
			assert.equal(feed.state, 'refused');
			assert.equal(refused.length, 1);
			mock.timers.tick(60000);
			assert.equal(FakeSocket.all.length, 1);
		}
	} finally {
		mock.timers.reset();
	}
});

test('a dropped connection retries with growing delays, capped', () => {
	mock.timers.enable({ apis: ['setTimeout'] });
	try {
		const { feed, ws } = start();
		ws.serverClose(1006);
		const delays = [];
		for (let i = 0; i < 8; i++) {
			const before = FakeSocket.all.length;
			let waited = 0;
			while (FakeSocket.all.length === before && waited < 30000) {
				mock.timers.tick(100);
				waited += 100;
			}
			delays.push(waited);
			FakeSocket.all.at(-1).serverClose(1006);
		}
		assert.ok(delays[0] <= 700, delays);
		assert.ok(delays[3] > delays[0], delays);
		assert.ok(Math.max(...delays) <= 18000, delays);
		feed.stop();
	} finally {
		mock.timers.reset();
	}
});

test('no message for 40 s marks the feed stale; the next message makes it live', () => {
	mock.timers.enable({ apis: ['setTimeout', 'Date'] });
	try {
		const { feed, ws } = start();
		ws.open();
		ws.msg(snapshot(1));
		mock.timers.tick(39000);
		assert.equal(feed.state, 'live');
		mock.timers.tick(2000);
		assert.equal(feed.state, 'stale');
		ws.msg({ v: 1, type: 'heartbeat', seq: 2 });
		assert.equal(feed.state, 'live');
		// heartbeats every 60 s (--feed-heartbeat 60000): not stale between them
		mock.timers.tick(60000);
		ws.msg({ v: 1, type: 'heartbeat', seq: 3 });
		mock.timers.tick(59000);
		assert.equal(feed.state, 'live');
		feed.stop();
	} finally {
		mock.timers.reset();
	}
});
