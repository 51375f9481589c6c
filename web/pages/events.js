// pages/events: the event log (audit and server events) as the feed
// delivers it, newest first, filtered by kind, severity, bank, client or
// text. New events appear as they happen.

import { el, field, fmtTime, setText, syncList, table, tableRow } from '../ui.js';

const COLUMNS = ['Time', 'Severity', 'Kind', 'Bank slot', 'Client slot', 'Actor', 'Message'];

const SHOWN_MAX = 500;

function matches(e, f) {
	if (f.kind && !(e.kind === f.kind || e.kind.startsWith(`${f.kind}.`)))
		return false;
	if (f.severity && e.severity !== f.severity)
		return false;
	if (f.bank !== '' && e.bank_id !== Number(f.bank))
		return false;
	if (f.client !== '' && e.client_id !== Number(f.client))
		return false;
	if (f.text) {
		const hay = `${e.kind} ${e.message || ''} ${e.actor || ''}`.toLowerCase();
		if (!hay.includes(f.text.toLowerCase()))
			return false;
	}
	return true;
}

function slotText(a, b) {
	if (a === null || a === undefined)
		return '–';
	return b === null || b === undefined ? `${a}` : `${a}:${b}`;
}

export function mount(root, ctx) {
	const { store } = ctx;
	const kind = el('select', { id: 'ev-kind' });
	const severity = el('select', { id: 'ev-severity' },
		['', 'info', 'notice', 'warning', 'error'].map((s) =>
			el('option', { value: s, text: s || 'any' })));
	const bank = el('input', { id: 'ev-bank', type: 'number', min: '0', max: '1023', inputmode: 'numeric' });
	const client = el('input', { id: 'ev-client', type: 'number', min: '0', max: '1023', inputmode: 'numeric' });
	const text = el('input', { id: 'ev-text', type: 'search' });
	const form = el('form', { class: 'inline-form filters', role: 'search', 'aria-label': 'Filter events' },
		field('Kind', kind), field('Severity', severity), field('Bank', bank),
		field('Client', client), field('Text', text));
	form.addEventListener('submit', (e) => e.preventDefault());
	form.addEventListener('input', () => update());
	const count = el('p', { class: 'muted', 'aria-live': 'polite' });
	const tbody = el('tbody', {});
	root.append(form, count, table('Events, newest first', COLUMNS, tbody));

	function update() {
		/* kinds seen so far, and their families ("slotmap" for slotmap.*) */
		const kinds = new Set();
		for (const e of store.events) {
			kinds.add(e.kind);
			if (e.kind.includes('.'))
				kinds.add(e.kind.split('.')[0]);
		}
		if (kind.value)
			kinds.add(kind.value);
		syncList(kind, [{ v: '', t: 'any' }, ...[...kinds].sort().map((k) => ({ v: k, t: k }))],
			(o) => o.v, (o) => el('option', { value: o.v }), (opt, o) => setText(opt, o.t));
		const f = { kind: kind.value, severity: severity.value, bank: bank.value.trim(),
			client: client.value.trim(), text: text.value.trim() };
		const all = store.events.filter((e) => matches(e, f));
		const shown = all.slice(-SHOWN_MAX).reverse();
		setText(count, `${all.length} of ${store.events.length} events` +
			(all.length > SHOWN_MAX ? ` (newest ${SHOWN_MAX} shown)` : ''));
		syncList(tbody, shown, (e) => e.event_id, (e) => {
			const tr = tableRow(COLUMNS);
			tr.className = `sev-row sev-${e.severity}`;
			tr._c[0].className = 'nowrap';
			tr._c[2].className = 'mono';
			[fmtTime(e.at), e.severity, e.kind, slotText(e.bank_id, e.bank_slot),
				slotText(e.client_id, e.client_slot), e.actor || '–', e.message || '']
				.forEach((t, i) => setText(tr._c[i], t));
			return tr;
		}, () => {});
	}

	update();
	return { update };
}
