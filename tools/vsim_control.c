/*
 * vsim_control: the UNIX stream socket through which tests pull, insert,
 * mute and slow down cards ("remove 0", "mute 1 on", "delay 2 5000",
 * "status"). One command per line; every answer ends with a line starting
 * "ok" or "error".
 */
#define _GNU_SOURCE	/* accept4 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"
#include "vsim_io.h"

#define CONTROL_MAX_DELAY_US	60000000ull	/* a minute per APDU */
#define CONTROL_CTX		"control"

static void control_drop_client(struct vsim_control_client *c,
				const char *why)
{
	LOGI(CONTROL_CTX, "client fd %d closed (%s)", c->fd, why);
	close(c->fd);
	c->fd = -1;
	c->len = 0;
}

/* Makes sure nobody serves the path, then removes a stale socket file. */
static int control_claim_path(const struct sockaddr_un *sa)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int rc;

	if (fd < 0)
		return -1;
	rc = connect(fd, (const struct sockaddr *)sa, sizeof(*sa));
	close(fd);
	if (rc == 0) {
		LOGE(CONTROL_CTX, "%s: another process listens there",
		     sa->sun_path);
		return -1;
	}
	if (errno == ECONNREFUSED)
		unlink(sa->sun_path);
	return 0;
}

/*
 * Binds and listens under a temporary name, then renames the socket into
 * place: whoever waits for the path to appear can connect at once (a bare
 * bind() shows the path before listen() accepts anything). Falls back to
 * binding the path itself when the temporary name would not fit.
 */
static int control_listen(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int n;

	if (fd < 0)
		goto fail;
	n = snprintf(sa.sun_path, sizeof(sa.sun_path), "%s.%d", path,
		     (int)getpid());
	if (n < 0 || (size_t)n >= sizeof(sa.sun_path))
		strcpy(sa.sun_path, path);
	unlink(sa.sun_path);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) || listen(fd, 8))
		goto fail;
	if (strcmp(sa.sun_path, path) && rename(sa.sun_path, path)) {
		int err = errno;

		unlink(sa.sun_path);
		errno = err;
		goto fail;
	}
	return fd;
fail:
	LOGE(CONTROL_CTX, "%s: %s", path, strerror(errno));
	if (fd >= 0)
		close(fd);
	return -1;
}

int vsim_control_open(struct vsim_control *ctl, const char *path,
		      struct vsim_slot *slots, size_t n_slots)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	ctl->listen_fd = -1;
	ctl->slots = slots;
	ctl->n_slots = n_slots;
	for (int i = 0; i < VSIM_CONTROL_CLIENTS; i++)
		ctl->clients[i].fd = -1;
	if (strlen(path) >= sizeof(sa.sun_path)) {
		LOGE(CONTROL_CTX, "%s: path longer than %zu bytes", path,
		     sizeof(sa.sun_path) - 1);
		return -1;
	}
	strcpy(sa.sun_path, path);
	if (control_claim_path(&sa))
		return -1;
	fd = control_listen(path);
	if (fd < 0)
		return -1;
	ctl->listen_fd = fd;
	strcpy(ctl->path, path);
	LOGN(CONTROL_CTX, "listening on %s", path);
	return 0;
}

void vsim_control_close(struct vsim_control *ctl)
{
	if (ctl->listen_fd < 0)
		return;
	for (int i = 0; i < VSIM_CONTROL_CLIENTS; i++)
		if (ctl->clients[i].fd >= 0)
			close(ctl->clients[i].fd);
	close(ctl->listen_fd);
	unlink(ctl->path);
	ctl->listen_fd = -1;
}

size_t vsim_control_fill_pollfds(const struct vsim_control *ctl,
				 struct pollfd *pfds)
{
	size_t n = 0;

