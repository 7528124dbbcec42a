/* Durable outcome records: first writer wins, updates replace, ids are
 * checked before they become file names. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "check.h"
#include "engine/engine.h"

int main(void)
{
	char dir[] = "/tmp/smg-outcome.XXXXXX", dom[64], cmd[128];
	const char *id = "0123456789abcdef0123456789abcdef";
	enum smg_outcome o;

	if (mkdtemp(dir) == NULL)
		return 1;
	CHECK(smg_migration_id_valid(id));
	CHECK(!smg_migration_id_valid("../../etc/passwd"));
	CHECK(!smg_migration_id_valid("0123456789ABCDEF0123456789abcdef"));
	CHECK(!smg_migration_id_valid("0123"));
	CHECK_EQ(smg_outcome_read(dir, id, &o, dom, sizeof(dom)), 0);
	CHECK_EQ(o, SMG_OUTCOME_NONE);
	CHECK_EQ(smg_outcome_create(dir, id, SMG_OUTCOME_COMMITTED, "vm1"), 0);
	CHECK_EQ(smg_outcome_create(dir, id, SMG_OUTCOME_DISCARDED, "-"), SMG_ERR_EXISTS);
	CHECK_EQ(smg_outcome_read(dir, id, &o, dom, sizeof(dom)), 0);
	CHECK_EQ(o, SMG_OUTCOME_COMMITTED);
	CHECK(strcmp(dom, "vm1") == 0);
	CHECK_EQ(smg_outcome_update(dir, id, SMG_OUTCOME_RESUMED, "vm1"), 0);
	CHECK_EQ(smg_outcome_read(dir, id, &o, dom, sizeof(dom)), 0);
	CHECK_EQ(o, SMG_OUTCOME_RESUMED);
	CHECK_EQ(smg_outcome_create(dir, "../x", SMG_OUTCOME_COMMITTED, "vm1"),
		 SMG_ERR_INVAL);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	CHECK_EQ(system(cmd), 0);
	return check_result("engine_outcome");
}
