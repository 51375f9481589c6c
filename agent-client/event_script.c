/*
 * event_script: fork/exec of the event hook. The environment is built in
 * the parent when the event happens (so a queued event still describes the
 * moment it fired); the child gets stdin from /dev/null and stdout on our
 * stderr, so it can neither eat shell input nor mix into APDU output.
 */
#define _GNU_SOURCE
#include "event_script.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"

#define ES_CTX		"event-script"
#define ES_NVARS	12
#define ES_NVARS_OSMO	12	/* REMSIM_CLIENT_SLOT is shared */

extern char **environ;

struct es_event {
	char *name;
	char **envp;		/* NULL-terminated, all strings owned */
};

struct event_script {
	char *cmd;
	enum event_style style;
	pid_t pid;		/* running child, 0 if none */
	char *running;		/* its event name */
	struct es_event queue[EVENT_SCRIPT_QUEUE_MAX];
	unsigned int head, len;
};

struct event_script *event_script_new(const char *cmd,
				      enum event_style style)
{
	struct event_script *es = calloc(1, sizeof(*es));

	if (!es)
		return NULL;
	es->style = style;
	es->cmd = strdup(cmd);
	if (!es->cmd) {
		free(es);
		return NULL;
	}
	return es;
}

static void es_event_free(struct es_event *ev)
{
	char **p;

	for (p = ev->envp; p && *p; p++)
		free(*p);
	free(ev->envp);
	free(ev->name);
	ev->envp = NULL;
	ev->name = NULL;
}

void event_script_free(struct event_script *es)
{
	if (!es)
		return;
	if (es->len)
		LOGI(ES_CTX, "%u queued event(s) dropped at exit", es->len);
	while (es->len) {
		es_event_free(&es->queue[es->head]);
		es->head = (es->head + 1) % EVENT_SCRIPT_QUEUE_MAX;
		es->len--;
	}
	free(es->running);
	free(es->cmd);
	free(es);
}

pid_t event_script_running(const struct event_script *es)
{
	return es->pid;
}

enum event_style event_script_style(const struct event_script *es)
{
	return es->style;
}

/* ---- environment -------------------------------------------------------- */

static char *es_var(const char *key, const char *value)
{
	char *s = NULL;

	if (asprintf(&s, "%s=%s", key, value ? value : "") < 0)
		return NULL;
	return s;
}

static char *es_var_int(const char *key, int value)
{
	char num[16] = "";

	if (value >= 0)
		snprintf(num, sizeof(num), "%d", value);
	return es_var(key, num);
}

/* "a:b", or "" when a is unknown. */
static char *es_var_pair(const char *key, int a, int b)
{
	char v[24] = "";

	if (a >= 0)
		snprintf(v, sizeof(v), "%d:%d", a, b);
	return es_var(key, v);
}

/* "host:port", or "" */
static char *es_var_addr(const char *key, const char *host, int port)
{
	char *s = NULL;

	if (!host || !*host || port < 0)
		return es_var(key, "");
	if (asprintf(&s, "%s=%s:%d", key, host, port) < 0)
		return NULL;
	return s;
}

/*
 * osmo-remsim-client's variables (shared rspro-protocol.md 6.5). Its
 * REMSIM_CLIENT_SLOT ("23:0") replaces ours (the slot number alone).
 */
static size_t es_add_osmo(char **envp, size_t i, const struct event_env *e)
{
	char path[64] = "", iface[8] = "";
	const char *dev = e->usb_device ? e->usb_device : "";
	const char *sp = strchr(dev, ' '), *ifp = strstr(dev, " if ");

	if (sp && (size_t)(sp - dev) < sizeof(path))
		snprintf(path, sizeof(path), "%.*s", (int)(sp - dev), dev);
	if (ifp)
		snprintf(iface, sizeof(iface), "%s", ifp + 4);
	envp[i++] = es_var("REMSIM_CAUSE", e->cause);
	envp[i++] = es_var("REMSIM_CLIENT_VERSION", REMSIM_VERSION);
	envp[i++] = es_var_addr("REMSIM_SERVER_ADDR", e->server_host,
				e->server_port);
	envp[i++] = es_var("REMSIM_SERVER_STATE", e->server_state);
	envp[i++] = es_var_addr("REMSIM_BANKD_ADDR", e->bankd_host,
				e->bankd_port);
	envp[i++] = es_var("REMSIM_BANKD_STATE", e->bankd_state);
	envp[i++] = es_var_pair("REMSIM_BANKD_SLOT", e->bank_id, e->bank_slot);
	envp[i++] = es_var_int("REMSIM_SIM_VCC", e->sim_vcc);
	envp[i++] = es_var_int("REMSIM_SIM_RST", e->sim_rst);
	envp[i++] = es_var_int("REMSIM_SIM_CLK", e->sim_clk);
	envp[i++] = es_var("REMSIM_USB_PATH", path);
	envp[i++] = es_var("REMSIM_USB_INTERFACE", iface);
	return i;
}

