/* Durable outcome records: first writer wins, transitions move the state
 * and keep the rest (the source's name and key), ids and names are checked
 * before they become file names or text, the parser refuses anything it
 * did not write. Also the COMMIT record's peer token and the reason codes
 * that carry an outcome to the other side. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "check.h"
#include "engine/engine.h"
#include "secmig.pb-c.h"

static struct smg_outcome_rec rec(enum smg_outcome st, const char *dom, uint8_t key)
{
	struct smg_outcome_rec r = {.state = st};

	snprintf(r.domain, sizeof(r.domain), "%s", dom);
	snprintf(r.source, sizeof(r.source), "src-1.lab");
	memset(r.source_key, key, sizeof(r.source_key));
	return r;
}

static void outcomes(const char *dir)
{
	const char *id = "0123456789abcdef0123456789abcdef";
	const char *id2 = "abcdefabcdefabcdefabcdefabcdef01";
	const char *id3 = "00000000000000000000000000000003";
	struct smg_outcome_rec r1 = rec(SMG_OUTCOME_COMMITTED, "vm1", 0xa1), got;

	CHECK(smg_migration_id_valid(id));
	CHECK(!smg_migration_id_valid("../../etc/passwd"));
	CHECK(!smg_migration_id_valid("0123456789ABCDEF0123456789abcdef"));
	CHECK(!smg_migration_id_valid("0123"));
	CHECK_EQ(smg_outcome_read(dir, id, &got), 0);
	CHECK_EQ(got.state, SMG_OUTCOME_NONE);
	CHECK_EQ(smg_outcome_create(dir, id, &r1), 0);
	struct smg_outcome_rec r0 = rec(SMG_OUTCOME_DISCARDED, "-", 0);
	CHECK_EQ(smg_outcome_create(dir, id, &r0), SMG_ERR_EXISTS);
	CHECK_EQ(smg_outcome_read(dir, id, &got), 0);
	CHECK_EQ(got.state, SMG_OUTCOME_COMMITTED);
	CHECK(strcmp(got.domain, "vm1") == 0 && strcmp(got.source, "src-1.lab") == 0);
	CHECK(memcmp(got.source_key, r1.source_key, 32) == 0);
	CHECK_EQ(smg_outcome_create(dir, "../x", &r1), SMG_ERR_INVAL);
	/* a name that is not a domain name never becomes part of a record */
	struct smg_outcome_rec bad = rec(SMG_OUTCOME_RECEIVING, "a b", 1);
	CHECK_EQ(smg_outcome_create(dir, id3, &bad), SMG_ERR_INVAL);

	/* The hand-over's path: receiving -> committed -> resumed, in place;
	 * a resolve that finds it receiving discards it and COMMIT then loses. */
	struct smg_outcome_rec r2 = rec(SMG_OUTCOME_RECEIVING, "vm2", 0xb2);
	CHECK_EQ(smg_outcome_transition(dir, id2, SMG_OUTCOME_RECEIVING,
					SMG_OUTCOME_COMMITTED),
		 SMG_ERR_NOT_FOUND);
	CHECK_EQ(smg_outcome_create(dir, id2, &r2), 0);
	CHECK_EQ(smg_outcome_transition(dir, id2, SMG_OUTCOME_RECEIVING,
					SMG_OUTCOME_COMMITTED),
		 0);
	CHECK_EQ(smg_outcome_transition(dir, id2, SMG_OUTCOME_RECEIVING,
					SMG_OUTCOME_DISCARDED),
		 SMG_ERR_EXISTS);
	CHECK_EQ(smg_outcome_read(dir, id2, &got), 0);
	CHECK_EQ(got.state, SMG_OUTCOME_COMMITTED);
	CHECK(strcmp(got.domain, "vm2") == 0);
	CHECK(memcmp(got.source_key, r2.source_key, 32) == 0);
	CHECK_EQ(
	    smg_outcome_transition(dir, id2, SMG_OUTCOME_COMMITTED, SMG_OUTCOME_RESUMED),
	    0);
	CHECK_EQ(smg_outcome_read(dir, id2, &got), 0);
	CHECK_EQ(got.state, SMG_OUTCOME_RESUMED);
	struct smg_outcome_rec r3 = rec(SMG_OUTCOME_RECEIVING, "vm3", 3);
	CHECK_EQ(smg_outcome_create(dir, id3, &r3), 0);
	CHECK_EQ(smg_outcome_transition(dir, id3, SMG_OUTCOME_RECEIVING,
					SMG_OUTCOME_QUARANTINED),
		 0);
	CHECK_EQ(smg_outcome_transition(dir, id3, SMG_OUTCOME_RECEIVING,
					SMG_OUTCOME_COMMITTED),
		 SMG_ERR_EXISTS);
	CHECK_EQ(smg_outcome_read(dir, id3, &got), 0);
	CHECK_EQ(got.state, SMG_OUTCOME_QUARANTINED);
}

