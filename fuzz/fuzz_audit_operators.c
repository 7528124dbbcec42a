/* libFuzzer: a host's operators file (smg_operators_parse), then a ticket
 * checked against whatever it enrolled. */
#include <stddef.h>
#include <stdint.h>

#include "audit/audit.h"
#include "base/base.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t ticket[] = {1, 0, 5, 'a', 'l', 'i', 'c', 'e'};
	const char *labels[] = {"region=eu"};
	struct smg_ticket_scope sc = {.domain = "web-1",
				      .src = "src",
				      .dst = "dst",
				      .src_labels = labels,
				      .n_src_labels = 1,
				      .dst_labels = labels,
				      .n_dst_labels = 1,
				      .now = 1700000000};
	struct smg_operators *ops;
	struct smg_ticket t;
	char err[256], why[256];

	smg_log_set_level(SMG_LOG_ERROR);
	if (smg_operators_parse((const char *)data, size, "fuzz", &ops, err,
				sizeof(err)) != SMG_OK)
		return 0;
	for (size_t i = 0; i < ops->n; i++)
		smg_operators_find(ops, ops->v[i].name);
	smg_ticket_authorize(ops, ticket, sizeof(ticket), &sc, &t, why, sizeof(why));
	smg_operators_free(ops);
	return 0;
}
