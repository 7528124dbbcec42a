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

	/* The hand-over's path: receiving -> committed -> resumed, in place;
	 * a resolve that finds it receiving discards it and COMMIT then loses. */
	const char *id2 = "abcdefabcdefabcdefabcdefabcdef01";
	const char *id3 = "00000000000000000000000000000003";
	CHECK_EQ(smg_outcome_transition(dir, id2, SMG_OUTCOME_RECEIVING,
					SMG_OUTCOME_COMMITTED, "vm2"),
		 SMG_ERR_NOT_FOUND);
	CHECK_EQ(smg_outcome_create(dir, id2, SMG_OUTCOME_RECEIVING, "vm2"), 0);
	CHECK_EQ(smg_outcome_transition(dir, id2, SMG_OUTCOME_RECEIVING,
					SMG_OUTCOME_COMMITTED, "vm2"),
		 0);
	CHECK_EQ(smg_outcome_transition(dir, id2, SMG_OUTCOME_RECEIVING,
					SMG_OUTCOME_DISCARDED, "vm2"),
		 SMG_ERR_EXISTS);
	CHECK_EQ(smg_outcome_read(dir, id2, &o, dom, sizeof(dom)), 0);
	CHECK_EQ(o, SMG_OUTCOME_COMMITTED);
	CHECK(strcmp(dom, "vm2") == 0);
	CHECK_EQ(smg_outcome_transition(dir, id2, SMG_OUTCOME_COMMITTED,
					SMG_OUTCOME_RESUMED, "vm2"),
		 0);
	CHECK_EQ(smg_outcome_read(dir, id2, &o, dom, sizeof(dom)), 0);
	CHECK_EQ(o, SMG_OUTCOME_RESUMED);
	CHECK_EQ(smg_outcome_create(dir, id3, SMG_OUTCOME_RECEIVING, "vm3"), 0);
	CHECK_EQ(smg_outcome_transition(dir, id3, SMG_OUTCOME_RECEIVING,
					SMG_OUTCOME_DISCARDED, "vm3"),
		 0);
	CHECK_EQ(smg_outcome_transition(dir, id3, SMG_OUTCOME_RECEIVING,
					SMG_OUTCOME_COMMITTED, "vm3"),
		 SMG_ERR_EXISTS);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	CHECK_EQ(system(cmd), 0);
	return check_result("engine_outcome");
}
