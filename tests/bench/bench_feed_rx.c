/*
 * bench_feed_rx: N /feed subscribers in one process, for scripts/bench feed.
 * Each upgrades with the admin token in REMSIM_TOKEN and waits for its
 * snapshot; after that every "created_by":"bench:<ns>" in what it receives
 * is one delivery, delayed by now (CLOCK_REALTIME) - <ns>. Prints "ready"
 * once all N have their snapshot and, at EOF on stdin, a JSON summary.
 *
 * usage: REMSIM_TOKEN=... bench_feed_rx PORT N
 */
#define _GNU_SOURCE	/* memmem */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define RX_BUF		(256 * 1024)
#define RX_TAIL		64	/* kept across reads: a marker may straddle */
#define RX_HDR_MAX	4096
#define MARKER		"\"created_by\":\"bench:"
#define SNAPSHOT_END	"\"events\":"	/* the snapshot's last key */

enum sub_phase { SUB_HANDSHAKE, SUB_SNAPSHOT, SUB_LIVE, SUB_CLOSED };

struct sub {
	int fd;
	enum sub_phase phase;
	size_t hdr_len;
	char hdr[RX_HDR_MAX];
	size_t tail_len;
	char tail[RX_TAIL];
};

struct delays {
	double *v;
	size_t n, cap;
};

static long long realtime_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int delays_add(struct delays *d, double ms)
{
	if (d->n == d->cap) {
		size_t cap = d->cap ? 2 * d->cap : 1 << 16;
		double *v = realloc(d->v, cap * sizeof(*v));

		if (!v)
			return -1;
		d->v = v;
		d->cap = cap;
	}
	d->v[d->n++] = ms;
	return 0;
}

static int sub_connect(struct sub *s, int port, const char *token)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_port = htons((uint16_t)port) };
	char req[2048];
	int n;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	s->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s->fd < 0 || connect(s->fd, (struct sockaddr *)&sa, sizeof(sa)))
		return -1;
	n = snprintf(req, sizeof(req),
		     "GET /feed HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
		     "Upgrade: websocket\r\nConnection: Upgrade\r\n"
		     "Sec-WebSocket-Key: cmVtc2ltLWJlbmNoLWZlZWQ=\r\n"
		     "Sec-WebSocket-Version: 13\r\n"
		     "Sec-WebSocket-Protocol: remsim-feed.v1\r\n"
		     "Authorization: Bearer %s\r\n\r\n", port, token);
	if (n <= 0 || (size_t)n >= sizeof(req) ||
	    write(s->fd, req, (size_t)n) != n)
		return -1;
	return fcntl(s->fd, F_SETFL, O_NONBLOCK);
}

static void keep_tail(struct sub *s, const char *buf, size_t len)
{
	s->tail_len = len < RX_TAIL ? len : RX_TAIL;
	memcpy(s->tail, buf + len - s->tail_len, s->tail_len);
}

/* Markers that end inside data (not already seen in the kept tail). */
static int scan(struct sub *s, const char *data, size_t len, long long now,
		struct delays *d)
{
	static char buf[RX_TAIL + RX_BUF];
	size_t total = s->tail_len + len, skip = s->tail_len;
	const char *p = buf, *end = buf + total;

	memcpy(buf, s->tail, s->tail_len);
	memcpy(buf + s->tail_len, data, len);
	while ((p = memmem(p, (size_t)(end - p), MARKER, sizeof(MARKER) - 1))) {
		const char *q = p + sizeof(MARKER) - 1;
		long long ns = 0;

		while (q < end && *q >= '0' && *q <= '9')
			ns = ns * 10 + (*q++ - '0');
		if (q == end)
			break;	/* completed by the next read */
		if (*q == '"' && (size_t)(q - buf) >= skip &&
		    delays_add(d, (double)(now - ns) / 1e6))
			return -1;
		p = q;
	}
	keep_tail(s, buf, total);
	return 0;
}

