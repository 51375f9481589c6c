// ui: small DOM helpers shared by the pages: element building, keyed list
// updates that keep focus and scroll position, the confirmation dialog and
// the status line. Text always goes in as text, never parsed as HTML.

export function el(tag, attrs = {}, ...children) {
	const e = document.createElement(tag);
	for (const [k, v] of Object.entries(attrs)) {
		if (v === null || v === undefined || v === false)
			continue;
		if (k === 'class')
			e.className = v;
		else if (k === 'text')
			e.textContent = v;
		else if (k.startsWith('on') && typeof v === 'function')
			e.addEventListener(k.slice(2), v);
		else if (k in e && typeof v !== 'string')
			e[k] = v;
		else
			e.setAttribute(k, v === true ? '' : v);
	}
	for (const c of children.flat()) {
		if (c === null || c === undefined || c === false)
			continue;
		e.append(c instanceof Node ? c : String(c));
	}
	return e;
}

/* Sets text only when it changed: no needless layout, no lost selection. */
export function setText(e, text) {
	const t = text === null || text === undefined ? '' : String(text);
	if (e.textContent !== t)
		e.textContent = t;
}

/*
 * Makes container's children match items, reusing the element of each key:
 * create(item) builds one, update(elem, item) refreshes it in place. A
 * focused button inside a row stays focused when the row changes.
 */
export function syncList(container, items, key, create, update) {
	const old = new Map();
	for (const child of container.children)
		if (child.dataset.key !== undefined)
			old.set(child.dataset.key, child);
	let prev = null;
	for (const item of items) {
		const k = String(key(item));
		let e = old.get(k);
		if (e)
			old.delete(k);
		else {
			e = create(item);
			e.dataset.key = k;
		}
		update(e, item);
		const want = prev ? prev.nextSibling : container.firstChild;
		if (want !== e)
			container.insertBefore(e, want);
		prev = e;
	}
	for (const e of old.values())
		e.remove();
}

/*
 * A table in a scrolling wrapper; on a phone each row becomes a card and
 * every cell shows its column's name (data-label, see style.css).
 */
export function table(caption, columns, tbody) {
	return el('div', { class: 'table-wrap' },
		el('table', { class: 'table' },
			el('caption', { class: 'sr-only', text: caption }),
			el('thead', {}, el('tr', {}, columns.map((c) => el('th', { scope: 'col', text: c })))),
			tbody));
}

/* A row of empty cells labelled with the columns' names. */
export function tableRow(columns) {
	const cells = columns.map((c) => el('td', { 'data-label': c }));
	const tr = el('tr', {}, cells);
	tr._c = cells;
	return tr;
}

export function yesNo(v) {
	return v === true ? 'yes' : v === false ? 'no' : '–';
}

/* "2026-11-23T10:48:07.965632Z" -> local "2026-11-23 11:48:07" */
export function fmtTime(s) {
	if (!s)
		return '–';
	const d = new Date(s);
	if (isNaN(d))
		return s;
	const p = (n) => String(n).padStart(2, '0');
	return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ` +
		`${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

export function badge(text, kind) {
	return el('span', { class: `badge badge-${kind}`, text });
}

export function setBadge(e, text, kind) {
	setText(e, text);
	const cls = `badge badge-${kind}`;
	if (e.className !== cls)
		e.className = cls;
}

/* A labelled form control: <label>text <input ...></label> */
export function field(label, control, hint) {
	return el('label', { class: 'field' },
		el('span', { class: 'field-label', text: label }), control,
		hint ? el('span', { class: 'field-hint', text: hint }) : null);
}

/*
 * Shows a modal dialog and resolves with the clicked button's value (or
 * null on Escape). body: nodes placed above the buttons.
 */
export function dialog(title, body, buttons) {
	return new Promise((resolve) => {
		const d = el('dialog', { class: 'dialog', 'aria-labelledby': 'dlg-title' },
			el('h2', { id: 'dlg-title', text: title }),
			el('div', { class: 'dialog-body' }, body));
		const row = el('div', { class: 'dialog-buttons' });
		for (const b of buttons) {
			row.append(el('button', {
				type: 'button', class: b.danger ? 'danger' : b.primary ? 'primary' : '',
				text: b.label, onclick: () => { d.close(b.value); },
			}));
		}
		d.append(row);
		d.addEventListener('close', () => {
			const v = d.returnValue;
			d.remove();
			resolve(v === '' || v === undefined ? null : v);
		});
		document.body.append(d);
		d.returnValue = '';
		d.showModal();
		const first = row.querySelector('button:not(.danger)') || row.querySelector('button');
		first.focus();
	});
}

/* "Are you sure?" with the safe choice focused. Resolves true or false. */
export async function confirmAction(title, text, okLabel) {
	const v = await dialog(title, el('p', { text }), [
		{ label: 'Cancel', value: 'cancel' },
		{ label: okLabel, value: 'ok', danger: true },
	]);
	return v === 'ok';
}

let statusTimer = null;
let statusEnabled = true;

/* The status line belongs to the logged-in pages; the login form has its own. */
export function enableStatus(on) {
	if (!on)
		showStatus('');
	statusEnabled = on;
}

/* The page's status line (aria-live): kind is "info" or "error". */
export function showStatus(text, kind = 'info') {
	const s = document.getElementById('status');
	if (!s || !statusEnabled)
		return;
	clearTimeout(statusTimer);
	s.className = `status status-${kind}`;
	s.setAttribute('role', kind === 'error' ? 'alert' : 'status');
	s.textContent = text;
	s.hidden = !text;
	if (text && kind !== 'error')
		statusTimer = setTimeout(() => { s.hidden = true; s.textContent = ''; }, 6000);
}
