/* Operators and tickets through the API: the operators file parser (every
 * operator and revoke line signed by an admin of the file; each error with
 * its line), tickets signed by an operator and checked in order (forged,
 * expired, wrong scope, wrong role, revoked), the replay cache (single use,
 * across "restarts", expired entries dropped, damage fails closed), and
 * the armoured file form. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "audit/audit.h"
#include "base/base.h"
#include "check.h"
#include "transport/transport.h"

static char dir[64];

static struct smg_identity *key(const char *name, char *pub, size_t cap)
{
	char path[128];
	struct smg_identity *id = NULL;

	snprintf(path, sizeof(path), "%s/%s.key", dir, name);
	if (smg_identity_generate(path, false, pub, cap) != SMG_OK ||
	    smg_identity_load(path, &id) != SMG_OK)
		return NULL;
	return id;
}

struct world {
	struct smg_identity *root, *alice, *bob, *eve;
	char root_pub[64], alice_pub[64], bob_pub[64], eve_pub[64];
	char text[8192];
};

static void line(struct world *w, const struct smg_identity *by, const char *by_name,
		 const char *body)
{
	char out[SMG_OPERATORS_LINE_MAX];

	CHECK_EQ(smg_operator_sign_line(by, by_name, body, out, sizeof(out)), SMG_OK);
	strcat(w->text, out);
	strcat(w->text, "\n");
}

static int parse(const char *text, char *err, size_t cap, struct smg_operators **ops)
{
	return smg_operators_parse(text, strlen(text), "ops", ops, err, cap);
}

static void build(struct world *w)
{
	char body[512];

	w->root = key("root", w->root_pub, sizeof(w->root_pub));
	w->alice = key("alice", w->alice_pub, sizeof(w->alice_pub));
	w->bob = key("bob", w->bob_pub, sizeof(w->bob_pub));
	w->eve = key("eve", w->eve_pub, sizeof(w->eve_pub));
	snprintf(w->text, sizeof(w->text), "# operators\nadmin root %s\n", w->root_pub);
	snprintf(body, sizeof(body),
		 "operator alice %s vms=web-*,db1 from=region=eu to=dst*", w->alice_pub);
	line(w, w->root, "root", body);
	snprintf(body, sizeof(body), "operator bob %s vms=*", w->bob_pub);
	line(w, w->root, "root", body);
	line(w, w->root, "root", "revoke bob");
}

static void test_operators_file(struct world *w)
{
	struct smg_operators *ops = NULL;
	char err[512], bad[8192], body[512];
	const struct smg_operator *o;

	CHECK_EQ(parse(w->text, err, sizeof(err), &ops), SMG_OK);
	if (ops == NULL)
		return;
	CHECK_EQ(ops->n, 3);
	o = smg_operators_find(ops, "alice");
	CHECK(o != NULL && o->role == SMG_OP_OPERATOR && o->nvms == 2 &&
	      o->revoked_line == 0);
	CHECK(o != NULL && !strcmp(o->by, "root") && !strcmp(o->from[0], "region=eu"));
	o = smg_operators_find(ops, "bob");
	CHECK(o != NULL && o->revoked_line == 5 && o->nfrom == 1 &&
	      !strcmp(o->from[0], "*"));
	smg_operators_free(ops);

	/* an operator line signed by a non-admin (alice enrols eve) */
	snprintf(bad, sizeof(bad), "%s", w->text);
	char out[SMG_OPERATORS_LINE_MAX];
	snprintf(body, sizeof(body), "operator eve %s vms=*", w->eve_pub);
	CHECK_EQ(smg_operator_sign_line(w->alice, "alice", body, out, sizeof(out)),
		 SMG_OK);
	strcat(bad, out);
	CHECK_EQ(parse(bad, err, sizeof(err), &ops), SMG_ERR_CONFIG);
	CHECK(strstr(err, "ops:6: signed by 'alice', who is not an admin") != NULL);
	/* an edited line: the scope widened after signing */
	snprintf(bad, sizeof(bad), "%s", w->text);
	char *p = strstr(bad, "vms=web-*,db1");
	memcpy(p, "vms=*,db1,ab", 12);
	CHECK_EQ(parse(bad, err, sizeof(err), &ops), SMG_ERR_CONFIG);
	CHECK(strstr(err, "ops:3: signature by admin 'root' is invalid") != NULL);
	/* an unsigned operator line */
	snprintf(bad, sizeof(bad), "admin root %s\noperator eve %s vms=*\n", w->root_pub,
		 w->eve_pub);
	CHECK_EQ(parse(bad, err, sizeof(err), &ops), SMG_ERR_CONFIG);
	CHECK(strstr(err, "ops:2:") != NULL && strstr(err, "by=ADMIN sig=") != NULL);
	/* junk, a bad key, a duplicate, a revoke of nobody */
	CHECK_EQ(parse("frobnicate x\n", err, sizeof(err), &ops), SMG_ERR_CONFIG);
	CHECK(strstr(err, "ops:1: unknown keyword") != NULL);
	CHECK_EQ(parse("admin r AAAA\n", err, sizeof(err), &ops), SMG_ERR_CONFIG);
	snprintf(bad, sizeof(bad), "admin r %s\nadmin r %s\n", w->root_pub, w->alice_pub);
	CHECK_EQ(parse(bad, err, sizeof(err), &ops), SMG_ERR_CONFIG);
	CHECK(strstr(err, "ops:2: 'r' enrolled twice") != NULL);
	snprintf(bad, sizeof(bad), "admin root %s\n", w->root_pub);
	strcat(bad, "");
	{
		struct world w2 = *w;
		snprintf(w2.text, sizeof(w2.text), "admin root %s\n", w->root_pub);
		line(&w2, w->root, "root", "revoke nobody");
		CHECK_EQ(parse(w2.text, err, sizeof(err), &ops), SMG_ERR_CONFIG);
		CHECK(strstr(err, "ops:2: revoke: no operator 'nobody'") != NULL);
	}
}

