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
	CHECK(strstr(buf, "secmig: info: test_log.c: shown 2") != NULL);
	CHECK(strstr(buf, "secmig: error: test_log.c:") != NULL);

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
	CHECK(strstr(buf, "{\"log\":\"warn\",\"file\":\"test_log.c\"") == buf);
	CHECK(strstr(buf, "quote \\\" and\\u000anewline") != NULL);
	smg_log_set_stream(NULL);
	fclose(f);
	free(buf);
	return check_result("log");
}
