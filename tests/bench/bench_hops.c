/*
 * bench_hops: what one round trip between two processes costs on this
 * machine, with no work on either side: over a pipe pair (the shell front
 * end's stdin/stdout) and over TCP loopback with TCP_NODELAY (client <->
 * bankd). The relay adds one of each to a direct PC/SC round trip, so their
 * sum is the floor under scripts/bench relay's overhead. Prints JSON.
 *
 * usage: bench_hops [COUNT]
 */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MSG_LEN 58	/* a tpduCardToModem frame of a GET CHALLENGE answer */

static long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int cmp_ll(const void *a, const void *b)
{
	long long x = *(const long long *)a, y = *(const long long *)b;

	return x < y ? -1 : x > y;
}

/* Echo MSG_LEN-byte messages from in to out until EOF. */
static void echo(int in, int out)
{
	char buf[MSG_LEN];

	for (;;) {
		ssize_t n = read(in, buf, sizeof(buf));

		if (n <= 0 || write(out, buf, (size_t)n) != n)
			_exit(0);
	}
}

/* count round trips over (wr, rd); p50 and p99 in *p50, *p99 (ns) */
static int measure(int wr, int rd, int count, long long *p50, long long *p99)
{
	long long *t = calloc((size_t)count, sizeof(*t));
	char buf[MSG_LEN];

	if (!t)
		return -1;
	memset(buf, 0x5a, sizeof(buf));
	for (int i = 0; i < count + 200; i++) {
		long long t0 = now_ns();
		size_t got = 0;

		if (write(wr, buf, sizeof(buf)) != (ssize_t)sizeof(buf))
			goto fail;
		while (got < sizeof(buf)) {
			ssize_t n = read(rd, buf + got, sizeof(buf) - got);

			if (n <= 0)
				goto fail;
			got += (size_t)n;
		}
		if (i >= 200)	/* the first ones warm up */
			t[i - 200] = now_ns() - t0;
	}
	qsort(t, (size_t)count, sizeof(*t), cmp_ll);
	*p50 = t[count / 2];
	*p99 = t[count * 99 / 100];
	free(t);
	return 0;
fail:
	free(t);
	return -1;
}

static int pipe_round_trip(int count, long long *p50, long long *p99)
{
	int to[2], from[2], rc;
	pid_t pid;

	if (pipe(to) || pipe(from))
		return -1;
	pid = fork();
	if (pid < 0)
		return -1;
	if (!pid) {
		close(to[1]);
		close(from[0]);
		echo(to[0], from[1]);
	}
	close(to[0]);
	close(from[1]);
	rc = measure(to[1], from[0], count, p50, p99);
	close(to[1]);
	close(from[0]);
	waitpid(pid, NULL, 0);
	return rc;
}

static int tcp_round_trip(int count, long long *p50, long long *p99)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t alen = sizeof(a);
	int one = 1, l, s, rc;
	pid_t pid;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	l = socket(AF_INET, SOCK_STREAM, 0);
	if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof(a)) ||
	    listen(l, 1) || getsockname(l, (struct sockaddr *)&a, &alen))
		return -1;
	pid = fork();
	if (pid < 0)
		return -1;
	if (!pid) {
		int c = accept(l, NULL, NULL);

		if (c < 0)
			_exit(1);
		setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		echo(c, c);
	}
	close(l);
	s = socket(AF_INET, SOCK_STREAM, 0);
	if (s < 0 || connect(s, (struct sockaddr *)&a, sizeof(a)))
		return -1;
	setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	rc = measure(s, s, count, p50, p99);
	close(s);
	waitpid(pid, NULL, 0);
	return rc;
}

int main(int argc, char **argv)
{
	int count = argc > 1 ? atoi(argv[1]) : 10000;
	long long pp50, pp99, tp50, tp99;

	if (count < 100 || count > 10000000) {
		fprintf(stderr, "usage: bench_hops [COUNT]   (100..10000000)\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	if (pipe_round_trip(count, &pp50, &pp99) ||
	    tcp_round_trip(count, &tp50, &tp99)) {
		perror("bench_hops");
		return 1;
	}
	printf("{\"count\":%d,\"pipe\":{\"p50_us\":%.1f,\"p99_us\":%.1f},"
	       "\"tcp\":{\"p50_us\":%.1f,\"p99_us\":%.1f},"
	       "\"floor\":{\"p50_us\":%.1f,\"p99_us\":%.1f}}\n", count,
	       pp50 / 1e3, pp99 / 1e3, tp50 / 1e3, tp99 / 1e3,
	       (pp50 + tp50) / 1e3, (pp99 + tp99) / 1e3);
	return 0;
}