static int sign(const struct smg_identity *id, const char *op, const char *vm,
		const char *from, const char *to, uint64_t issued, uint64_t not_after,
		uint8_t *buf, size_t *len)
{
	struct smg_ticket t;

	memset(&t, 0, sizeof(t));
	snprintf(t.operator_name, sizeof(t.operator_name), "%s", op);
	snprintf(t.vm, sizeof(t.vm), "%s", vm);
	snprintf(t.from, sizeof(t.from), "%s", from);
	snprintf(t.to, sizeof(t.to), "%s", to);
	t.issued = issued;
	t.not_after = not_after;
	return smg_ticket_sign(&t, id, buf, SMG_TICKET_MAX, len);
}

static void test_authorize(struct world *w)
{
	const char *eu[] = {"region=eu"}, *us[] = {"region=us"};
	uint64_t now = (uint64_t)time(NULL);
	struct smg_ticket_scope sc = {.domain = "web-1",
				      .src = "src1",
				      .dst = "dst1",
				      .src_labels = eu,
				      .n_src_labels = 1,
				      .dst_labels = eu,
				      .n_dst_labels = 1,
				      .now = now};
	struct smg_operators *ops = NULL;
	struct smg_ticket t;
	uint8_t buf[SMG_TICKET_MAX];
	char err[512], why[512];
	size_t len;

	CHECK_EQ(parse(w->text, err, sizeof(err), &ops), SMG_OK);
#define AUTH(expect_ok, text)                                                            \
	do {                                                                             \
		int r_ = smg_ticket_authorize(ops, buf, len, &sc, &t, why, sizeof(why)); \
		CHECK_EQ(r_, (expect_ok) ? SMG_OK : SMG_ERR_POLICY);                     \
		if (!(expect_ok) && strstr(why, text) == NULL) {                         \
			check_failures++;                                                \
			fprintf(stderr, "FAIL %s:%d: '%s' lacks '%s'\n", __FILE__,       \
				__LINE__, why, text);                                    \
		}                                                                        \
	} while (0)
	CHECK_EQ(
	    sign(w->alice, "alice", "web-1", "src1", "dst1", now, now + 600, buf, &len),
	    SMG_OK);
	AUTH(true, "");
	/* forged: eve signs a ticket in alice's name */
	CHECK_EQ(
	    sign(w->eve, "alice", "web-1", "src1", "dst1", now, now + 600, buf, &len),
	    SMG_OK);
	AUTH(false, "not operator 'alice''s enrolled key");
	/* forged: alice's key in the ticket, the body altered after signing */
	CHECK_EQ(
	    sign(w->alice, "alice", "web-1", "src1", "dst1", now, now + 600, buf, &len),
	    SMG_OK);
	buf[len - 64 - 16 - 1] ^= 1; /* not_after's low byte */
	AUTH(false, "signature invalid");
	/* an operator nobody enrolled */
	CHECK_EQ(sign(w->eve, "eve", "web-1", "src1", "dst1", now, now + 600, buf, &len),
		 SMG_OK);
	AUTH(false, "operator 'eve' is not enrolled");
	/* expired */
	CHECK_EQ(sign(w->alice, "alice", "web-1", "src1", "dst1", now - 700, now - 100,
		      buf, &len),
		 SMG_OK);
	AUTH(false, "expired");
	/* issued in the future, valid too long */
	CHECK_EQ(sign(w->alice, "alice", "web-1", "src1", "dst1", now + 3600, now + 7200,
		      buf, &len),
		 SMG_OK);
	AUTH(false, "issued in the future");
	CHECK_EQ(sign(w->alice, "alice", "web-1", "src1", "dst1", now, now + 40 * 86400,
		      buf, &len),
		 SMG_OK);
	AUTH(false, "valid for longer than");
	/* wrong scope: the ticket's own VM, then its destination */
	CHECK_EQ(
	    sign(w->alice, "alice", "web-2", "src1", "dst1", now, now + 600, buf, &len),
	    SMG_OK);
	AUTH(false, "it is for VM 'web-2', not 'web-1'");
	CHECK_EQ(
	    sign(w->alice, "alice", "web-1", "src1", "dst2", now, now + 600, buf, &len),
	    SMG_OK);
	AUTH(false, "it is for src1 -> dst2");
	/* wrong scope: the operator's enrolled VMs, source labels, destination */
	sc.domain = "mail";
	CHECK_EQ(
	    sign(w->alice, "alice", "mail", "src1", "dst1", now, now + 600, buf, &len),
	    SMG_OK);
	AUTH(false, "may not migrate VM 'mail'");
	sc.domain = "web-1";
	sc.src_labels = us;
	CHECK_EQ(
	    sign(w->alice, "alice", "web-1", "src1", "dst1", now, now + 600, buf, &len),
	    SMG_OK);
	AUTH(false, "may not migrate from host 'src1'");
	sc.src_labels = eu;
	sc.dst = "edge1";
	CHECK_EQ(
	    sign(w->alice, "alice", "web-1", "src1", "edge1", now, now + 600, buf, &len),
	    SMG_OK);
	AUTH(false, "may not migrate to host 'edge1'");
	sc.dst = "dst1";
	/* wrong role: the admin signs a ticket */
	CHECK_EQ(
	    sign(w->root, "root", "web-1", "src1", "dst1", now, now + 600, buf, &len),
	    SMG_OK);
	AUTH(false, "has role admin");
	/* revoked */
	CHECK_EQ(sign(w->bob, "bob", "web-1", "src1", "dst1", now, now + 600, buf, &len),
		 SMG_OK);
	AUTH(false, "operator 'bob' is revoked (operators line 5)");
	/* malformed */
	len = 10;
	AUTH(false, "malformed");
#undef AUTH
	smg_operators_free(ops);
}

