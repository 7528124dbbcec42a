/* Policy file parsing and the plan-time ACL / placement checks. */
#include <string.h>

#include "attest/attest.h"
#include "base/base.h"
#include "check.h"

/* A valid P-256 point (the generator G) stands in for enrolled keys. */
#define G                                                                    \
	"046b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296" \
	"4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5"
#define Z64 "0000000000000000000000000000000000000000000000000000000000000000"

static const char good[] = "# receiver in eu-west\n"
			   "host recv1\n"
			   "tcti swtpm:host=127.0.0.1,port=2321\n"
			   "pcrs 0-3,7\n"
			   "label region=eu-west tier=gold\n"
			   "\n"
			   "peer src1\n"
			   "  ecdh " G "\n"
			   "  ak " G "\n"
			   "  pcr 0 " Z64 "\n"
			   "  pcr 7 " Z64 "\n"
			   "  label region=eu-west\n"
			   "  send web-* db1\n"
			   "peer src2   # enrolled, may not send\n"
			   "  ecdh " G "\n"
			   "  ak " G "\n"
			   "  pcr 0 " Z64 "\n"
			   "  label region=us-east\n";

static void test_parse(void)
{
	struct smg_policy *p = NULL;
	const struct smg_policy_peer *pe;
	char err[256];

	CHECK_EQ(smg_policy_parse(good, strlen(good), "good", &p, err, sizeof(err)), 0);
	if (p == NULL) {
		fprintf(stderr, "%s\n", err);
		return;
	}
	CHECK(!strcmp(p->host, "recv1"));
	CHECK_EQ(p->pcr_mask, 0x8f);
	CHECK(!p->software_mode);
	CHECK_EQ(p->nlabels, 2);
	CHECK_EQ(p->npeers, 2);
	pe = smg_policy_find_peer(p, "src1");
	CHECK(pe != NULL && pe->may_send && pe->ndomains == 2 && pe->pcr_mask == 0x81);
	pe = smg_policy_find_peer(p, "src2");
	CHECK(pe != NULL && !pe->may_send && pe->line == 14);
	CHECK(smg_policy_find_peer(p, "src3") == NULL);
	smg_policy_free(p);
}

static void test_errors(void)
{
	static const struct {
		const char *text;
		const char *want;
	} cases[] = {
	    {"host a\nfoo\n", "t:2: unknown keyword"},
	    {"pcrs 1\n", "t:1: missing 'host"},
	    {"host a b\n", "t:1: usage: host"},
	    {"host a\npcrs 24\n", "t:2: usage: pcrs"},
	    {"host a\npcrs 3-1\n", "t:2: usage: pcrs"},
	    {"host a\nmode maybe\n", "t:2: usage: mode"},
	    {"host a\nlabel region\n", "t:2: bad label"},
	    {"host a\nsend x\n", "t:2: 'send' outside a peer block"},
	    {"host a\npeer b\npeer b\n", "t:3: peer 'b' enrolled twice"},
	    {"host a\npeer b\n ecdh 05" G "\n", "t:3: usage: ecdh"},
	    /* a point off the curve: last byte of G changed */
	    {"host a\npeer b\n ecdh "
	     "046b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296"
	     "4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f6\n",
	     "t:3: ecdh: not a point on P-256"},
	    {"host a\npeer b\n pcr 24 " Z64 "\n", "t:3: PCR index"},
	    {"host a\npeer b\n pcr 1 00\n", "t:3: PCR 1: want 64 hex"},
	    {"host a\npeer b\n ecdh " G "\n", "t:2: peer 'b': TPM enrolment needs"},
	    {"host a\npeer b\n send *\n",
	     "t:2: peer 'b' has no TPM keys but mode is tpm"},
	    {"host a\npeer b\n send a/b\n", "t:3: bad domain pattern"},
	    {"host a\nmode software\npeer b\nhost c\n", "t:4: 'host' belongs before"},
	};
	char err[256];

	for (size_t i = 0; i < SMG_ARRAY_LEN(cases); i++) {
		struct smg_policy *p = NULL;
		int r = smg_policy_parse(cases[i].text, strlen(cases[i].text), "t", &p,
					 err, sizeof(err));
		CHECK_EQ(r, SMG_ERR_CONFIG);
		CHECK(p == NULL);
		if (strstr(err, cases[i].want) == NULL) {
			fprintf(stderr, "case %zu: got '%s', want '%s'\n", i, err,
				cases[i].want);
			CHECK(0);
		}
	}
	/* long lines and NUL bytes */
	{
		char big[SMG_POLICY_LINE_MAX + 20];
		struct smg_policy *p = NULL;

		memset(big, 'a', sizeof(big));
		memcpy(big, "host a\n#", 8);
		CHECK_EQ(smg_policy_parse(big, sizeof(big), "t", &p, err, sizeof(err)),
			 SMG_ERR_CONFIG);
		CHECK(strstr(err, "t:2: line longer") != NULL);
		CHECK_EQ(smg_policy_parse("host a\0b\n", 9, "t", &p, err, sizeof(err)),
			 SMG_ERR_CONFIG);
	}
	/* software mode is an explicit opt-in */
	{
		struct smg_policy *p = NULL;
		const char *s = "host a\nmode software\npeer b\n send *\n";
		CHECK_EQ(smg_policy_parse(s, strlen(s), "t", &p, err, sizeof(err)), 0);
		CHECK(p != NULL && p->software_mode);
		smg_policy_free(p);
	}
}

