/* The --net-* options of send and recv, and how recv prints the
 * network clean-up's events. */
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/migrate.h"
#include "cli/net.h"
#include "engine/engine.h"

int smg_cli_net_opt(int c, const char *arg, struct smg_netid_host *h)
{
	char *dst = c == SMG_CLI_OPT_NET_BRIDGE ? h->bridge : h->ns_prefix;
	size_t cap =
	    c == SMG_CLI_OPT_NET_BRIDGE ? sizeof(h->bridge) : sizeof(h->ns_prefix);

	if (arg[0] == '\0' || strlen(arg) >= cap || strchr(arg, '/') != NULL)
		return -1;
	memcpy(dst, arg, strlen(arg) + 1);
	return 0;
}

int smg_cli_io_timeout(const char *arg, unsigned *out)
{
	char *end;
	unsigned long v;

	if (arg[0] < '0' || arg[0] > '9')
		return -1;
	v = strtoul(arg, &end, 10);
	if (*end != '\0' || v < 100 || v > 3600000)
		return -1;
	*out = (unsigned)v;
	return 0;
}

void smg_cli_announce_event(void *arg, const char *json)
{
	struct smg_cli_out *o = arg;
	json_object *j;

	/* From the announcement thread: one whole line through the stream's
	 * lock, next to the engine's own events from the main thread. */
	if (!o->json || (j = json_tokener_parse(json)) == NULL)
		return;
	json_object_object_add(j, "role", json_object_new_string(o->role));
	smg_cli_emit_json(o, j);
}
