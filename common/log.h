/*
 * log: leveled log lines on stderr, each naming who it is about.
 *
 * A line reads "TIME PROGRAM LEVEL [context] message", where the context is
 * the connection or slot the line concerns ("client 23:0 @127.0.0.1:51234").
 * Safe to call from several threads: every line is written with one write().
 */
#ifndef REMSIM_LOG_H
#define REMSIM_LOG_H

#include <stdarg.h>

enum log_level {
	LOG_ERROR,	/* needs a human */
	LOG_NOTICE,	/* state changes */
	LOG_INFO,
	LOG_DEBUG,	/* per APDU */
};

void log_init(const char *program);
void log_set_level(enum log_level level);
enum log_level log_get_level(void);
void log_set_timestamps(int on);
int log_parse_level(const char *name, enum log_level *level);
const char *log_level_name(enum log_level level);

void log_msg(enum log_level level, const char *ctx, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void log_vmsg(enum log_level level, const char *ctx, const char *fmt,
	      va_list ap);

#define LOGE(ctx, ...) log_msg(LOG_ERROR, ctx, __VA_ARGS__)
#define LOGN(ctx, ...) log_msg(LOG_NOTICE, ctx, __VA_ARGS__)
#define LOGI(ctx, ...) log_msg(LOG_INFO, ctx, __VA_ARGS__)
#define LOGD(ctx, ...)                                                       \
	do {                                                                 \
		if (log_get_level() >= LOG_DEBUG)                            \
			log_msg(LOG_DEBUG, ctx, __VA_ARGS__);                \
	} while (0)

#endif