static void test_checks(void)
{
	struct smg_policy *p = NULL;
	const char *eu[] = {"region=eu-west", "region=eu-central"};
	const char *us[] = {"region=us-east"};
	const char *gold_eu[] = {"region=eu-west", "tier=gold"};
	const char *bad[] = {"region"};
	char why[256], err[256];

	if (smg_policy_parse(good, strlen(good), "good", &p, err, sizeof(err)) != 0)
		return;
	/* receiver: ACL on peer and domain, placement against our labels */
	CHECK_EQ(smg_policy_check_migration(p, SMG_POLICY_AS_RECEIVER, "src1", "web-3",
					    eu, 2, why, sizeof(why)),
		 0);
	CHECK_EQ(smg_policy_check_migration(p, SMG_POLICY_AS_RECEIVER, "src1", "db1",
					    NULL, 0, why, sizeof(why)),
		 0);
	CHECK_EQ(smg_policy_check_migration(p, SMG_POLICY_AS_RECEIVER, "src1", "db2",
					    NULL, 0, why, sizeof(why)),
		 SMG_ERR_POLICY);
	CHECK(strstr(why, "may not send domain 'db2'") != NULL);
	CHECK_EQ(smg_policy_check_migration(p, SMG_POLICY_AS_RECEIVER, "src2", "web-1",
					    NULL, 0, why, sizeof(why)),
		 SMG_ERR_POLICY);
	CHECK(strstr(why, "may not send to this host") != NULL);
	CHECK_EQ(smg_policy_check_migration(p, SMG_POLICY_AS_RECEIVER, "evil", "web-1",
					    NULL, 0, why, sizeof(why)),
		 SMG_ERR_UNKNOWN_PEER);
	CHECK_EQ(smg_policy_check_migration(p, SMG_POLICY_AS_RECEIVER, "src1", "web-1",
					    us, 1, why, sizeof(why)),
		 SMG_ERR_POLICY);
	CHECK(strstr(why, "placement") != NULL);
	CHECK_EQ(smg_policy_check_migration(p, SMG_POLICY_AS_RECEIVER, "src1", "web-1",
					    gold_eu, 2, why, sizeof(why)),
		 0);
	/* sender: placement against the destination's enrolled labels */
	CHECK_EQ(smg_policy_check_migration(p, SMG_POLICY_AS_SENDER, "src1", "web-1", eu,
					    2, why, sizeof(why)),
		 0);
	CHECK_EQ(smg_policy_check_migration(p, SMG_POLICY_AS_SENDER, "src2", "web-1", eu,
					    2, why, sizeof(why)),
		 SMG_ERR_POLICY);
	CHECK(strstr(why, "'src2' does not carry an allowed 'region'") != NULL);
	CHECK_EQ(smg_policy_check_migration(p, SMG_POLICY_AS_SENDER, "src1", "web-1",
					    gold_eu, 2, why, sizeof(why)),
		 SMG_ERR_POLICY); /* src1 has no tier label */
	CHECK_EQ(smg_policy_check_migration(p, SMG_POLICY_AS_SENDER, "src1", "web-1", bad,
					    1, why, sizeof(why)),
		 SMG_ERR_POLICY);
	CHECK_EQ(smg_policy_check_migration(p, SMG_POLICY_AS_SENDER, "nowhere", "web-1",
					    NULL, 0, why, sizeof(why)),
		 SMG_ERR_UNKNOWN_PEER);
	smg_policy_free(p);
}

int main(void)
{
	uint32_t m;

	smg_log_set_level(SMG_LOG_ERROR + 0);
	CHECK_EQ(smg_pcr_mask_parse("0-3,7", &m), 0);
	CHECK_EQ(m, 0x8f);
	CHECK(smg_pcr_mask_parse("", &m) != 0);
	CHECK(smg_pcr_mask_parse("1,", &m) == 0 && m == 2);
	CHECK(smg_pcr_mask_parse("-1", &m) != 0);
	CHECK(smg_pcr_mask_parse("23", &m) == 0 && m == 1u << 23);
	test_parse();
	test_errors();
	test_checks();
	return check_result("test_attest_policy");
}
