// pages/tokens: tokens issued through the API and revoked token ids
// (REST v2; tokens are not in the feed). A new token's text is shown once,
// in a dialog, and dropped from the page when it closes.

import { describeError } from '../api.js';
import { dialog, el, field, fmtTime, setText, showStatus, syncList, table, tableRow } from '../ui.js';

const PAGE_SIZE = 1000;
const COLUMNS = ['Token id', 'Role', 'Subject', 'Issued', 'Expires', 'Comment', 'Revoked',
	'Actions'];
const TTLS = [['1 day', 86400], ['30 days', 2592000], ['90 days', 7776000], ['1 year', 31536000]];

export function mount(root, ctx) {
	const { api } = ctx;
	const role = el('select', { id: 'tok-role', required: true },
		['client', 'bankd', 'admin'].map((r) => el('option', { value: r, text: r })));
	const subject = el('input', { id: 'tok-subject', type: 'number', min: '0', required: true,
		inputmode: 'numeric' });
	const ttl = el('select', { id: 'tok-ttl' },
		TTLS.map(([t, s]) => el('option', { value: String(s), text: t, selected: s === 2592000 })));
	const comment = el('input', { id: 'tok-comment', type: 'text', maxlength: '200' });
	const issueBtn = el('button', { type: 'submit', class: 'primary', text: 'Issue token' });
	const form = el('form', { class: 'inline-form', 'aria-labelledby': 'issue-title' },
		el('h2', { id: 'issue-title', text: 'Issue a token' }),
		field('Role', role), field('Subject (bank, client or admin id)', subject),
		field('Valid for', ttl), field('Comment', comment), issueBtn);
	const tbody = el('tbody', {});
	const info = el('p', { class: 'muted' });
	root.append(form, el('h2', { text: 'Tokens' }), info, table('Tokens', COLUMNS, tbody));

	let alive = true;

	async function load() {
		try {
			const r = await api('GET', `/tokens?limit=${PAGE_SIZE}`);
			if (!alive)
				return;
			render(r.tokens);
			setText(info, r.next_offset === null ? `${r.total} tokens` :
				`first ${r.tokens.length} of ${r.total} tokens`);
		} catch (err) {
			showStatus(`Cannot list tokens: ${describeError(err)}`, 'error');
		}
	}

	async function revoke(t) {
		const reason = el('input', { id: 'revoke-reason', type: 'text', maxlength: '200' });
		const v = await dialog('Revoke token', [
			el('p', { text: `Revoke token ${t.token_id} (${t.role || 'unknown role'} ` +
				`${t.subject ?? ''})? Agents using it are dropped, admin requests with it ` +
				'fail from now on. This cannot be undone.' }),
			field('Reason (optional)', reason)],
		[{ label: 'Cancel', value: 'cancel' }, { label: 'Revoke', value: 'ok', danger: true }]);
		if (v !== 'ok')
			return;
		const q = reason.value.trim() ? `?reason=${encodeURIComponent(reason.value.trim())}` : '';
		try {
			await api('DELETE', `/tokens/${t.token_id}${q}`);
			showStatus(`Token ${t.token_id} revoked.`);
		} catch (err) {
			showStatus(`Cannot revoke: ${describeError(err)}`, 'error');
		}
		load();
	}

	function render(tokens) {
		syncList(tbody, tokens, (t) => t.token_id, (t) => {
			const tr = tableRow(COLUMNS);
			tr._c[0].className = 'mono';
			tr._btn = el('button', { type: 'button', class: 'danger', text: 'Revoke…' });
			tr._btn.addEventListener('click', () => revoke(tr._t));
			tr._c[7].className = 'actions';
			tr._c[7].append(tr._btn);
			return tr;
		}, (tr, t) => {
			tr._t = t;
			const c = tr._c;
			setText(c[0], t.token_id);
			setText(c[1], t.role || '–');
			setText(c[2], t.subject ?? '–');
			setText(c[3], fmtTime(t.issued_at));
			setText(c[4], fmtTime(t.expires_at));
			setText(c[5], t.comment || '');
			setText(c[6], t.revoked ? `${fmtTime(t.revoked_at)}${t.revoke_reason ?
				' – ' + t.revoke_reason : ''}` : 'no');
			tr._btn.hidden = t.revoked;
			tr._btn.setAttribute('aria-label', `Revoke token ${t.token_id}`);
		});
	}

	async function showSecret(r) {
		const out = el('textarea', { id: 'new-token', class: 'mono secret', readonly: true,
			rows: '4', 'aria-label': 'New token' });
		out.value = r.token;
		const copy = el('button', { type: 'button', text: 'Copy' });
		copy.addEventListener('click', async () => {
			out.select();
			try {
				await navigator.clipboard.writeText(out.value);
				setText(copy, 'Copied');
			} catch {
				setText(copy, 'Selected: press Ctrl+C');
			}
		});
		await dialog('New token', [
			el('p', { text: `A ${r.role} token for ${r.subject}, valid until ` +
				`${fmtTime(r.expires_at)}. Copy it now: it is shown only this once.` }),
			out, copy], [{ label: 'Done', value: 'done', primary: true }]);
		out.value = '';
	}

	form.addEventListener('submit', async (e) => {
		e.preventDefault();
		const body = { role: role.value, subject: Number(subject.value), ttl: Number(ttl.value) };
		if (comment.value.trim())
			body.comment = comment.value.trim();
		issueBtn.disabled = true;
		try {
			const r = await api('POST', '/tokens', body);
			subject.value = '';
			comment.value = '';
			load();
			await showSecret(r);
		} catch (err) {
			showStatus(`Cannot issue the token: ${describeError(err)}`, 'error');
		} finally {
			issueBtn.disabled = false;
		}
	});

	/* tokens are not in the feed, but their events are: reload on each */
	let lastTokenEvent = -1;
	function update() {
		const ev = ctx.store.events.filter((e) => e.kind.startsWith('token.')).at(-1);
		const id = ev ? ev.event_id : 0;
		if (id !== lastTokenEvent) {
			lastTokenEvent = id;
			load();
		}
	}

	update();
	return {
		update,
		unmount() {
			alive = false;
		},
	};
}
