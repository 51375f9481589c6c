// pages/overview: what an operator checks first: counts, the server's
// health, alarms (agents offline or unauthenticated, mappings stuck on the
// way to ACTIVE, database or feed down) and the latest events.

import { el, fmtTime, setText, syncList } from '../ui.js';

const HEALTH_POLL_MS = 10000;
const STUCK_MS = 15000;		/* a mapping not ACTIVE after this is an alarm */

function summaryCard(label) {
	const value = el('span', { class: 'card-value', text: '–' });
	const sub = el('span', { class: 'card-sub' });
	const card = el('div', { class: 'card summary' },
		el('span', { class: 'card-label', text: label }), value, sub);
	return { card, value, sub };
}

function alarms(store, health, feedState) {
	const out = [];
	const mapped = new Set(store.rows('slotmaps').map((m) => `${m.client_id}:${m.client_slot}`));
	if (feedState !== 'live')
		out.push({ key: 'feed', sev: 'warn', text: `Live feed is ${feedState}: this page may be out of date` });
	if (health && health.database !== 'up')
		out.push({ key: 'db', sev: 'error', text: `Database ${health.database || 'unreachable'}` });
	for (const b of store.rows('banks')) {
		if (!b.online)
			out.push({ key: `bank-off-${b.bank_id}`, sev: 'warn', text: `Bank ${b.bank_id} is offline` });
		else if (b.authenticated === false)
			out.push({ key: `bank-unauth-${b.bank_id}`, sev: 'warn',
				text: `Bank ${b.bank_id} connected without a token (unauthenticated)` });
	}
	for (const c of store.rows('client_slots')) {
		const id = `${c.client_id}:${c.slot_nr}`;
		if (!c.online && mapped.has(id))
			out.push({ key: `client-off-${id}`, sev: 'warn', text: `Client ${id} is mapped but offline` });
		else if (c.online && c.authenticated === false)
			out.push({ key: `client-unauth-${id}`, sev: 'warn',
				text: `Client ${id} connected without a token (unauthenticated)` });
	}
	const now = Date.now();
	for (const m of store.rows('slotmaps')) {
		const since = Date.parse(m.updated_at);
		if (m.state !== 'ACTIVE' && since && now - since > STUCK_MS)
			out.push({ key: `map-${m.bank_id}:${m.bank_slot}`, sev: 'warn',
				text: `Mapping B${m.bank_id}:${m.bank_slot} -> C${m.client_id}:${m.client_slot} ` +
					`is ${m.state} since ${fmtTime(m.updated_at)}` });
	}
	return out;
}

export function mount(root, ctx) {
	const { store } = ctx;
	const cards = {
		banks: summaryCard('Banks online'),
		slots: summaryCard('Bank slots with a card'),
		clients: summaryCard('Client slots online'),
		maps: summaryCard('Mappings active'),
		health: summaryCard('Server'),
	};
	const alarmList = el('ul', { class: 'alarms', 'aria-labelledby': 'alarms-title' });
	const noAlarms = el('p', { class: 'muted', text: 'No alarms.' });
	const eventList = el('ol', { class: 'event-list', 'aria-labelledby': 'recent-title' });
	root.append(
		el('div', { class: 'summary-grid' }, Object.values(cards).map((c) => c.card)),
		el('h2', { id: 'alarms-title', text: 'Alarms' }), alarmList, noAlarms,
		el('h2', { id: 'recent-title' }, 'Recent events ', el('a', { href: '#/events', text: '(all)' })),
		eventList);

	let health = null;
	async function pollHealth() {
		try {
			health = await ctx.api('GET', '/health');
		} catch (e) {
			health = { status: 'unreachable', database: 'unknown' };
		}
		update();
	}

	function update() {
		const banks = store.rows('banks');
		const slots = store.rows('bank_slots');
		const cslots = store.rows('client_slots');
		const maps = store.rows('slotmaps');
		setText(cards.banks.value, `${banks.filter((b) => b.online).length} / ${banks.length}`);
		setText(cards.slots.value, `${slots.filter((s) => s.card_present).length} / ${slots.length}`);
		setText(cards.clients.value, `${cslots.filter((c) => c.online).length} / ${cslots.length}`);
		setText(cards.maps.value, `${maps.filter((m) => m.state === 'ACTIVE').length} / ${maps.length}`);
		const pending = maps.filter((m) => m.state !== 'ACTIVE').length;
		setText(cards.maps.sub, pending ? `${pending} on the way` : '');
		setText(cards.health.value, health ? health.status : '…');
		setText(cards.health.sub, health ? `database ${health.database}, auth ${health.auth}` : '');

		const list = alarms(store, health, ctx.feedState());
		syncList(alarmList, list, (a) => a.key,
			() => el('li', {}),
			(li, a) => { li.className = `alarm alarm-${a.sev}`; setText(li, a.text); });
		noAlarms.hidden = list.length > 0;

		const recent = store.events.slice(-8).reverse();
		syncList(eventList, recent, (e) => e.event_id,
			(e) => el('li', {}, el('time', { text: fmtTime(e.at) }), ' ',
				el('span', { class: `sev sev-${e.severity}`, text: e.kind }), ' ',
				el('span', { text: e.message || '' })),
			() => {});
	}

	pollHealth();
	const healthTimer = setInterval(pollHealth, HEALTH_POLL_MS);
	/* "stuck" alarms depend on the clock, not only on changes */
	const tick = setInterval(update, 5000);
	update();
	return {
		update,
		unmount() {
			clearInterval(healthTimer);
			clearInterval(tick);
		},
	};
}
