/* How recv prints the network clean-up's events. */
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/migrate.h"
#include "cli/net.h"
#include "engine/engine.h"

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
