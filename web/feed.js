// feed: the server's /feed WebSocket (docs/feed.md) and the store it fills.
// The store holds every row of banks, bank_slots, clients, client_slots and
// slotmaps keyed by primary key, plus the latest events; a snapshot
// replaces it, change and event messages patch it. The connection is an
// explicit state machine: connecting -> live <-> stale, -> offline (retry
// with backoff) or -> refused (bad token: no retry).

const PROTOCOL = 'remsim-feed.v1';
/* stale: no message for this long, or 2.5 heartbeat intervals if longer */
const STALE_MS = 40000;		/* heartbeats come every 15 s by default */
const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 15000;
const EVENTS_KEPT = 1000;

export const TABLE_KEYS = {
	banks: ['bank_id'],
	bank_slots: ['bank_id', 'slot_nr'],
	clients: ['client_id'],
	client_slots: ['client_id', 'slot_nr'],
	slotmaps: ['bank_id', 'bank_slot'],
};

export function rowKey(table, row) {
	return TABLE_KEYS[table].map((k) => row[k]).join(':');
}

export class Store {
	constructor() {
		this.tables = {};
		for (const t of Object.keys(TABLE_KEYS))
			this.tables[t] = new Map();
		this.events = [];
		this.loaded = false;	/* a snapshot has arrived */
		this.listeners = new Set();
	}

	subscribe(fn) {
		this.listeners.add(fn);
		return () => this.listeners.delete(fn);
	}

	notify(what) {
		for (const fn of this.listeners)
			fn(what);
	}

	rows(table) {
		return [...this.tables[table].values()];
	}

	get(table, ...key) {
		return this.tables[table].get(key.join(':'));
	}

	replace(snap) {
		for (const t of Object.keys(TABLE_KEYS)) {
			const m = new Map();
			for (const row of snap[t] || [])
				m.set(rowKey(t, row), row);
			this.tables[t] = m;
		}
		this.events = (snap.events || []).slice(-EVENTS_KEPT);
		this.loaded = true;
		this.notify({ type: 'snapshot' });
	}

	apply(msg) {
		const m = this.tables[msg.table];
		if (!m || !msg.row)
			return;
		const k = rowKey(msg.table, msg.row);
		if (msg.op === 'delete')
			m.delete(k);
		else
			m.set(k, msg.row);
		this.notify({ type: 'change', table: msg.table, op: msg.op, row: msg.row });
	}

	addEvent(ev) {
		this.events.push(ev);
		if (this.events.length > EVENTS_KEPT)
			this.events.splice(0, this.events.length - EVENTS_KEPT);
		this.notify({ type: 'event', event: ev });
	}

	clear() {
		for (const t of Object.keys(TABLE_KEYS))
			this.tables[t] = new Map();
		this.events = [];
		this.loaded = false;
		this.notify({ type: 'snapshot' });
	}
}

export class Feed {
	/*
	 * onState(state, detail) hears every state change; onRefused(message)
	 * when the server refuses the token.
	 */
	constructor(store, token, { onState = () => {}, onRefused = () => {} } = {}) {
		this.store = store;
		this.token = token;
		this.onState = onState;
		this.onRefused = onRefused;
		this.state = 'idle';
		this.ws = null;
		this.seq = 0;
		this.attempt = 0;
		this.retryTimer = null;
		this.staleTimer = null;
		this.lastMessageAt = 0;
		this.lastHeartbeatAt = 0;
		this.staleMs = STALE_MS;
	}

	setState(state, reason) {
		if (state === this.state)
			return;
		console.info(`feed: ${this.state} -> ${state} (${reason})`);
		this.state = state;
		this.onState(state, reason);
	}

	start() {
		this.stopped = false;
		this.connect();
	}

	stop() {
		this.stopped = true;
		clearTimeout(this.retryTimer);
		clearTimeout(this.staleTimer);
		if (this.ws) {
			this.ws.onclose = null;
			this.ws.close(1000, 'logout');
			this.ws = null;
		}
		this.setState('idle', 'stopped');
	}

