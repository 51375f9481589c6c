/*
 * test_log: the line format operators read ("PROGRAM LEVEL [who] what"),
 * level filtering, truncation of huge messages, and whole lines from
 * several threads at once (worker threads of the bankd log concurrently).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

/* Runs fn with stderr redirected into a file; returns what was written. */
static char *capture(void (*fn)(void))
{
	char path[] = "/tmp/test_log.XXXXXX";
	int fd = mkstemp(path), saved = dup(STDERR_FILENO);
	static char buf[1 << 20];
	ssize_t n;

	assert_true(fd >= 0 && saved >= 0);
	unlink(path);
	dup2(fd, STDERR_FILENO);
	fn();
	dup2(saved, STDERR_FILENO);
	close(saved);
	lseek(fd, 0, SEEK_SET);
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	assert_true(n >= 0);
	buf[n] = '\0';
	return buf;
}

static void emit_levels(void)
{
	LOGE("client 23:0 @127.0.0.1:51234", "bad %s", "thing");
	LOGN(NULL, "state %d -> %d", 1, 2);
	LOGI("x", "info line");
	LOGD("x", "debug line");
}

static void test_format_and_filter(void **state)
{
	char *out;

	log_init("/usr/bin/remsim-test");
	log_set_timestamps(0);
	log_set_level(LOG_NOTICE);
	out = capture(emit_levels);
	assert_string_equal(out,
			    "remsim-test error [client 23:0 @127.0.0.1:51234] "
			    "bad thing\n"
			    "remsim-test notice state 1 -> 2\n");
	log_set_level(LOG_DEBUG);
	out = capture(emit_levels);
	assert_non_null(strstr(out, "remsim-test info [x] info line\n"));
	assert_non_null(strstr(out, "remsim-test debug [x] debug line\n"));
}

static void emit_timestamped(void)
{
	LOGN("c", "hello");
}

static void test_timestamp(void **state)
{
	char *out;

	log_set_timestamps(1);
	log_set_level(LOG_NOTICE);
	out = capture(emit_timestamped);
	/* 2026-11-23T10:00:00.123Z remsim-test notice [c] hello */
	assert_int_equal(strlen(out), 24 + 1 + strlen("remsim-test notice [c] hello\n"));
	assert_int_equal(out[10], 'T');
	assert_int_equal(out[23], 'Z');
	log_set_timestamps(0);
}

static void emit_huge(void)
{
	char *big = malloc(10000);

	memset(big, 'a', 9999);
	big[9999] = '\0';
	LOGE("c", "%s", big);
	free(big);
}

static void test_truncation(void **state)
{
	char *out = capture(emit_huge);
	size_t len = strlen(out);

	assert_true(len < 2100);
	assert_memory_equal(out + len - 5, "...a\n", 5);
}

#define THREADS 4
#define LINES 500

static void *log_thread(void *arg)
{
	for (int i = 0; i < LINES; i++)
		LOGN("worker", "thread %ld line %d %s", (long)(intptr_t)arg, i,
		     "padding-padding-padding-padding-padding-padding");
	return NULL;
}

static void emit_threads(void)
{
	pthread_t t[THREADS];

	for (long i = 0; i < THREADS; i++)
		pthread_create(&t[i], NULL, log_thread, (void *)(intptr_t)i);
	for (int i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
}

static void test_threads_whole_lines(void **state)
{
	char *out = capture(emit_threads);
	int lines = 0;

	for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
		long th;
		int n;
		char pad[64];

		assert_int_equal(sscanf(line, "remsim-test notice [worker] "
					"thread %ld line %d %63s", &th, &n, pad), 3);
		assert_string_equal(pad, "padding-padding-padding-padding-"
					 "padding-padding");
		lines++;
	}
	assert_int_equal(lines, THREADS * LINES);
}

static void test_parse_level(void **state)
{
	enum log_level l;

	assert_int_equal(log_parse_level("DEBUG", &l), 0);
	assert_int_equal(l, LOG_DEBUG);
	assert_int_equal(log_parse_level("notice", &l), 0);
	assert_int_equal(l, LOG_NOTICE);
	assert_int_equal(log_parse_level("verbose", &l), -1);
	assert_string_equal(log_level_name(LOG_ERROR), "error");
	assert_string_equal(log_level_name(42), "?");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_format_and_filter),
		cmocka_unit_test(test_timestamp),
		cmocka_unit_test(test_truncation),
		cmocka_unit_test(test_threads_whole_lines),
		cmocka_unit_test(test_parse_level),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
