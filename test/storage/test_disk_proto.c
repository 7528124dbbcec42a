/* The disk service's control protocol parsers (requests on the service
 * side, replies on the client side), table-driven: every verb's exact form,
 * and the hostile shapes each must refuse. */
#include "check.h"
#include "util.h"

struct req_case {
	const char *body; /* NUL-terminated; the payload is what follows '\n' */
	int want;	  /* SMG_OK or the error */
	enum smg_dsvc_verb verb;
	const char *name, *word;
	uint64_t n0, n1, n2;
};

static const struct req_case reqs[] = {
    {"LIST\n", SMG_OK, SMG_DSVC_LIST, "", "", 0, 0, 0},
    {"INFO vm1.0\n", SMG_OK, SMG_DSVC_INFO, "vm1.0", "", 0, 0, 0},
    {"CREATE a_b-c.1 1048576\n", SMG_OK, SMG_DSVC_CREATE, "a_b-c.1", "", 1048576, 0, 0},
    {"SEND vm1.0 waio 3\n", SMG_OK, SMG_DSVC_SEND, "vm1.0", "waio", 3, 0, 0},
    {"SEND vm1.0 dbt 0\n", SMG_OK, SMG_DSVC_SEND, "vm1.0", "dbt", 0, 0, 0},
    {"NEXT final\n", SMG_OK, SMG_DSVC_NEXT, "", "final", 0, 0, 0},
    {"RECV d.0 18446744073709551615 65536 7\n", SMG_OK, SMG_DSVC_RECV, "d.0", "",
     UINT64_MAX, 65536, 7},
    {"RESUME\n", SMG_OK, SMG_DSVC_RESUME, "", "", 0, 0, 0},
    {"RESUME vm1.0\n", SMG_OK, SMG_DSVC_RESUME, "vm1.0", "", 0, 0, 0},
    {"SETTLE vm1.0 aborted\n", SMG_OK, SMG_DSVC_SETTLE, "vm1.0", "aborted", 0, 0, 0},
    {"WORKLOAD vm1.0 trace:/x/y.csv\n", SMG_OK, SMG_DSVC_WORKLOAD, "vm1.0",
     "trace:/x/y.csv", 0, 0, 0},
    {"APPLY\nxyz", SMG_OK, SMG_DSVC_APPLY, "", "", 0, 0, 0},
    /* hostile or malformed */
    {.body = "", .want = SMG_ERR_TRUNCATED},
    {.body = "LIST", .want = SMG_ERR_TRUNCATED},	      /* no end of line */
    {.body = "\n", .want = SMG_ERR_PROTO},		      /* no verb */
    {.body = "list\n", .want = SMG_ERR_UNKNOWN_TYPE},	      /* verbs are upper case */
    {.body = "FORMAT vm1.0\n", .want = SMG_ERR_UNKNOWN_TYPE}, /* unknown verb */
    {.body = "INFO\n", .want = SMG_ERR_PROTO},		      /* too few arguments */
    {.body = "INFO a b\n", .want = SMG_ERR_PROTO},	      /* too many */
    {.body = "INFO  a\n", .want = SMG_ERR_PROTO},	      /* doubled space */
    {.body = "INFO a \n", .want = SMG_ERR_PROTO},	      /* trailing space */
    {.body = " INFO a\n", .want = SMG_ERR_PROTO},	      /* leading space */
    {.body = "INFO ../etc/passwd\n", .want = SMG_ERR_PROTO},  /* a path, not a name */
    {.body = "INFO a/b\n", .want = SMG_ERR_PROTO},	      /* a path, not a name */
    {.body = "INFO .hidden\n", .want = SMG_ERR_PROTO},	      /* a dot name */
    {.body = "INFO -rf\n", .want = SMG_ERR_PROTO},	      /* looks like an option */
    {.body = "INFO a\tb\n", .want = SMG_ERR_PROTO},	      /* control character */
    {.body = "CREATE a 1M\n", .want = SMG_ERR_PROTO},	/* numbers are plain decimal */
    {.body = "CREATE a 0100\n", .want = SMG_ERR_PROTO}, /* no leading zeros */
    {.body = "CREATE a -1\n", .want = SMG_ERR_PROTO},	/* no sign */
    {.body = "CREATE a 18446744073709551616\n",
     .want = SMG_ERR_PROTO},				 /* overflows u64 */
    {.body = "SEND a qcow2 0\n", .want = SMG_ERR_PROTO}, /* unknown mode */
    {.body = "NEXT later\n", .want = SMG_ERR_PROTO},	 /* unknown phase */
    {.body = "SETTLE a maybe\n", .want = SMG_ERR_PROTO}, /* unknown outcome */
    {.body = "WORKLOAD a trace:rel.csv\n",
     .want = SMG_ERR_PROTO},				  /* trace path not absolute */
    {.body = "WORKLOAD a idle\n", .want = SMG_ERR_PROTO}, /* unknown workload */
    {.body = "LIST\nextra", .want = SMG_ERR_TRAILING},	  /* payload where none belongs */
    {.body = "APPLY\n", .want = SMG_ERR_PROTO},		  /* APPLY without a frame */
};