	connect() {
		const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
		this.seq = 0;
		this.lastHeartbeatAt = 0;
		this.setState('connecting', `attempt ${this.attempt + 1}`);
		let ws;
		try {
			ws = new WebSocket(`${scheme}://${location.host}/feed`, PROTOCOL);
		} catch (e) {
			this.retry(`cannot connect: ${e.message}`);
			return;
		}
		this.ws = ws;
		/* browsers cannot set headers on a WebSocket: the token goes first */
		ws.onopen = () => ws.send(JSON.stringify({ type: 'auth', token: this.token }));
		ws.onmessage = (e) => this.onMessage(e.data);
		ws.onclose = (e) => this.onClose(e);
	}

	onClose(e) {
		this.ws = null;
		clearTimeout(this.staleTimer);
		if (this.stopped || this.state === 'refused')
			return;
		if (e.code === 4401) {
			this.refuse(e.reason || 'token refused');
			return;
		}
		this.retry(`closed ${e.code}${e.reason ? ' ' + e.reason : ''}`);
	}

	refuse(message) {
		this.setState('refused', message);
		if (this.ws) {
			this.ws.onclose = null;
			this.ws.close();
			this.ws = null;
		}
		this.onRefused(message);
	}

	retry(reason) {
		if (this.stopped)
			return;
		const base = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** this.attempt);
		const delay = Math.round(base * (0.8 + 0.4 * Math.random()));
		this.attempt++;
		this.setState('offline', `${reason}; retry in ${(delay / 1000).toFixed(1)} s`);
		clearTimeout(this.retryTimer);
		this.retryTimer = setTimeout(() => this.connect(), delay);
	}

	/* Drops the connection and starts again with a fresh snapshot. */
	resync(reason) {
		if (this.ws) {
			this.ws.onclose = null;
			this.ws.close(4000, 'resync');
			this.ws = null;
		}
		clearTimeout(this.staleTimer);
		this.retry(reason);
	}

	armStale() {
		this.lastMessageAt = Date.now();
		clearTimeout(this.staleTimer);
		this.staleTimer = setTimeout(() => this.setState('stale',
			`nothing for ${Math.round(this.staleMs / 1000)} s`), this.staleMs);
	}

	onMessage(data) {
		let msg;
		try {
			msg = JSON.parse(data);
		} catch {
			this.resync('a message that is not JSON');
			return;
		}
		if (msg.type === 'error') {
			if (msg.code === 'unauthorized')
				this.refuse(msg.message || 'token refused');
			else
				this.resync(`server error ${msg.code}: ${msg.message}`);
			return;
		}
		if (msg.v !== 1) {
			this.resync(`unknown feed version ${msg.v}`);
			return;
		}
		if (msg.seq !== this.seq + 1) {
			this.resync(`sequence gap: ${msg.seq} after ${this.seq}`);
			return;
		}
		this.seq = msg.seq;
		if (msg.type === 'heartbeat') {
			/* --feed-heartbeat may be longer than 15 s: follow it */
			if (this.lastHeartbeatAt)
				this.staleMs = Math.max(STALE_MS,
					2.5 * (Date.now() - this.lastHeartbeatAt));
			this.lastHeartbeatAt = Date.now();
		}
		this.armStale();
		switch (msg.type) {
		case 'snapshot':
			this.attempt = 0;
			this.store.replace(msg);
			break;
		case 'change':
			this.store.apply(msg);
			break;
		case 'event':
			this.store.addEvent(msg.event);
			break;
		case 'resync':
			/* the snapshot that follows replaces everything */
			console.info(`feed: resync (${msg.reason})`);
			break;
		case 'heartbeat':
			break;
		default:
			console.info(`feed: ignoring message type ${msg.type}`);
		}
		if (this.store.loaded)
			this.setState('live', msg.type);
	}
}
