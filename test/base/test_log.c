/* Logging: levels, per-file prefix, JSON mode, peer rate limiting. */
#include <stdio.h>
#include <string.h>

#include "base/base.h"
#include "check.h"

static size_t count_lines(const char *s)
{
	size_t n = 0;

	for (; *s; s++)
		n += *s == '\n';
	return n;
}

static void *worker(void *arg)
{
	smg_info("from a channel thread");
	return arg;
}

int main(void)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	smg_log_set_stream(f);
	smg_log_set_level(SMG_LOG_INFO);
	smg_debug("hidden %d", 1);
	smg_info("shown %d", 2);
	smg_err("bad thing");
	fflush(f);
	CHECK(strstr(buf, "hidden") == NULL);
	/* 2026-12-02T01:07:56.123Z secmig info: shown 2 -- no file:line */
	CHECK(strlen(buf) > 25 && buf[4] == '-' && buf[10] == 'T' && buf[23] == 'Z');
	CHECK(strstr(buf, "Z secmig info: shown 2\n") != NULL);
	CHECK(strstr(buf, "Z secmig error: bad thing\n") != NULL);
	CHECK(strstr(buf, "test_log.c") == NULL);

	/* a migration's thread: its id, peer and domain on every line */
	fseek(f, 0, SEEK_SET);
	memset(buf, 0, len);
	smg_log_ctx_set("0123456789abcdef0123456789abcdef", "src", "vm1");
	smg_warn("slow round");
	fflush(f);
	CHECK(strstr(buf, "Z secmig warn: migration=0123456789abcdef0123456789abcdef "
			  "peer=src domain=vm1: slow round\n") != NULL);

	/* a thread started for the migration inherits its context */
	pthread_t t;
	fseek(f, 0, SEEK_SET);
	memset(buf, 0, len);
	CHECK_EQ(smg_log_thread_create(&t, worker, NULL), 0);
	pthread_join(t, NULL);
	smg_log_ctx_clear();
	fflush(f);
	CHECK(strstr(buf, "migration=0123456789abcdef0123456789abcdef peer=src "
			  "domain=vm1: from a channel thread\n") != NULL);
	fseek(f, 0, SEEK_SET);
	memset(buf, 0, len);
	smg_info("after");
	fflush(f);
	CHECK(strstr(buf, "Z secmig info: after\n") != NULL);

	/* -v: file:line, for developers */
	fseek(f, 0, SEEK_SET);
	memset(buf, 0, len);
	smg_log_set_level(SMG_LOG_DEBUG);
	smg_debug("detail");
	smg_log_set_level(SMG_LOG_INFO);
	fflush(f);
	CHECK(strstr(buf, "Z secmig debug: test_log.c:") != NULL);
	CHECK(strstr(buf, ": detail\n") != NULL);

	/* a hostile peer triggering one message 1000 times gets a burst only */
	fseek(f, 0, SEEK_SET);
	fflush(f);
	memset(buf, 0, len);
	for (int i = 0; i < 1000; i++)
		smg_peer_log(SMG_LOG_WARN, "peer sent junk %d", i);
	fflush(f);
	CHECK_EQ(count_lines(buf), SMG_LOG_RATE_BURST);

	fseek(f, 0, SEEK_SET);
	memset(buf, 0, len);
	smg_log_set_json(true);
	smg_warn("quote \" and\nnewline");
	fflush(f);
	CHECK(strncmp(buf, "{\"ts\":\"", 7) == 0);
	CHECK(strstr(buf, "\"log\":\"warn\",\"file\":\"test_log.c\"") != NULL);
	CHECK(strstr(buf, "quote \\\" and\\u000anewline") != NULL);
	smg_log_set_stream(NULL);
	fclose(f);
	free(buf);
	return check_result("log");
}
