/*
 * static: serves the dashboard (web/) from one root directory. Paths are
 * checked against a strict allow-list before touching the file system, and
 * the opened file's real path must lie inside the root, so neither "..",
 * odd bytes nor a symlink leads out of it. Files are small and local:
 * read whole at request time, so an edit shows with the next request.
 */
#include "static.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

/* larger files: 500; longer Host headers: no explicit ws: source */
#define STATIC_FILE_MAX		(2 * 1024 * 1024)
#define STATIC_HOST_MAX		64
#define STATIC_INDEX		"/index.html"

static char static_root[PATH_MAX];	/* resolved; "" if none */
static size_t static_root_len;

struct static_type {
	const char *ext;
	const char *type;
};

static const struct static_type static_types[] = {
	{ ".html", "text/html; charset=utf-8" },
	{ ".js", "text/javascript; charset=utf-8" },
	{ ".mjs", "text/javascript; charset=utf-8" },
	{ ".css", "text/css; charset=utf-8" },
	{ ".json", "application/json" },
	{ ".webmanifest", "application/manifest+json" },
	{ ".svg", "image/svg+xml" },
	{ ".png", "image/png" },
	{ ".ico", "image/x-icon" },
	{ ".txt", "text/plain; charset=utf-8" },
	{ ".woff2", "font/woff2" },
};

const char *static_default_root(void)
{
	static const char build[] = REMSIM_BINARY_DIR "/";
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

	if (n > 0) {
		exe[n] = '\0';
		if (!strncmp(exe, build, sizeof(build) - 1))
			return REMSIM_WEB_ROOT_SOURCE;
	}
	return REMSIM_WEB_ROOT_INSTALL;
}

int static_init(const char *root, int explicit)
{
	struct stat st;

	static_root[0] = '\0';
	static_root_len = 0;
	if (!realpath(root, static_root) || stat(static_root, &st) ||
	    !S_ISDIR(st.st_mode)) {
		static_root[0] = '\0';
		if (explicit) {
			LOGE(NULL, "--web-root %s: not a directory", root);
			return -1;
		}
		LOGN(NULL, "dashboard not found in %s: / answers 404 "
		     "(--web-root DIR to serve it)", root);
		return 0;
	}
	static_root_len = strlen(static_root);
	LOGN(NULL, "dashboard served from %s", static_root);
	return 0;
}

/* Letters, digits, '-', '_', '.' and '/', no empty or dot-led component. */
static int static_path_ok(const char *path)
{
	const char *p;

	if (path[0] != '/')
		return 0;
	for (p = path; *p; p++) {
		char c = *p;

		if (c == '/') {
			if (p[1] == '/' || p[1] == '.' || p[1] == '\0')
				return 0;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '-' || c == '_' ||
		      c == '.'))
			return 0;
	}
	return 1;
}

static const char *static_type_of(const char *path)
{
	const char *dot = strrchr(path, '.');

	if (dot && !strchr(dot, '/'))
		for (size_t i = 0;
		     i < sizeof(static_types) / sizeof(static_types[0]); i++)
			if (!strcmp(dot, static_types[i].ext))
				return static_types[i].type;
	return "application/octet-stream";
}

/* A host[:port] that may go into a header as it is. */
static int static_host_ok(const char *host)
{
	size_t n = strlen(host);

	if (!n || n > STATIC_HOST_MAX)
		return 0;
	for (; *host; host++) {
		char c = *host;

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '-' || c == '.' ||
		      c == ':' || c == '[' || c == ']'))
			return 0;
	}
	return 1;
}

/*
 * On every answer, errors included. No inline script or style anywhere;
 * the feed is a WebSocket to this same host. CSP 3 lets 'self' match ws:
 * of the same host, older browsers need it spelled out. These headers
 * share http.c's room for extra headers (512 bytes): keep them short.
 */
static void static_add_security_headers(struct http_req *req,
					const struct static_headers *h)
{
	char csp[320], ws[STATIC_HOST_MAX + 8] = "";

	if (static_host_ok(h->host))
		snprintf(ws, sizeof(ws), " ws://%s", h->host);
	snprintf(csp, sizeof(csp),
		 "default-src 'self'; script-src 'self'; style-src 'self'; "
		 "img-src 'self'; connect-src 'self'%s; object-src 'none'; "
		 "base-uri 'none'; form-action 'none'; "
		 "frame-ancestors 'none'", ws);
	http_add_header(req, "Content-Security-Policy", csp);
	http_add_header(req, "X-Content-Type-Options", "nosniff");
	http_add_header(req, "X-Frame-Options", "DENY");
	http_add_header(req, "Referrer-Policy", "no-referrer");
	http_add_header(req, "Cross-Origin-Opener-Policy", "same-origin");
}

