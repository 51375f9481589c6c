// pages/mappings: slot mappings (bank slot <-> client slot) with their live
// state; create one from a free bank slot and a free client slot, move a
// client to another bank slot, delete. Writes go through REST v2; the
// table changes when the feed reports the database's change, not before.

import { describeError } from '../api.js';
import { confirmAction, dialog, el, field, fmtTime, setBadge, setText, showStatus,
	syncList, table, tableRow } from '../ui.js';

const COLUMNS = ['Bank slot', 'Client slot', 'State', 'Made by', 'Updated', 'Actions'];

const STATE_KIND = { ACTIVE: 'ok', NEW: 'pending', UNACKNOWLEDGED: 'pending',
	DELETE_REQ: 'warn', DELETING: 'warn' };

function freeBankSlots(store) {
	const used = new Set(store.rows('slotmaps').map((m) => `${m.bank_id}:${m.bank_slot}`));
	return store.rows('bank_slots')
		.filter((s) => !used.has(`${s.bank_id}:${s.slot_nr}`))
		.sort((a, b) => a.bank_id - b.bank_id || a.slot_nr - b.slot_nr)
		.map((s) => ({ value: `${s.bank_id}:${s.slot_nr}`,
			label: `Bank ${s.bank_id} slot ${s.slot_nr}` +
				(s.card_present === true ? ' (card)' : s.card_present === false ? ' (no card)' : '') }));
}

function freeClientSlots(store) {
	const used = new Set(store.rows('slotmaps').map((m) => `${m.client_id}:${m.client_slot}`));
	return store.rows('client_slots')
		.filter((c) => !used.has(`${c.client_id}:${c.slot_nr}`))
		.sort((a, b) => a.client_id - b.client_id || a.slot_nr - b.slot_nr)
		.map((c) => ({ value: `${c.client_id}:${c.slot_nr}`,
			label: `Client ${c.client_id}:${c.slot_nr}${c.online ? ' (online)' : ' (offline)'}` }));
}

/* Keeps the chosen value while the list of choices changes under it. */
function syncOptions(select, placeholder, choices) {
	const items = [{ value: '', label: placeholder }, ...choices];
	syncList(select, items, (o) => o.value,
		(o) => el('option', { value: o.value }),
		(opt, o) => setText(opt, o.label));
}

function pair(v) {
	const [a, b] = v.split(':').map(Number);
	return [a, b];
}

export function mount(root, ctx) {
	const { store, api } = ctx;
	const bankSel = el('select', { id: 'map-bank', required: true });
	const clientSel = el('select', { id: 'map-client', required: true });
	const createBtn = el('button', { type: 'submit', class: 'primary', text: 'Create mapping' });
	const form = el('form', { class: 'inline-form', 'aria-labelledby': 'create-title' },
		el('h2', { id: 'create-title', text: 'New mapping' }),
		field('Bank slot', bankSel), field('Client slot', clientSel), createBtn);
	const tbody = el('tbody', {});
	const empty = el('p', { class: 'muted', text: 'No mappings.' });
	root.append(form, el('h2', { text: 'Mappings' }), empty,
		table('Slot mappings', COLUMNS, tbody));

	form.addEventListener('submit', async (e) => {
		e.preventDefault();
		if (!bankSel.value || !clientSel.value) {
			showStatus('Choose a bank slot and a client slot.', 'error');
			return;
		}
		const [bankId, bankSlot] = pair(bankSel.value);
		const [clientId, clientSlot] = pair(clientSel.value);
		createBtn.disabled = true;
		try {
			await api('POST', '/slotmaps', { bank: { bank_id: bankId, slot: bankSlot },
				client: { client_id: clientId, slot: clientSlot } });
			showStatus(`Mapped bank ${bankId}:${bankSlot} to client ${clientId}:${clientSlot}.`);
			bankSel.value = '';
			clientSel.value = '';
		} catch (err) {
			showStatus(`Cannot create the mapping: ${describeError(err)}`, 'error');
		} finally {
			createBtn.disabled = false;
		}
	});

	async function move(m) {
		const sel = el('select', { id: 'move-bank' });
		syncOptions(sel, 'Choose a free bank slot', freeBankSlots(store));
		const v = await dialog(`Move client ${m.client_id}:${m.client_slot}`,
			[el('p', { text: `Now on bank ${m.bank_id}:${m.bank_slot}. The client is re-pointed ` +
				'to the new bank slot; its SIM changes.' }), field('New bank slot', sel)],
			[{ label: 'Cancel', value: 'cancel' }, { label: 'Move', value: 'ok', danger: true }]);
		if (v !== 'ok')
			return;
		if (!sel.value) {
			showStatus('No bank slot chosen: nothing moved.', 'error');
			return;
		}
		const [bankId, bankSlot] = pair(sel.value);
		try {
			await api('POST', '/slotmaps/move', {
				client: { client_id: m.client_id, slot: m.client_slot },
				bank: { bank_id: bankId, slot: bankSlot } });
			showStatus(`Moved client ${m.client_id}:${m.client_slot} to bank ${bankId}:${bankSlot}.`);
		} catch (err) {
			showStatus(`Cannot move the mapping: ${describeError(err)}`, 'error');
		}
	}

	async function remove(m) {
		const ok = await confirmAction('Delete mapping',
			`Delete the mapping bank ${m.bank_id}:${m.bank_slot} <-> client ` +
			`${m.client_id}:${m.client_slot}? The client loses its SIM.`, 'Delete');
		if (!ok)
			return;
		try {
			await api('DELETE', `/slotmaps/${m.bank_id}/${m.bank_slot}`);
			showStatus(`Deleted the mapping of bank ${m.bank_id}:${m.bank_slot}.`);
		} catch (err) {
			showStatus(`Cannot delete the mapping: ${describeError(err)}`, 'error');
		}
	}

	function createRow() {
		const tr = tableRow(COLUMNS);
		const c = tr._c;
		c[2].append(el('span', {}));
		tr._moveBtn = el('button', { type: 'button', text: 'Move…' });
		tr._delBtn = el('button', { type: 'button', class: 'danger', text: 'Delete…' });
		tr._moveBtn.addEventListener('click', () => move(tr._m));
		tr._delBtn.addEventListener('click', () => remove(tr._m));
		c[5].append(tr._moveBtn, ' ', tr._delBtn);
		c[5].className = 'actions';
		return tr;
	}

	function update() {
		syncOptions(bankSel, 'Choose a free bank slot', freeBankSlots(store));
		syncOptions(clientSel, 'Choose a client slot', freeClientSlots(store));
		const maps = store.rows('slotmaps').sort((a, b) =>
			a.bank_id - b.bank_id || a.bank_slot - b.bank_slot);
		empty.hidden = maps.length > 0;
		syncList(tbody, maps, (m) => `${m.bank_id}:${m.bank_slot}`, createRow, (tr, m) => {
			const c = tr._c;
			tr._m = m;
			tr.dataset.client = `${m.client_id}:${m.client_slot}`;
			setText(c[0], `${m.bank_id}:${m.bank_slot}`);
			setText(c[1], `${m.client_id}:${m.client_slot}`);
			setBadge(c[2].firstChild, m.state, STATE_KIND[m.state] || 'muted');
			setText(c[3], m.created_by);
			setText(c[4], fmtTime(m.updated_at));
			const label = `bank ${m.bank_id}:${m.bank_slot} <-> client ${m.client_id}:${m.client_slot}`;
			tr._moveBtn.setAttribute('aria-label', `Move ${label}`);
			tr._delBtn.setAttribute('aria-label', `Delete ${label}`);
		});
	}

	update();
	return { update };
}
