/* libFuzzer harness: the per-host config file parser (secmig.conf(5)), then
 * the argv it builds for a command. Oracle: every option it produces is
 * "--" plus a key of [a-z0-9-] (and "=value"), never a bare argument. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "cli/conf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char arg0[] = "recv", arg1[] = "--once";
	char *argv[] = {arg0, arg1, NULL};
	struct smg_conf *c = NULL;
	char err[256], **v = NULL;
	int n = 0;

	if (smg_conf_parse((const char *)data, size, &c, err, sizeof(err)) != SMG_OK)
		return 0;
	if (smg_conf_argv(c, "recv", 2, argv, &n, &v) == SMG_OK) {
		for (int i = 1; i < n - 1; i++)
			if (strncmp(v[i], "--", 2) != 0 || v[i][2] < 'a' || v[i][2] > 'z')
				abort();
		if (strcmp(v[n - 1], "--once") != 0)
			abort();
		smg_conf_argv_free(n, v);
	}
	smg_conf_free(c);
	return 0;
}
