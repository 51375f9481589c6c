// api: calls to the server's REST v2 (/api/v2, docs/api.md) with the
// admin token of this browser session. A refusal becomes an ApiError that
// carries the server's own {"error":{"code","message"}}.

const TOKEN_KEY = 'remsim.admin-token';

export class ApiError extends Error {
	constructor(status, code, message) {
		super(message);
		this.status = status;
		this.code = code;
	}
}

/* sessionStorage only: the token dies with the tab, never on disk. */
export function getToken() {
	return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(token) {
	if (token)
		sessionStorage.setItem(TOKEN_KEY, token);
	else
		sessionStorage.removeItem(TOKEN_KEY);
}

let onUnauthorized = () => {};

/* Called when the server refuses the token (expired, revoked). */
export function setUnauthorizedHandler(fn) {
	onUnauthorized = fn;
}

export async function api(method, path, body, token = getToken()) {
	const headers = { Accept: 'application/json' };
	if (token)
		headers.Authorization = `Bearer ${token}`;
	const init = { method, headers, cache: 'no-store' };
	if (body !== undefined) {
		headers['Content-Type'] = 'application/json';
		init.body = JSON.stringify(body);
	}
	let resp;
	try {
		resp = await fetch(`/api/v2${path}`, init);
	} catch (e) {
		throw new ApiError(0, 'network', `server not reachable (${e.message})`);
	}
	const text = await resp.text();
	let data = null;
	if (text) {
		try {
			data = JSON.parse(text);
		} catch {
			data = null;
		}
	}
	if (!resp.ok) {
		const err = data && data.error ? data.error : {};
		const e = new ApiError(resp.status, err.code || `http_${resp.status}`,
			err.message || `${resp.status} ${resp.statusText}`);
		if (resp.status === 401 && token === getToken())
			onUnauthorized(e);
		throw e;
	}
	return data;
}

/* "409 bank_slot_in_use: Key ... already exists." for the status line */
export function describeError(e) {
	if (e instanceof ApiError)
		return e.status ? `${e.status} ${e.code}: ${e.message}` : e.message;
	return String(e && e.message ? e.message : e);
}