static void static_refuse(struct http_req *req, int status, const char *text,
			  const char *why)
{
	LOGN(req->peer, "%s %s refused: %d: %s", http_method_name(req->method),
	     req->path, status, why);
	http_reply(req, status, "text/plain; charset=utf-8", text,
		   strlen(text));
}

/* The same text as any other unknown path of the HTTP listener. */
static void static_not_found(struct http_req *req, const char *why)
{
	static_refuse(req, 404, "Resource not found", why);
}

/* The opened file must be inside the root, whatever symlinks led there. */
static int static_fd_inside_root(int fd)
{
	char link[64], real[PATH_MAX];
	ssize_t n;

	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, real, sizeof(real) - 1);
	if (n <= 0)
		return 0;
	real[n] = '\0';
	return (size_t)n > static_root_len &&
	       !strncmp(real, static_root, static_root_len) &&
	       real[static_root_len] == '/';
}

static int static_read_all(int fd, char *buf, size_t len)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = read(fd, buf + got, len - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		got += (size_t)n;
	}
	return 0;
}

/* Strong validator: changes whenever the file is replaced or edited. */
static void static_etag(const struct stat *st, char *out, size_t len)
{
	snprintf(out, len, "\"%llx-%llx-%lx\"", (unsigned long long)st->st_size,
		 (unsigned long long)st->st_mtim.tv_sec,
		 (unsigned long)st->st_mtim.tv_nsec);
}

/* If-None-Match: "*" or a list of tags, possibly weak (W/). */
static int static_etag_matches(const char *header, const char *etag)
{
	size_t n = strlen(etag);
	const char *p;

	if (!strcmp(header, "*"))
		return 1;
	for (p = strstr(header, etag); p; p = strstr(p + 1, etag))
		if (p[n] == '\0' || p[n] == ',' || p[n] == ' ')
			return 1;
	return 0;
}

static void static_send_file(struct http_req *req,
			     const struct static_headers *h, int fd,
			     const struct stat *st, const char *path)
{
	char etag[64], *body;

	static_etag(st, etag, sizeof(etag));
	http_add_header(req, "ETag", etag);
	/* always revalidate: an update never mixes old and new modules */
	http_add_header(req, "Cache-Control", "no-cache");
	if (h->if_none_match[0] &&
	    static_etag_matches(h->if_none_match, etag)) {
		http_reply(req, 304, NULL, NULL, 0);
		return;
	}
	body = malloc(st->st_size ? (size_t)st->st_size : 1);
	if (!body) {
		static_refuse(req, 500, "Out of memory\n", "out of memory");
		return;
	}
	if (static_read_all(fd, body, (size_t)st->st_size)) {
		LOGE(req->peer, "cannot read %s%s", static_root, path);
		http_reply(req, 500, "text/plain; charset=utf-8",
			   "Read error\n", 11);
	} else {
		http_reply(req, 200, static_type_of(path), body,
			   (size_t)st->st_size);
	}
	free(body);
}

void static_serve(struct http_req *req, const struct static_headers *h)
{
	const char *path = strcmp(req->path, "/") ? req->path : STATIC_INDEX;
	char full[PATH_MAX];
	struct stat st;
	int fd;

	static_add_security_headers(req, h);
	if (req->method != HTTP_GET && req->method != HTTP_HEAD) {
		http_add_header(req, "Allow", "GET, HEAD");
		static_refuse(req, 405, "Method not allowed\n",
			      "only GET and HEAD");
		return;
	}
	if (!static_root_len) {
		static_not_found(req, "no dashboard root");
		return;
	}
	if (!static_path_ok(path) ||
	    (size_t)snprintf(full, sizeof(full), "%s%s", static_root, path) >=
		    sizeof(full)) {
		static_not_found(req, "path not allowed");
		return;
	}
	fd = open(full, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		static_not_found(req, strerror(errno));
		return;
	}
	if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
		static_not_found(req, "not a regular file");
	} else if (!static_fd_inside_root(fd)) {
		static_not_found(req, "leads outside the web root");
	} else if (st.st_size > STATIC_FILE_MAX) {
		LOGE(req->peer, "%s%s: %lld bytes, larger than %d", static_root,
		     path, (long long)st.st_size, STATIC_FILE_MAX);
		http_reply(req, 500, "text/plain; charset=utf-8",
			   "File too large\n", 15);
	} else {
		static_send_file(req, h, fd, &st, path);
	}
	close(fd);
}
