// app: the dashboard's entry point: login with an admin token (kept in
// sessionStorage only), the feed connection, the hash router (#/banks ...)
// and the live indicator. Each page is a module with mount(root, ctx)
// returning { update(), unmount() }; update() runs after feed changes,
// coalesced so that a burst of changes costs one pass.

import { api, describeError, getToken, setToken, setUnauthorizedHandler } from './api.js';
import { Feed, Store } from './feed.js';
import { el, enableStatus, setText } from './ui.js';
import * as overview from './pages/overview.js';
import * as banks from './pages/banks.js';
import * as clients from './pages/clients.js';
import * as mappings from './pages/mappings.js';
import * as events from './pages/events.js';
import * as tokens from './pages/tokens.js';

const PAGES = {
	overview: { title: 'Overview', mod: overview },
	banks: { title: 'Banks', mod: banks },
	clients: { title: 'Clients', mod: clients },
	mappings: { title: 'Mappings', mod: mappings },
	events: { title: 'Events', mod: events },
	tokens: { title: 'Tokens', mod: tokens },
};
const UPDATE_DELAY_MS = 50;

const LIVE_TEXT = {
	idle: 'not connected',
	connecting: 'connecting…',
	live: 'live',
	stale: 'stale',
	offline: 'offline',
	refused: 'refused',
};

const store = new Store();
let feed = null;
let page = null;		/* { name, view } */
let updateTimer = null;

const main = document.getElementById('main');
const nav = document.getElementById('nav');
const live = document.getElementById('live');
const logoutButton = document.getElementById('logout');

function setLive(state, detail) {
	setText(live, LIVE_TEXT[state] || state);
	live.className = `live live-${state}`;
	live.title = detail || '';
	document.body.dataset.feed = state;
	if (page && page.view.update)
		scheduleUpdate();
}

function scheduleUpdate() {
	if (updateTimer)
		return;
	updateTimer = setTimeout(() => {
		updateTimer = null;
		if (page && page.view.update)
			page.view.update();
	}, UPDATE_DELAY_MS);
}

store.subscribe(scheduleUpdate);

const ctx = { store, api, feedState: () => (feed ? feed.state : 'idle') };

function routeName() {
	const m = /^#\/([a-z]+)/.exec(location.hash);
	return m && PAGES[m[1]] ? m[1] : 'overview';
}

function show(name) {
	if (page) {
		if (page.view.unmount)
			page.view.unmount();
		page = null;
	}
	main.replaceChildren();
	for (const a of nav.querySelectorAll('a')) {
		if (a.dataset.page === name)
			a.setAttribute('aria-current', 'page');
		else
			a.removeAttribute('aria-current');
	}
	const p = PAGES[name];
	document.title = `${p.title} – remsim`;
	const root = el('section', { class: `page page-${name}`, 'aria-labelledby': 'page-title' },
		el('h1', { id: 'page-title', tabindex: '-1', text: p.title }));
	main.append(root);
	page = { name, view: p.mod.mount(root, ctx) || {} };
}

/* A page chosen by the user: focus its heading, so a screen reader reads it. */
function onRoute(e) {
	if (!getToken())
		return;
	show(routeName());
	if (e && e.type === 'hashchange')
		document.getElementById('page-title').focus();
}

function logout(message) {
	if (feed)
		feed.stop();
	feed = null;
	setToken(null);
	store.clear();
	showLogin(message);
}

function startSession(token) {
	setToken(token);
	enableStatus(true);
	nav.hidden = false;
	logoutButton.hidden = false;
	feed = new Feed(store, token, {
		onState: setLive,
		onRefused: (msg) => logout(`The server refused the token: ${msg}`),
	});
	feed.start();
	if (!/^#\/[a-z]+/.test(location.hash))
		history.replaceState(null, '', '#/overview');	/* no hashchange */
	onRoute();
}

function showLogin(message) {
	if (page && page.view.unmount)
		page.view.unmount();
	page = null;
	nav.hidden = true;
	logoutButton.hidden = true;
	enableStatus(false);
	setLive('idle', 'logged out');
	document.title = 'Log in – remsim';
	const input = el('input', {
		id: 'login-token', name: 'token', type: 'password', required: true,
		autocomplete: 'off', spellcheck: 'false', 'aria-describedby': 'login-help',
	});
	const error = el('p', { id: 'login-error', class: 'login-error', role: 'alert' });
	const button = el('button', { type: 'submit', class: 'primary', text: 'Log in' });
	const form = el('form', { class: 'login', 'aria-labelledby': 'login-title' },
		el('h1', { id: 'login-title', text: 'Log in' }),
		el('label', { for: 'login-token', text: 'Admin token' }), input,
		el('p', { id: 'login-help', class: 'field-hint',
			text: 'An admin token (remsimctl token issue --role admin). It is kept in this ' +
				'tab only and forgotten when the tab closes.' }),
		button, error);
	form.addEventListener('submit', async (e) => {
		e.preventDefault();
		const token = input.value.trim();
		setText(error, '');
		button.disabled = true;
		try {
			/* any admin endpoint: 401/403 tell a bad token at once */
			await api('GET', '/banks', undefined, token);
			input.value = '';
			startSession(token);
		} catch (err) {
			setText(error, err.status === 401 || err.status === 403 ?
				`Token refused (${describeError(err)})` : describeError(err));
			input.focus();
		} finally {
			button.disabled = false;
		}
	});
	main.replaceChildren(form);
	if (message)
		setText(error, message);
	input.focus();
}

function buildNav() {
	for (const [name, p] of Object.entries(PAGES))
		nav.append(el('a', { href: `#/${name}`, 'data-page': name, text: p.title }));
}

document.getElementById('skip').addEventListener('click', (e) => {
	e.preventDefault();
	main.focus();
});
logoutButton.addEventListener('click', () => logout('Logged out.'));
window.addEventListener('hashchange', onRoute);
setUnauthorizedHandler((e) => logout(`The server refused the token: ${e.message}`));

buildNav();
const saved = getToken();
if (saved)
	startSession(saved);
else
	showLogin();
