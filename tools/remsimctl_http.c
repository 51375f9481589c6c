/*
 * remsimctl_http: the little HTTP/1.1 client remsimctl talks to
 * remsim-server's REST API with: one blocking request per connection
 * ("Connection: close"), bounded by a timeout, Content-Length or chunked
 * answers. Enough for an admin tool; no TLS (use an SSH tunnel or a
 * reverse proxy for remote servers).
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "remsimctl.h"

#define CTL_HTTP_TIMEOUT_S	10
#define CTL_HTTP_MAX_ANSWER	(64 * 1024 * 1024)

#define ERRF(...) snprintf(err, errlen, __VA_ARGS__)

/* "http://host:port" or "http://[v6]:port" -> host, port. */
static int ctl_http_parse_url(const char *url, char *host, size_t hostlen,
			      char *port, size_t portlen)
{
	const char *p = url, *end;

	if (!strncmp(p, "http://", 7))
		p += 7;
	else if (strstr(p, "://"))
		return -1;	/* https and friends: not here */
	if (*p == '[') {
		end = strchr(p, ']');
		if (!end)
			return -1;
		snprintf(host, hostlen, "%.*s", (int)(end - p - 1), p + 1);
		p = end + 1;
	} else {
		end = p + strcspn(p, ":/");
		snprintf(host, hostlen, "%.*s", (int)(end - p), p);
		p = end;
	}
	if (*p == ':') {
		p++;
		end = p + strcspn(p, "/");
		snprintf(port, portlen, "%.*s", (int)(end - p), p);
	} else {
		snprintf(port, portlen, "9997");
	}
	return host[0] ? 0 : -1;
}

static int ctl_http_connect(const char *host, const char *port, char *err,
			    size_t errlen)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res, *ai;
	struct timeval tv = { .tv_sec = CTL_HTTP_TIMEOUT_S };
	int fd = -1, rc;

	rc = getaddrinfo(host, port, &hints, &res);
	if (rc) {
		ERRF("cannot resolve %s: %s", host, gai_strerror(rc));
		return -1;
	}
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
			    ai->ai_protocol);
		if (fd < 0)
			continue;
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		if (!connect(fd, ai->ai_addr, ai->ai_addrlen))
			break;
		ERRF("cannot connect to %s port %s: %s", host, port,
		     strerror(errno));
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	return fd;
}

/* Decodes a chunked body in place; returns its length or -1. */
static ssize_t ctl_http_dechunk(char *body, size_t len)
{
	size_t in = 0, out = 0;

	for (;;) {
		char *end;
		unsigned long n = strtoul(body + in, &end, 16);
		char *eol = memmem(body + in, len - in, "\r\n", 2);

		if (!eol || end == body + in)
			return -1;
		in = (size_t)(eol - body) + 2;
		if (!n)
			return (ssize_t)out;
		if (in + n + 2 > len)
			return -1;
		memmove(body + out, body + in, n);
		out += n;
		in += n + 2;
	}
}

int ctl_http_request(const char *url, const char *method, const char *path,
		     const char *token, const char *body,
		     struct ctl_http_answer *ans, char *err, size_t errlen)
{
	char host[256], port[16], *req = NULL, *buf = NULL, *hdr_end, *p;
	size_t cap = 0, len = 0, hdr_len;
	ssize_t n;
	long clen = -1;
	int fd, chunked = 0, rc = -1;

	memset(ans, 0, sizeof(*ans));
	if (ctl_http_parse_url(url, host, sizeof(host), port, sizeof(port))) {
		ERRF("invalid server URL '%s' (want http://HOST:PORT)", url);
		return -1;
	}
	fd = ctl_http_connect(host, port, err, errlen);
	if (fd < 0)
		return -1;
	n = asprintf(&req, "%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n"
		     "Accept: application/json\r\n%s%s%s"
		     "%s%zu\r\n\r\n%s", method, path, host,
		     token ? "Authorization: Bearer " : "", token ? token : "",
		     token ? "\r\n" : "",
		     body ? "Content-Type: application/json\r\nContent-Length: " :
			    "Content-Length: ",
		     body ? strlen(body) : 0, body ? body : "");
	if (n < 0) {
		ERRF("out of memory");
		goto out;
	}
	if (send(fd, req, (size_t)n, MSG_NOSIGNAL) != n) {
		ERRF("cannot send the request: %s", strerror(errno));
		goto out;
	}
	for (;;) {
		if (len + 4096 + 1 > cap) {
			cap = cap ? 2 * cap : 16384;
			if (cap > CTL_HTTP_MAX_ANSWER) {
				ERRF("answer too large");
				goto out;
			}
			p = realloc(buf, cap);
			if (!p) {
				ERRF("out of memory");
				goto out;
			}
			buf = p;
		}
		n = recv(fd, buf + len, cap - len - 1, 0);
		if (n < 0) {
			ERRF("no answer from %s: %s", url, errno == EAGAIN ?
			     "timed out" : strerror(errno));
			goto out;
		}
		if (!n)
			break;
		len += (size_t)n;
	}
	if (!buf || !len) {
		ERRF("%s closed the connection without an answer", url);
		goto out;
	}
	buf[len] = '\0';
	hdr_end = strstr(buf, "\r\n\r\n");
	if (!hdr_end || sscanf(buf, "HTTP/1.%*d %d", &ans->status) != 1) {
		ERRF("not an HTTP answer from %s", url);
		goto out;
	}
	hdr_len = (size_t)(hdr_end - buf) + 4;
	for (p = strstr(buf, "\r\n"); p && p < hdr_end; p = strstr(p + 2, "\r\n")) {
		char *line = p + 2;

		if (!strncasecmp(line, "content-length:", 15))
			clen = strtol(line + 15, NULL, 10);
		else if (!strncasecmp(line, "transfer-encoding:", 18) &&
			 strcasestr(line, "chunked") &&
			 strcasestr(line, "chunked") < strstr(line, "\r\n"))
			chunked = 1;
		else if (!strncasecmp(line, "content-type:", 13)) {
			const char *v = line + 13;

			while (*v == ' ')
				v++;
			snprintf(ans->content_type, sizeof(ans->content_type),
				 "%.*s", (int)strcspn(v, "\r"), v);
		}
	}
	ans->len = len - hdr_len;
	memmove(buf, buf + hdr_len, ans->len + 1);
	if (chunked) {
		n = ctl_http_dechunk(buf, ans->len);
		if (n < 0) {
			ERRF("garbled chunked answer from %s", url);
			goto out;
		}
		ans->len = (size_t)n;
		buf[n] = '\0';
	} else if (clen >= 0 && (size_t)clen < ans->len) {
		ans->len = (size_t)clen;
		buf[clen] = '\0';
	}
	ans->body = buf;
	buf = NULL;
	rc = 0;
out:
	free(req);
	free(buf);
	close(fd);
	return rc;
}

void ctl_http_answer_free(struct ctl_http_answer *ans)
{
	free(ans->body);
	ans->body = NULL;
}