/* 1 when this subscriber just got its snapshot, -1 on an error. */
static int sub_read(struct sub *s, char *buf, struct delays *d)
{
	ssize_t n = read(s->fd, buf, RX_BUF);
	long long now = realtime_ns();

	if (n < 0)
		return errno == EAGAIN || errno == EINTR ? 0 : -1;
	if (n == 0) {
		fprintf(stderr, "bench_feed_rx: the server closed a feed\n");
		s->phase = SUB_CLOSED;
		return -1;
	}
	if (s->phase == SUB_HANDSHAKE) {
		size_t take = (size_t)n;
		char *eoh;

		if (take > RX_HDR_MAX - 1 - s->hdr_len)
			take = RX_HDR_MAX - 1 - s->hdr_len;
		memcpy(s->hdr + s->hdr_len, buf, take);
		s->hdr_len += take;
		s->hdr[s->hdr_len] = '\0';
		eoh = strstr(s->hdr, "\r\n\r\n");
		if (!eoh)
			return s->hdr_len == RX_HDR_MAX - 1 ? -1 : 0;
		if (strncmp(s->hdr, "HTTP/1.1 101", 12)) {
			fprintf(stderr, "bench_feed_rx: no upgrade: %.80s\n",
				s->hdr);
			return -1;
		}
		s->phase = SUB_SNAPSHOT;
		/* what came after the headers (only within the header copy) */
		n = (ssize_t)(s->hdr + s->hdr_len - (eoh + 4));
		memmove(buf, eoh + 4, (size_t)n);
	}
	if (s->phase == SUB_SNAPSHOT) {
		static char look[RX_TAIL + RX_BUF];
		size_t total = s->tail_len + (size_t)n;

		memcpy(look, s->tail, s->tail_len);
		memcpy(look + s->tail_len, buf, (size_t)n);
		if (memmem(look, total, SNAPSHOT_END,
			   sizeof(SNAPSHOT_END) - 1)) {
			s->phase = SUB_LIVE;
			s->tail_len = 0;
			return 1;
		}
		keep_tail(s, look, total);
		return 0;
	}
	return scan(s, buf, (size_t)n, now, d) ? -1 : 0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double pct(const struct delays *d, int p)
{
	size_t rank = (d->n * (size_t)p + 99) / 100;

	return d->v[rank ? rank - 1 : 0];
}

int main(int argc, char **argv)
{
	const char *token = getenv("REMSIM_TOKEN");
	int port = argc == 3 ? atoi(argv[1]) : 0;
	int n = argc == 3 ? atoi(argv[2]) : 0, live = 0, ep, rc = 1;
	struct epoll_event ev = { .events = EPOLLIN };
	struct delays d = { 0 };
	struct sub *subs;
	char *buf;

	if (!token || port <= 0 || port > 65535 || n <= 0 || n > 10000) {
		fprintf(stderr, "usage: REMSIM_TOKEN=... bench_feed_rx PORT N\n");
		return 2;
	}
	subs = calloc((size_t)n, sizeof(*subs));
	buf = malloc(RX_BUF);
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (!subs || !buf || ep < 0)
		return 1;
	ev.data.ptr = NULL;	/* stdin: EOF ends the run */
	if (epoll_ctl(ep, EPOLL_CTL_ADD, STDIN_FILENO, &ev))
		return 1;
	for (int i = 0; i < n; i++) {
		if (sub_connect(&subs[i], port, token)) {
			perror("bench_feed_rx: connect");
			return 1;
		}
		ev.data.ptr = &subs[i];
		if (epoll_ctl(ep, EPOLL_CTL_ADD, subs[i].fd, &ev))
			return 1;
	}
	for (;;) {
		struct epoll_event evs[64];
		int k = epoll_wait(ep, evs, 64, -1);

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			goto out;
		for (int i = 0; i < k; i++) {
			struct sub *s = evs[i].data.ptr;
			int r;

			if (!s) {
				char junk[64];

				if (read(STDIN_FILENO, junk, sizeof(junk)) <= 0)
					goto done;
				continue;
			}
			r = sub_read(s, buf, &d);
			if (r < 0)
				goto out;
			if (r == 1 && ++live == n) {
				printf("ready\n");
				fflush(stdout);
			}
		}
	}
done:
	if (d.n)
		qsort(d.v, d.n, sizeof(*d.v), cmp_double);
	printf("{\"subscribers\": %d, \"live\": %d, \"deliveries\": %zu", n,
	       live, d.n);
	if (d.n)
		printf(", \"p50_ms\": %.3f, \"p99_ms\": %.3f, \"max_ms\": %.3f",
		       pct(&d, 50), pct(&d, 99), d.v[d.n - 1]);
	printf("}\n");
	rc = 0;
out:
	for (int i = 0; i < n; i++)
		if (subs[i].fd > 0)
			close(subs[i].fd);
	free(subs);
	free(buf);
	free(d.v);
	close(ep);
	return rc;
}
