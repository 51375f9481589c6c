// pages/banks: every bank with its slots as a grid: card present, ATR,
// the bankd worker's state, the client the slot is mapped to (and the
// mapping's state) and the APDU counter, all live from the feed.

import { el, fmtTime, setBadge, setText, syncList } from '../ui.js';

function componentText(c) {
	if (!c)
		return '–';
	return [c.name, c.software, c.swVersion].filter(Boolean).join(' / ') || '–';
}

function bankSlots(store, bankId) {
	const slots = new Map();
	for (const s of store.rows('bank_slots'))
		if (s.bank_id === bankId)
			slots.set(s.slot_nr, s);
	/* a mapping may name a slot the bankd never reported */
	for (const m of store.rows('slotmaps'))
		if (m.bank_id === bankId && !slots.has(m.bank_slot))
			slots.set(m.bank_slot, { bank_id: bankId, slot_nr: m.bank_slot, missing: true });
	return [...slots.values()].sort((a, b) => a.slot_nr - b.slot_nr);
}

function createSlot(s) {
	const f = {};
	const dd = (name, cls) => (f[name] = el('dd', { class: cls || '' }));
	const li = el('li', { class: 'slot', 'data-bank': s.bank_id, 'data-slot': s.slot_nr },
		el('h3', {}, `Slot ${s.slot_nr} `, (f.card = el('span', {}))),
		el('dl', { class: 'kv' },
			el('dt', { text: 'ATR' }), dd('atr', 'atr mono'),
			el('dt', { text: 'Worker' }), dd('worker', 'worker mono'),
			el('dt', { text: 'Mapped to' }), dd('mapping', 'mapping'),
			el('dt', { text: 'APDUs' }), dd('apdus', 'apdu-count mono')));
	li._f = f;
	return li;
}

function updateSlot(li, s, store) {
	const f = li._f;
	if (s.missing)
		setBadge(f.card, 'not reported', 'muted');
	else if (s.card_present === true)
		setBadge(f.card, 'card', 'ok');
	else if (s.card_present === false)
		setBadge(f.card, 'no card', 'warn');
	else
		setBadge(f.card, 'unknown', 'muted');
	setText(f.atr, s.atr || '–');
	f.atr.title = s.atr || '';
	setText(f.worker, s.worker_state || '–');
	const m = store.get('slotmaps', s.bank_id, s.slot_nr);
	setText(f.mapping, m ? `client ${m.client_id}:${m.client_slot} (${m.state})` : 'free');
	f.mapping.className = `mapping ${m ? (m.state === 'ACTIVE' ? 'ok' : 'pending') : 'muted'}`;
	setText(f.apdus, s.apdu_count ?? 0);
	li.classList.toggle('slot-active', s.worker_state === 'CONNECTED_CLIENT_MAPPED_CARD');
}

function createBank(b) {
	const f = {};
	const sec = el('section', { class: 'bank', 'aria-labelledby': `bank-${b.bank_id}-title` },
		el('div', { class: 'bank-head' },
			el('h2', { id: `bank-${b.bank_id}-title` }, (f.title = el('span', {})), ' ',
				(f.online = el('span', {}))),
			el('dl', { class: 'kv kv-inline' },
				el('dt', { text: 'Peer' }), (f.peer = el('dd', { class: 'mono' })),
				el('dt', { text: 'Slots' }), (f.nslots = el('dd', {})),
				el('dt', { text: 'Token' }), (f.auth = el('dd', {})),
				el('dt', { text: 'Software' }), (f.comp = el('dd', {})),
				el('dt', { text: 'Last seen' }), (f.seen = el('dd', {})))),
		(f.grid = el('ul', { class: 'slot-grid', 'aria-label': `Slots of bank ${b.bank_id}` })));
	sec._f = f;
	return sec;
}

export function mount(root, ctx) {
	const { store } = ctx;
	const list = el('div', { class: 'banks' });
	const empty = el('p', { class: 'muted', text: 'No banks yet: start a remsim-bankd.' });
	root.append(empty, list);

	function update() {
		const banks = store.rows('banks').sort((a, b) => a.bank_id - b.bank_id);
		empty.hidden = banks.length > 0;
		syncList(list, banks, (b) => b.bank_id, createBank, (sec, b) => {
			const f = sec._f;
			setText(f.title, b.name ? `Bank ${b.bank_id} – ${b.name}` : `Bank ${b.bank_id}`);
			setBadge(f.online, b.online ? 'online' : 'offline', b.online ? 'ok' : 'warn');
			setText(f.peer, b.peer_addr || '–');
			setText(f.nslots, b.num_slots ?? '–');
			setText(f.auth, b.authenticated === null || b.authenticated === undefined ?
				'–' : b.authenticated ? 'valid' : 'none (unauthenticated)');
			setText(f.comp, componentText(b.component));
			setText(f.seen, fmtTime(b.last_seen));
			syncList(f.grid, bankSlots(store, b.bank_id), (s) => s.slot_nr, createSlot,
				(li, s) => updateSlot(li, s, store));
		});
	}

	update();
	return { update };
}
