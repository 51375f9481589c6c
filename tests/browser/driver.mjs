// driver: runs Debian's chromium headless through playwright-core and obeys
// one JSON command per line on stdin, answering one JSON line on stdout, so
// that tests/integration/test_dashboard.py can do SQL and start agents
// between browser steps. Every answer carries "loads" (full page loads so
// far: a "live" update must not need one) and any console errors or CSP
// violations seen since the last answer.
//
//   {"do":"open","url":U,"shots":DIR} (again: reload)  {"do":"screenshot","name":N}
//   {"do":"click","sel":S}  {"do":"fill","sel":S,"value":V}
//   {"do":"select","sel":S,"value":V}        {"do":"press","sel":S,"key":K}
//   {"do":"wait","sel":S,"state":"visible"|"hidden"|"attached"|"detached"}
//   {"do":"wait_text","sel":S,"re":R}  -> {"text":..., "ms":...}
//   {"do":"text","sel":S}  {"do":"count","sel":S}  {"do":"focused"}
//   {"do":"viewport","width":W,"height":H}   {"do":"overflow"}  {"do":"quit"}
// Selectors are Playwright's (CSS, text=, role=...). Timeouts: "ms" (default 5000).

import { createInterface } from 'node:readline';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const CHROMIUM = process.env.REMSIM_CHROMIUM || '/usr/bin/chromium';
const ARGS = ['--disable-gpu', '--disable-quic', '--no-first-run',
	'--disable-background-networking', '--disable-component-update', '--disable-sync',
	'--disable-dev-shm-usage'];

let browser = null;
let page = null;
let shots = '.';
let loads = 0;
let problems = [];

function answer(obj) {
	const out = { loads, problems, ...obj };
	problems = [];
	process.stdout.write(JSON.stringify(out) + '\n');
}

async function open(cmd) {
	if (!existsSync(CHROMIUM))
		throw new Error(`${CHROMIUM} not found: run scripts/install-deps (Debian package chromium)`);
	shots = cmd.shots || shots;
	mkdirSync(shots, { recursive: true });
	if (page) {	/* open again: a reload of the same tab */
		await page.goto(cmd.url, { waitUntil: 'load' });
		return {};
	}
	browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ARGS });
	const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
	page = await context.newPage();
	page.on('load', () => { loads++; });
	page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
	page.on('console', (m) => {
		/* refused requests (a wrong token's 401) are expected; CSP
		 * violations and script errors are not */
		if (m.type() === 'error' && !m.text().startsWith('Failed to load resource'))
			problems.push(`console: ${m.text()}`);
	});
	await page.goto(cmd.url, { waitUntil: 'load' });
	return {};
}

async function waitText(cmd) {
	const re = new RegExp(cmd.re);
	const t0 = Date.now();
	const loc = page.locator(cmd.sel).first();
	const deadline = t0 + (cmd.ms ?? 5000);
	let text = null;
	for (;;) {
		text = await loc.textContent({ timeout: Math.max(1, deadline - Date.now()) })
			.catch(() => null);
		if (text !== null && re.test(text))
			return { text, ms: Date.now() - t0 };
		if (Date.now() > deadline)
			throw new Error(`${cmd.sel}: text ${JSON.stringify(text)} does not match /${cmd.re}/ ` +
				`after ${cmd.ms ?? 5000} ms`);
		await new Promise((r) => setTimeout(r, 25));
	}
}

const COMMANDS = {
	open,
	async click(c) { await page.locator(c.sel).first().click({ timeout: c.ms ?? 5000 }); return {}; },
	async fill(c) { await page.locator(c.sel).first().fill(c.value, { timeout: c.ms ?? 5000 }); return {}; },
	async select(c) {
		await page.locator(c.sel).first().selectOption(c.value, { timeout: c.ms ?? 5000 });
		return {};
	},
	async press(c) {
		if (c.sel)
			await page.locator(c.sel).first().press(c.key, { timeout: c.ms ?? 5000 });
		else
			await page.keyboard.press(c.key);
		return {};
	},
	async wait(c) {
		await page.locator(c.sel).first().waitFor({ state: c.state || 'visible', timeout: c.ms ?? 5000 });
		return {};
	},
	wait_text: waitText,
	async text(c) { return { text: await page.locator(c.sel).first().textContent({ timeout: c.ms ?? 5000 }) }; },
	async count(c) { return { count: await page.locator(c.sel).count() }; },
	async focused() {
		return { focused: await page.evaluate(() => {
			const e = document.activeElement;
			return e ? `${e.tagName.toLowerCase()}:${e.textContent.trim().slice(0, 40)}` : null;
		}) };
	},
	async screenshot(c) {
		const path = join(shots, `${c.name}.png`);
		await page.screenshot({ path, fullPage: true });
		return { path };
	},
	async viewport(c) { await page.setViewportSize({ width: c.width, height: c.height }); return {}; },
	async overflow() {
		return await page.evaluate(() => ({
			scroll_width: document.documentElement.scrollWidth, width: window.innerWidth }));
	},
	async quit() {
		if (browser)
			await browser.close();
		browser = null;
		return {};
	},
};

const rl = createInterface({ input: process.stdin });
for await (const line of rl) {
	if (!line.trim())
		continue;
	let cmd;
	try {
		cmd = JSON.parse(line);
	} catch (e) {
		answer({ ok: false, error: `not JSON: ${e.message}` });
		continue;
	}
	const fn = COMMANDS[cmd.do];
	if (!fn) {
		answer({ ok: false, error: `unknown command ${cmd.do}` });
		continue;
	}
	try {
		answer({ ok: true, ...(await fn(cmd)) });
	} catch (e) {
		answer({ ok: false, error: e.message.split('\n').slice(0, 6).join('\n') });
	}
	if (cmd.do === 'quit')
		break;
}
if (browser)
	await browser.close();