static void test_requests(void)
{
	for (size_t i = 0; i < SMG_ARRAY_LEN(reqs); i++) {
		const struct req_case *c = &reqs[i];
		struct smg_dsvc_req q;
		int r =
		    smg_dsvc_parse_request((const uint8_t *)c->body, strlen(c->body), &q);

		if (r != c->want)
			fprintf(stderr, "case %zu '%s': %d, want %d\n", i, c->body, r,
				c->want);
		CHECK_EQ(r, c->want);
		if (r != SMG_OK || c->want != SMG_OK)
			continue;
		CHECK_EQ(q.verb, c->verb);
		CHECK(strcmp(q.name, c->name) == 0);
		CHECK(strcmp(q.word, c->word) == 0);
		CHECK(q.num[0] == c->n0 && q.num[1] == c->n1 && q.num[2] == c->n2);
	}
}

static void test_request_limits(void)
{
	static uint8_t big[SMG_DSVC_MSG_MAX + 2];
	char name[SMG_DSVC_NAME_MAX + 2];
	struct smg_dsvc_req q;
	char line[256];

	/* A name of exactly the cap, and one over it. */
	memset(name, 'n', SMG_DSVC_NAME_MAX);
	name[SMG_DSVC_NAME_MAX] = '\0';
	snprintf(line, sizeof(line), "INFO %s\n", name);
	CHECK_EQ(smg_dsvc_parse_request((uint8_t *)line, strlen(line), &q), SMG_OK);
	name[SMG_DSVC_NAME_MAX] = 'n';
	name[SMG_DSVC_NAME_MAX + 1] = '\0';
	snprintf(line, sizeof(line), "INFO %s\n", name);
	CHECK(smg_dsvc_parse_request((uint8_t *)line, strlen(line), &q) != SMG_OK);
	/* A line with no end within the line cap. */
	memset(big, 'A', SMG_DSVC_LINE_MAX + 10);
	CHECK_EQ(smg_dsvc_parse_request(big, SMG_DSVC_LINE_MAX + 10, &q),
		 SMG_ERR_TOO_LONG);
	/* An APPLY frame one byte over the frame cap. */
	memcpy(big, "APPLY\n", 6);
	memset(big + 6, 1, SMG_DSVC_FRAME_MAX + 1);
	CHECK_EQ(smg_dsvc_parse_request(big, 6 + SMG_DSVC_FRAME_MAX + 1, &q),
		 SMG_ERR_PROTO);
	CHECK_EQ(smg_dsvc_parse_request(big, 6 + SMG_DSVC_FRAME_MAX, &q), SMG_OK);
	CHECK_EQ(q.payload_len, SMG_DSVC_FRAME_MAX);
	CHECK_EQ(smg_dsvc_parse_request(big, SMG_DSVC_MSG_MAX + 1, &q), SMG_ERR_TOO_LONG);
}

static void test_replies(void)
{
	struct smg_dsvc_reply p;
	const char *ok = "OK 42 65536 idle\nrest", *err = "ERR -31 no disk 'x'\n";

	CHECK_EQ(smg_dsvc_parse_reply((const uint8_t *)ok, strlen(ok), &p), SMG_OK);
	CHECK_EQ(p.err, 0);
	CHECK_EQ(p.nfields, 3);
	CHECK(strcmp(p.fields[2], "idle") == 0);
	CHECK_EQ(p.payload_len, 4);
	CHECK_EQ(smg_dsvc_parse_reply((const uint8_t *)err, strlen(err), &p), SMG_OK);
	CHECK_EQ(p.err, SMG_ERR_NOT_FOUND);
	CHECK(p.text_len == 11 && memcmp(p.text, "no disk 'x'", 11) == 0);
	CHECK_EQ(smg_dsvc_parse_reply((const uint8_t *)"OK\n", 3, &p), SMG_OK);
	CHECK_EQ(p.nfields, 0);
	/* Hostile replies: no line end, an unknown status, an error code that
	 * is not one of ours (0, positive, past the table), too many fields,
	 * a control character in the message. */
	static const char *bad[] = {"OK",
				    "YES\n",
				    "ERR 31 x\n",
				    "ERR -0 x\n",
				    "ERR -9999 x\n",
				    "ERR x\n",
				    "OK 1 2 3 4 5\n",
				    "ERR -31 a\x01b\n",
				    "OK  1\n"};
	for (size_t i = 0; i < SMG_ARRAY_LEN(bad); i++)
		CHECK(smg_dsvc_parse_reply((const uint8_t *)bad[i], strlen(bad[i]), &p) !=
		      0);
}

static void test_names(void)
{
	CHECK(smg_dsvc_name_valid("vm1.0", 5));
	CHECK(smg_dsvc_name_valid("A_b-9", 5));
	CHECK(!smg_dsvc_name_valid("", 0));
	CHECK(!smg_dsvc_name_valid(".x", 2));
	CHECK(!smg_dsvc_name_valid("-x", 2));
	CHECK(!smg_dsvc_name_valid("a/b", 3));
	CHECK(!smg_dsvc_name_valid("a b", 3));
	CHECK(!smg_dsvc_name_valid("a\0b", 3));
	CHECK_EQ(smg_stg_chunk_for(2ull << 30), SMG_STG_CHUNK_DEFAULT);
	CHECK_EQ(smg_stg_chunk_for(1ull << 40), 256u << 10); /* 4 Mi chunks at most */
	CHECK((1ull << 40) / smg_stg_chunk_for(1ull << 40) <= SMG_STG_CHUNKS_TARGET);
}

int main(void)
{
	smg_log_set_level(SMG_LOG_ERROR);
	test_requests();
	test_request_limits();
	test_replies();
	test_names();
	return check_result("storage_disk_proto");
}
