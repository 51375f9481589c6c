/*
 * log: formats one line per call into a stack buffer and writes it to
 * stderr in a single write(), so lines from worker threads never interleave.
 */
#include "log.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define LOG_LINE_MAX 2048

static const char *log_program = "remsim";
static volatile enum log_level log_level = LOG_NOTICE;
static volatile int log_timestamps = 1;

static const char *const level_names[] = {
	[LOG_ERROR] = "error",
	[LOG_NOTICE] = "notice",
	[LOG_INFO] = "info",
	[LOG_DEBUG] = "debug",
};

void log_init(const char *program)
{
	const char *slash = strrchr(program, '/');

	log_program = slash ? slash + 1 : program;
}

void log_set_level(enum log_level level)
{
	log_level = level;
}

enum log_level log_get_level(void)
{
	return log_level;
}

void log_set_timestamps(int on)
{
	log_timestamps = on;
}

const char *log_level_name(enum log_level level)
{
	if ((unsigned)level > LOG_DEBUG)
		return "?";
	return level_names[level];
}

int log_parse_level(const char *name, enum log_level *level)
{
	for (unsigned i = 0; i <= LOG_DEBUG; i++) {
		if (strcasecmp(name, level_names[i]) == 0) {
			*level = i;
			return 0;
		}
	}
	return -1;
}

void log_vmsg(enum log_level level, const char *ctx, const char *fmt,
	      va_list ap)
{
	char line[LOG_LINE_MAX];
	size_t n = 0;
	int r;

	if (level > log_level)
		return;

	if (log_timestamps) {
		struct timespec ts;
		struct tm tm;

		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		n += strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
		n += snprintf(line + n, sizeof(line) - n, ".%03ldZ ",
			      ts.tv_nsec / 1000000);
	}
	r = snprintf(line + n, sizeof(line) - n, "%s %s ", log_program,
		     log_level_name(level));
	if (r > 0)
		n += r;
	if (ctx && *ctx && n < sizeof(line)) {
		r = snprintf(line + n, sizeof(line) - n, "[%s] ", ctx);
		if (r > 0)
			n += r;
	}
	if (n < sizeof(line)) {
		r = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
		if (r > 0)
			n += r;
	}
	if (n >= sizeof(line) - 1) {
		/* Truncated: mark it, keep the newline. */
		n = sizeof(line) - 1;
		memcpy(line + n - 4, "...", 3);
	}
	line[n++] = '\n';
	if (write(STDERR_FILENO, line, n) < 0) {
		/* Nowhere left to report it. */
	}
}

void log_msg(enum log_level level, const char *ctx, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(level, ctx, fmt, ap);
	va_end(ap);
}