/* Our environment without REMSIM_*, then the event's variables. */
static char **es_build_env(const struct event_env *e, enum event_style style)
{
	size_t n = 0, i = 0, k;
	char **envp;
	char **p;

	for (p = environ; p && *p; p++)
		n++;
	envp = calloc(n + ES_NVARS + ES_NVARS_OSMO + 1, sizeof(*envp));
	if (!envp)
		return NULL;
	for (p = environ; p && *p; p++) {
		if (strncmp(*p, "REMSIM_", 7) == 0)
			continue;
		envp[i] = strdup(*p);
		if (!envp[i++])
			goto fail;
	}
	k = i;
	envp[i++] = es_var("REMSIM_EVENT", e->event);
	envp[i++] = es_var("REMSIM_STATE", e->state);
	envp[i++] = es_var_int("REMSIM_CLIENT_ID", e->client_id);
	envp[i++] = style == EVENT_STYLE_OSMO ?
		    es_var_pair("REMSIM_CLIENT_SLOT", e->client_id,
				e->client_slot) :
		    es_var_int("REMSIM_CLIENT_SLOT", e->client_slot);
	envp[i++] = es_var_int("REMSIM_BANK_ID", e->bank_id);
	envp[i++] = es_var_int("REMSIM_BANK_SLOT", e->bank_slot);
	envp[i++] = es_var("REMSIM_BANKD_HOST", e->bankd_host);
	envp[i++] = es_var_int("REMSIM_BANKD_PORT", e->bankd_port);
	envp[i++] = es_var("REMSIM_SERVER_HOST", e->server_host);
	envp[i++] = es_var_int("REMSIM_SERVER_PORT", e->server_port);
	envp[i++] = es_var("REMSIM_ATR", e->atr_hex);
	envp[i++] = es_var("REMSIM_USB_DEVICE", e->usb_device);
	if (style == EVENT_STYLE_OSMO)
		i = es_add_osmo(envp, i, e);
	for (; k < i; k++) {
		if (!envp[k])
			goto fail;
	}
	return envp;
fail:
	for (k = 0; k < n + ES_NVARS + ES_NVARS_OSMO; k++)
		free(envp[k]);
	free(envp);
	return NULL;
}

/* ---- running ------------------------------------------------------------ */

/* In the child: only async-signal-safe calls until execve(). */
static void es_exec_child(const char *cmd, const struct es_event *ev)
{
	sigset_t none;
	int null = open("/dev/null", O_RDONLY);

	if (null >= 0) {
		dup2(null, STDIN_FILENO);
		if (null != STDIN_FILENO)
			close(null);
	}
	dup2(STDERR_FILENO, STDOUT_FILENO);
	/* blocked signals and ignored dispositions survive execve() */
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGPIPE, SIG_DFL);
	{
		char *const argv[] = { "/bin/sh", "-c", (char *)cmd,
				       "remsim-event", ev->name, NULL };
		execve("/bin/sh", argv, ev->envp);
	}
	_exit(127);
}

static void es_start(struct event_script *es, struct es_event *ev)
{
	char *cmd = NULL;
	pid_t pid;

	/* "$@": the event is the command's first argument, as in osmo */
	if (asprintf(&cmd, "%s \"$@\"", es->cmd) < 0) {
		LOGE(ES_CTX, "out of memory: event %s not run", ev->name);
		es_event_free(ev);
		return;
	}
	pid = fork();
	if (pid == 0)
		es_exec_child(cmd, ev);
	free(cmd);
	if (pid < 0) {
		LOGE(ES_CTX, "cannot fork for event %s: %s", ev->name,
		     strerror(errno));
		es_event_free(ev);
		return;
	}
	LOGI(ES_CTX, "event %s: started '%s' (pid %d)", ev->name, es->cmd,
	     (int)pid);
	es->pid = pid;
	free(es->running);
	es->running = ev->name;
	ev->name = NULL;
	es_event_free(ev);
}

static void es_start_next(struct event_script *es)
{
	struct es_event ev;

	while (!es->pid && es->len) {
		ev = es->queue[es->head];
		memset(&es->queue[es->head], 0, sizeof(ev));
		es->head = (es->head + 1) % EVENT_SCRIPT_QUEUE_MAX;
		es->len--;
		es_start(es, &ev);
	}
}

int event_script_fire(struct event_script *es, const struct event_env *env)
{
	struct es_event *ev;

	if (es->len == EVENT_SCRIPT_QUEUE_MAX) {
		LOGE(ES_CTX, "event %s dropped: %d events already wait for "
		     "the script (pid %d still running)", env->event,
		     EVENT_SCRIPT_QUEUE_MAX, (int)es->pid);
		return -ENOBUFS;
	}
	ev = &es->queue[(es->head + es->len) % EVENT_SCRIPT_QUEUE_MAX];
	/* the script's argument: osmo scripts switch on the cause */
	ev->name = strdup(es->style == EVENT_STYLE_OSMO && env->cause ?
			  env->cause : env->event);
	ev->envp = es_build_env(env, es->style);
	if (!ev->name || !ev->envp) {
		es_event_free(ev);
		LOGE(ES_CTX, "out of memory: event %s not run", env->event);
		return -ENOMEM;
	}
	es->len++;
	if (es->pid)
		LOGD(ES_CTX, "event %s queued behind pid %d", env->event,
		     (int)es->pid);
	es_start_next(es);
	return 0;
}

void event_script_reap(struct event_script *es)
{
	int status;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		const char *ev = pid == es->pid && es->running ? es->running :
								 "?";

		if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
			LOGI(ES_CTX, "event %s: pid %d exited with 0", ev,
			     (int)pid);
		else if (WIFEXITED(status))
			LOGE(ES_CTX, "event %s: pid %d exited with %d", ev,
			     (int)pid, WEXITSTATUS(status));
		else if (WIFSIGNALED(status))
			LOGE(ES_CTX, "event %s: pid %d killed by signal %d",
			     ev, (int)pid, WTERMSIG(status));
		if (pid == es->pid)
			es->pid = 0;
	}
	es_start_next(es);
}