static void test_replay(void)
{
	char path[128], text[256];
	uint8_t d1[32], d2[32], d3[32];
	uint64_t now = (uint64_t)time(NULL);
	FILE *f;

	snprintf(path, sizeof(path), "%s/audit/tickets-used", dir);
	randombytes_buf(d1, sizeof(d1));
	randombytes_buf(d2, sizeof(d2));
	randombytes_buf(d3, sizeof(d3));
	CHECK_EQ(smg_replay_use(path, d1, now + 600, now), SMG_OK);
	CHECK_EQ(smg_replay_use(path, d1, now + 600, now), SMG_ERR_REPLAY);
	CHECK_EQ(smg_replay_use(path, d2, now + 600, now), SMG_OK);
	/* later (a restart reads the same file): still used */
	CHECK_EQ(smg_replay_use(path, d1, now + 600, now + 60), SMG_ERR_REPLAY);
	/* once both tickets have expired their entries go */
	CHECK_EQ(smg_replay_use(path, d3, now + 9000, now + 600 + SMG_TICKET_SKEW + 1),
		 SMG_OK);
	f = fopen(path, "r");
	CHECK(f != NULL && fgets(text, sizeof(text), f) != NULL);
	CHECK(f != NULL && fgets(text, sizeof(text), f) == NULL); /* one line left */
	if (f != NULL)
		fclose(f);
	/* damage fails closed */
	f = fopen(path, "a");
	fputs("not a digest\n", f);
	fclose(f);
	randombytes_buf(d1, sizeof(d1));
	CHECK_EQ(smg_replay_use(path, d1, now + 600, now), SMG_ERR_PROTO);
}