	if (ctl->listen_fd < 0)
		return 0;
	pfds[n++] = (struct pollfd){ .fd = ctl->listen_fd, .events = POLLIN };
	for (int i = 0; i < VSIM_CONTROL_CLIENTS; i++)
		pfds[n++] = (struct pollfd){ .fd = ctl->clients[i].fd,
					     .events = POLLIN };
	return n;
}

/* ---- commands ------------------------------------------------------------ */

/* one answer line; 0, or -1 if the client had to be dropped */
static int control_reply(struct vsim_control_client *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int control_reply(struct vsim_control_client *c, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -1;
	if ((size_t)n > sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	line[n++] = '\n';
	/* a few hundred bytes into an idle UNIX socket: never blocks */
	if (send(c->fd, line, (size_t)n, MSG_NOSIGNAL) != n) {
		control_drop_client(c, "answer not sent");
		return -1;
	}
	return 0;
}

static int control_parse_u64(const char *s, uint64_t max, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (!s || !*s || *s == '-' || *s == '+')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || v > max)
		return -1;
	*out = v;
	return 0;
}

static struct vsim_slot *control_find_slot(struct vsim_control *ctl,
					   struct vsim_control_client *c,
					   const char *arg)
{
	uint64_t index;

	if (control_parse_u64(arg, UINT32_MAX, &index)) {
		control_reply(c, "error card index must be a number, not "
			      "'%s'", arg ? arg : "");
		return NULL;
	}
	for (size_t i = 0; i < ctl->n_slots; i++)
		if (ctl->slots[i].index == index)
			return &ctl->slots[i];
	control_reply(c, "error no card %llu in this process",
		      (unsigned long long)index);
	return NULL;
}

/* one JSON line per card, then "ok N cards" */
static int control_status(struct vsim_control *ctl,
			  struct vsim_control_client *c)
{
	char line[512];

	for (size_t i = 0; i < ctl->n_slots; i++) {
		vsim_slot_format_status(&ctl->slots[i], line, sizeof(line));
		if (control_reply(c, "%s", line))
			return -1;
	}
	return control_reply(c, "ok %zu cards", ctl->n_slots);
}

/* runs one command line and answers it; -1 if the client was dropped */
static int control_command(struct vsim_control *ctl,
			   struct vsim_control_client *c, char *line)
{
	char *save = NULL;
	char *cmd = strtok_r(line, " \t", &save);
	char *arg1 = strtok_r(NULL, " \t", &save);
	char *arg2 = strtok_r(NULL, " \t", &save);
	char *extra = strtok_r(NULL, " \t", &save);
	struct vsim_slot *slot;
	const char *why;
	uint64_t v;

	if (!cmd)
		return control_reply(c, "error empty command (try 'help')");
	LOGI(CONTROL_CTX, "command: %s%s%s%s%s", cmd, arg1 ? " " : "",
	     arg1 ? arg1 : "", arg2 ? " " : "", arg2 ? arg2 : "");
	if (!strcmp(cmd, "status") && !arg1)
		return control_status(ctl, c);
	if (!strcmp(cmd, "help") && !arg1)
		return control_reply(c, "ok commands: status, remove INDEX, "
				     "insert INDEX, mute INDEX on|off, "
				     "delay INDEX USEC");
	if (strcmp(cmd, "remove") && strcmp(cmd, "insert") &&
	    strcmp(cmd, "mute") && strcmp(cmd, "delay"))
		return control_reply(c, "error unknown command '%s' (try "
				     "'help')", cmd);
	if (extra || !arg1 || ((!strcmp(cmd, "mute") ||
				!strcmp(cmd, "delay")) != !!arg2))
		return control_reply(c, "error wrong arguments for '%s' "
				     "(try 'help')", cmd);
	slot = control_find_slot(ctl, c, arg1);
	if (!slot)
		return c->fd >= 0 ? 0 : -1;
	if (!strcmp(cmd, "remove") || !strcmp(cmd, "insert")) {
		if ((cmd[0] == 'r' ? vsim_slot_remove :
				     vsim_slot_insert)(slot, &why))
			return control_reply(c, "error card %u: %s",
					     slot->index, why);
		return control_reply(c, "ok card %u %s", slot->index,
				     cmd[0] == 'r' ? "removed" : "inserted");
	}
	if (!strcmp(cmd, "mute")) {
		if (strcmp(arg2, "on") && strcmp(arg2, "off"))
			return control_reply(c, "error mute takes on or off, "
					     "not '%s'", arg2);
		vsim_slot_set_mute(slot, !strcmp(arg2, "on"));
		return control_reply(c, "ok card %u mute %s", slot->index,
				     arg2);
	}
	if (control_parse_u64(arg2, CONTROL_MAX_DELAY_US, &v))
		return control_reply(c, "error delay must be 0..%llu "
				     "microseconds, not '%s'",
				     CONTROL_MAX_DELAY_US, arg2);
	vsim_slot_set_delay(slot, v);
	return control_reply(c, "ok card %u delay %llu us", slot->index,
			     (unsigned long long)v);
}

static void control_accept(struct vsim_control *ctl)
{
	struct vsim_control_client *free_slot = NULL;
	int fd;

	fd = accept4(ctl->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0) {
		if (errno != EAGAIN && errno != EINTR)
			LOGE(CONTROL_CTX, "accept: %s", strerror(errno));
		return;
	}
	for (int i = 0; i < VSIM_CONTROL_CLIENTS && !free_slot; i++)
		if (ctl->clients[i].fd < 0)
			free_slot = &ctl->clients[i];
	if (!free_slot) {
		static const char busy[] = "error too many control clients\n";

		LOGE(CONTROL_CTX, "refused a client: %d already connected",
		     VSIM_CONTROL_CLIENTS);
		(void)!send(fd, busy, sizeof(busy) - 1, MSG_NOSIGNAL);
		close(fd);
		return;
	}
	free_slot->fd = fd;
	free_slot->len = 0;
	free_slot->discarding = 0;
	LOGI(CONTROL_CTX, "client fd %d connected", fd);
}

/* Reads from a client and runs every complete line. */
static void control_read(struct vsim_control *ctl,
			 struct vsim_control_client *c)
{
	char *start, *nl;
	ssize_t n;

	n = recv(c->fd, c->line + c->len, sizeof(c->line) - 1 - c->len, 0);
	if (n == 0) {
		control_drop_client(c, "end of input");
		return;
	}
	if (n < 0) {
		if (errno != EAGAIN && errno != EINTR)
			control_drop_client(c, strerror(errno));
		return;
	}
	c->len += (size_t)n;
	c->line[c->len] = '\0';
	start = c->line;
	while ((nl = strchr(start, '\n')) != NULL) {
		*nl = '\0';
		if (nl > start && nl[-1] == '\r')
			nl[-1] = '\0';
		if (c->discarding)
			c->discarding = 0; /* end of an over-long line */
		else if (control_command(ctl, c, start))
			return;
		start = nl + 1;
	}
	c->len -= (size_t)(start - c->line);
	memmove(c->line, start, c->len);
	if (c->len == sizeof(c->line) - 1) {
		/* answer once, then skip the rest of that line */
		if (!c->discarding)
			control_reply(c, "error line longer than %zu bytes",
				      sizeof(c->line) - 2);
		c->discarding = 1;
		c->len = 0;
	}
}

void vsim_control_handle(struct vsim_control *ctl, const struct pollfd *pfds,
			 size_t n)
{
	if (n == 0 || ctl->listen_fd < 0)
		return;
	/* clients first: an accept must not hand a new fd to an old entry */
	for (size_t i = 1; i < n; i++) {
		struct vsim_control_client *c = &ctl->clients[i - 1];

		if (c->fd >= 0 && c->fd == pfds[i].fd && pfds[i].revents)
			control_read(ctl, c);
	}
	if (pfds[0].revents & POLLIN)
		control_accept(ctl);
}
