// pages/clients: every client slot (one remsim-client process each): online,
// peer, token, the bankd it was sent to, its mapping and what it reports of
// the modem-side SIM interface.

import { el, fmtTime, setBadge, setText, syncList, table, tableRow, yesNo } from '../ui.js';

const COLUMNS = ['Client slot', 'Status', 'Peer', 'Token', 'Mapped to', 'Bankd', 'Modem (reset / VCC / clock / card)', 'Last seen'];

function createRow() {
	const tr = tableRow(COLUMNS);
	tr._c[0].className = 'mono';
	tr._c[2].className = 'mono';
	tr._c[1].append(el('span', {}));
	return tr;
}

export function mount(root, ctx) {
	const { store } = ctx;
	const tbody = el('tbody', {});
	const empty = el('p', { class: 'muted', text: 'No clients yet: start a remsim-client.' });
	root.append(empty, table('Client slots', COLUMNS, tbody));

	function update() {
		const byClient = new Map(store.rows('slotmaps').map((m) => [`${m.client_id}:${m.client_slot}`, m]));
		const rows = store.rows('client_slots').sort((a, b) =>
			a.client_id - b.client_id || a.slot_nr - b.slot_nr);
		/* a client with no slot row yet still shows up */
		for (const c of store.rows('clients'))
			if (!rows.some((r) => r.client_id === c.client_id))
				rows.push({ client_id: c.client_id, slot_nr: null, online: false });
		empty.hidden = rows.length > 0;
		syncList(tbody, rows, (r) => `${r.client_id}:${r.slot_nr}`, createRow, (tr, r) => {
			const c = tr._c;
			const id = r.slot_nr === null ? `${r.client_id}` : `${r.client_id}:${r.slot_nr}`;
			const client = store.get('clients', r.client_id);
			setText(c[0], client && client.name ? `${id} (${client.name})` : id);
			setBadge(c[1].firstChild, r.online ? 'online' : 'offline', r.online ? 'ok' : 'muted');
			setText(c[2], r.peer_addr || '–');
			setText(c[3], r.authenticated === null || r.authenticated === undefined ? '–' :
				r.authenticated ? 'valid' : 'none');
			const m = byClient.get(id);
			setText(c[4], m ? `bank ${m.bank_id}:${m.bank_slot} (${m.state})` : '–');
			setText(c[5], r.bankd_addr || '–');
			setText(c[6], [r.reset_active, r.vcc_present, r.clk_active, r.card_present]
				.map(yesNo).join(' / '));
			setText(c[7], fmtTime(r.last_seen));
		});
	}

	update();
	return { update };
}