static void test_armor(struct world *w)
{
	uint8_t buf[SMG_TICKET_MAX], back[SMG_TICKET_MAX];
	char text[SMG_TICKET_TEXT_MAX], junk[SMG_TICKET_TEXT_MAX + 8];
	size_t len, blen;
	struct smg_ticket t;
	uint64_t now = (uint64_t)time(NULL);

	CHECK_EQ(
	    sign(w->alice, "alice", "web-1", "src1", "dst1", now, now + 60, buf, &len),
	    SMG_OK);
	CHECK_EQ(smg_ticket_armor(buf, len, text, sizeof(text)), SMG_OK);
	CHECK_EQ(smg_ticket_dearmor(text, strlen(text), back, sizeof(back), &blen),
		 SMG_OK);
	CHECK(blen == len && memcmp(buf, back, len) == 0);
	CHECK_EQ(smg_ticket_decode(back, blen, &t), SMG_OK);
	CHECK(!strcmp(t.operator_name, "alice") && t.not_after == now + 60);
	/* no END line, garbage before BEGIN, oversize */
	text[strlen(text) - 10] = '\0';
	CHECK(smg_ticket_dearmor(text, strlen(text), back, sizeof(back), &blen) !=
	      SMG_OK);
	CHECK(smg_ticket_dearmor("hello\n", 6, back, sizeof(back), &blen) != SMG_OK);
	memset(junk, '#', sizeof(junk));
	CHECK_EQ(smg_ticket_dearmor(junk, sizeof(junk), back, sizeof(back), &blen),
		 SMG_ERR_TOO_LONG);
	/* trailing bytes after the signature */
	buf[len] = 0;
	CHECK_EQ(smg_ticket_decode(buf, len + 1, &t), SMG_ERR_TRAILING);
}

int main(void)
{
	struct world w;
	char cmd[128];

	if (sodium_init() < 0)
		return 1;
	smg_log_set_level(SMG_LOG_ERROR);
	snprintf(dir, sizeof(dir), "/tmp/smg-ticket-XXXXXX");
	if (mkdtemp(dir) == NULL)
		return 1;
	memset(&w, 0, sizeof(w));
	build(&w);
	CHECK(w.root != NULL && w.alice != NULL && w.bob != NULL && w.eve != NULL);
	test_operators_file(&w);
	test_authorize(&w);
	test_replay();
	test_armor(&w);
	smg_identity_free(w.root);
	smg_identity_free(w.alice);
	smg_identity_free(w.bob);
	smg_identity_free(w.eve);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		return 1;
	return check_result("test_audit_ticket");
}