static void parser(void)
{
	static const char *const bad[] = {
	    "",
	    "committed vm1\n",	 /* no source: refused, never answered */
	    "committed vm1 src " /* short key */
	    "00112233\n",
	    "nonsense vm1 src "
	    "0000000000000000000000000000000000000000000000000000000000000000",
	    "committed v/m src "
	    "0000000000000000000000000000000000000000000000000000000000000000",
	    "committed vm1 s\"c "
	    "0000000000000000000000000000000000000000000000000000000000000000",
	    "committed vm1 src "
	    "000000000000000000000000000000000000000000000000000000000000000G",
	    "committed vm1 src "
	    "0000000000000000000000000000000000000000000000000000000000000000 x",
	};
	struct smg_outcome_rec r;
	const char *ok =
	    "resumed vm-9 dst.lab "
	    "ff00000000000000000000000000000000000000000000000000000000000001   \n";

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECK_EQ(smg_outcome_parse(bad[i], strlen(bad[i]), &r), SMG_ERR_CONFIG);
	CHECK_EQ(smg_outcome_parse("a\0b", 3, &r), SMG_ERR_CONFIG);
	CHECK_EQ(smg_outcome_parse(ok, strlen(ok), &r), 0);
	CHECK_EQ(r.state, SMG_OUTCOME_RESUMED);
	CHECK(r.source_key[0] == 0xff && r.source_key[31] == 0x01);
}

static void commit_peer(void)
{
	struct smg_commit_peer p = {0}, q;
	char tok[SMG_COMMIT_PEER_MAX + 1];

	snprintf(p.name, sizeof(p.name), "dst-1.lab");
	memset(p.key, 0x5a, sizeof(p.key));
	snprintf(p.addr, sizeof(p.addr), "[fd00::1]:4849");
	CHECK_EQ(smg_commit_peer_format(&p, tok, sizeof(tok)), 0);
	CHECK_EQ(smg_commit_peer_parse(tok, strlen(tok), &q), 0);
	CHECK(strcmp(q.name, p.name) == 0 && strcmp(q.addr, p.addr) == 0);
	CHECK(memcmp(q.key, p.key, 32) == 0);
	/* a separator inside a field never makes it into a record */
	snprintf(p.addr, sizeof(p.addr), "a,b");
	CHECK(smg_commit_peer_format(&p, tok, sizeof(tok)) != 0);
	/* the old form (an address alone) names no key: refused */
	CHECK(smg_commit_peer_parse("127.0.0.1:4849", 14, &q) != 0);
	CHECK(smg_commit_peer_parse("dst,00,x", 8, &q) != 0);
}

static void reasons(void)
{
	/* Each refusal reaches the other side as the same error, hence the
	 * same exit code, instead of "network". */
	static const int errs[] = {SMG_ERR_CANCELLED,  SMG_ERR_CAPACITY,
				   SMG_ERR_DISK_FULL,  SMG_ERR_DOMAIN_EXISTS,
				   SMG_ERR_NO_BACKEND, SMG_ERR_POLICY,
				   SMG_ERR_INTEGRITY,  SMG_ERR_NOT_CONVERGED};
	for (size_t i = 0; i < sizeof(errs) / sizeof(errs[0]); i++)
		CHECK_EQ(smg_reason_to_err(smg_reason_from_err(errs[i]), SMG_ERR_ABORTED),
			 errs[i]);
	CHECK_EQ(smg_reason_to_err(SMG__ABORT_REASON__ABORT_DISK_FULL, 0),
		 SMG_ERR_DISK_FULL);
	CHECK_EQ(smg_reason_to_err(SMG__ABORT_REASON__ABORT_RESOURCES, 0),
		 SMG_ERR_CAPACITY);
	CHECK_EQ(smg_reason_to_err(9999, SMG_ERR_ABORTED), SMG_ERR_ABORTED);
	CHECK(strcmp(smg_reason_name(SMG__ABORT_REASON__ABORT_OPERATOR), "cancelled") ==
	      0);

	char out[8];
	smg_peer_text("a\"b\n\x01zzzzzzzz", out, sizeof(out));
	CHECK(strcmp(out, "a\"b??zz") == 0);
	CHECK(smg_domain_name_valid("vm-1.a_b"));
	CHECK(!smg_domain_name_valid("-x") && !smg_domain_name_valid("a\"b") &&
	      !smg_domain_name_valid(""));
}

int main(void)
{
	char dir[] = "/tmp/smg-outcome.XXXXXX", cmd[128];

	if (mkdtemp(dir) == NULL)
		return 1;
	outcomes(dir);
	parser();
	commit_peer();
	reasons();
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	CHECK_EQ(system(cmd), 0);
	return check_result("engine_outcome");
}
