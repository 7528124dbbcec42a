/* The audit log through its API: records appended by a host verify; every
 * way of tampering with a copy of the log (edit, delete, reorder, truncate
 * by whole records or mid-record, splice in another host's record or a
 * duplicate) is detected and names the record; rotation keeps the chain
 * whole across files; alert records are rate-limited while the counters
 * count every event. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "audit/audit.h"
#include "base/base.h"
#include "check.h"
#include "transport/transport.h"

#define LINES_MAX 64

struct host {
	char dir[128], adir[160];
	struct smg_identity *id;
	struct smg_audit *a;
};

struct seen {
	int n;
	unsigned line;
	uint64_t seq;
	char what[512];
	char all[2048]; /* every problem: "LINE/SEQ: what; " */
};

static void report(void *arg, const char *file, unsigned line, uint64_t seq,
		   const char *what)
{
	struct seen *s = arg;

	(void)file;
	size_t l = strlen(s->all);
	snprintf(s->all + l, sizeof(s->all) - l, "%u/%llu: %s; ", line,
		 (unsigned long long)seq, what);
	if (s->n++ == 0) {
		s->line = line;
		s->seq = seq;
		snprintf(s->what, sizeof(s->what), "%s", what);
	}
}

static int host_open(struct host *h, const char *name)
{
	struct smg_audit_opts o = {0};
	char key[200], pub[SMG_PUBKEY_TEXT_LEN];

	snprintf(h->dir, sizeof(h->dir), "/tmp/smg-audit-XXXXXX");
	if (mkdtemp(h->dir) == NULL)
		return -1;
	snprintf(key, sizeof(key), "%s/host.key", h->dir);
	snprintf(h->adir, sizeof(h->adir), "%s/audit", h->dir);
	if (smg_identity_generate(key, false, pub, sizeof(pub)) != SMG_OK ||
	    smg_identity_load(key, &h->id) != SMG_OK)
		return -1;
	o.dir = h->adir;
	o.host = name;
	o.identity = h->id;
	return smg_audit_open(&o, &h->a);
}

static void host_close(struct host *h)
{
	char cmd[200];

	smg_audit_close(h->a);
	smg_identity_free(h->id);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", h->dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", h->dir);
}

/* n alert records from distinct addresses (no rate limit in the way). */
static void append(struct host *h, int first, int n)
{
	char addr[32];

	for (int i = first; i < first + n; i++) {
		snprintf(addr, sizeof(addr), "10.0.0.%d", i);
		smg_audit_alert(h->a, addr, "", SMG_ERR_BAD_SIG);
	}
}

static size_t read_lines(const char *path, char **lines)
{
	FILE *f = fopen(path, "r");
	char buf[SMG_AUDIT_RECORD_MAX + 2];
	size_t n = 0;

	if (f == NULL)
		return 0;
	while (n < LINES_MAX && fgets(buf, sizeof(buf), f) != NULL)
		lines[n++] = strdup(buf);
	fclose(f);
	return n;
}

static void write_lines(const char *path, char **lines, size_t n)
{
	FILE *f = fopen(path, "w");

	for (size_t i = 0; i < n; i++)
		fputs(lines[i], f);
	fclose(f);
}

/* Verify files (and a head) and return what the first problem said. */
static struct seen verify(const char *const *files, size_t n, const char *head,
			  const uint8_t *pin)
{
	struct seen s = {0};
	struct smg_audit_verify_opts o = {
	    .report = report, .arg = &s, .head = head, .pin = pin};
	struct smg_audit_chain *c = NULL;
	int r = smg_audit_chain_load(files, n, &o, &c);

	CHECK(r >= 0);
	CHECK_EQ(r, s.n);
	smg_audit_chain_free(c);
	return s;
}

#define EXPECT(s, ln, sq, text)                                                 \
	do {                                                                    \
		CHECK((s).n > 0);                                               \
		CHECK_EQ((s).line, ln);                                         \
		CHECK_EQ((s).seq, sq);                                          \
		if (strstr((s).what, text) == NULL) {                           \
			check_failures++;                                       \
			fprintf(stderr, "FAIL %s:%d: '%s' does not say '%s'\n", \
				__FILE__, __LINE__, (s).what, text);            \
		}                                                               \
	} while (0)

static void test_tamper(void)
{
	struct host h, other;
	char log[200], head[200], copy[200], *lines[LINES_MAX], *olines[LINES_MAX];
	char *v[LINES_MAX];
	const char *f[1] = {copy};
	uint8_t pin[SMG_PUBKEY_LEN];
	size_t n, on;
	struct seen s;

	CHECK_EQ(host_open(&h, "hosta"), SMG_OK);
	CHECK_EQ(host_open(&other, "hostb"), SMG_OK);
	append(&h, 1, 8); /* record 1 is "open", then 8 alerts: seq 2..9 */
	append(&other, 1, 3);
	smg_identity_public(h.id, pin);
	snprintf(log, sizeof(log), "%s/audit.log", h.adir);
	snprintf(head, sizeof(head), "%s/audit.head", h.adir);
	snprintf(copy, sizeof(copy), "%s/copy.log", h.dir);
	n = read_lines(log, lines);
	CHECK_EQ(n, 9);
	snprintf(log, sizeof(log), "%s/audit.log", other.adir);
	on = read_lines(log, olines);
	CHECK_EQ(on, 4);

	/* intact, with the head and the pinned key */
	write_lines(copy, lines, n);
	s = verify(f, 1, head, pin);
	CHECK_EQ(s.n, 0);

	/* edit: record 4's address */
	memcpy(v, lines, n * sizeof(*v));
	char edited[SMG_AUDIT_RECORD_MAX];
	snprintf(edited, sizeof(edited), "%s", lines[3]);
	char *p = strstr(edited, "10.0.0.3");
	CHECK(p != NULL);
	if (p != NULL)
		p[7] = '9';
	v[3] = edited;
	write_lines(copy, v, n);
	s = verify(f, 1, head, pin);
	EXPECT(s, 4, 4, "signature invalid");

	/* delete record 5 */
	memcpy(v, lines, 4 * sizeof(*v));
	memcpy(v + 4, lines + 5, (n - 5) * sizeof(*v));
	write_lines(copy, v, n - 1);
	s = verify(f, 1, head, pin);
	EXPECT(s, 5, 6, "records 5..5 are missing");

	/* reorder records 4 and 5: record 4 now comes after 5 */
	memcpy(v, lines, n * sizeof(*v));
	v[3] = lines[4];
	v[4] = lines[3];
	write_lines(copy, v, n);
	s = verify(f, 1, head, pin);
	EXPECT(s, 4, 5, "missing before it");
	/* and the moved record itself */
	CHECK(strstr(s.all, "5/4: out of order after record 5") != NULL);

	/* truncate two whole records: only the head can tell */
	write_lines(copy, lines, n - 2);
	s = verify(f, 1, NULL, pin);
	CHECK_EQ(s.n, 0);
	s = verify(f, 1, head, pin);
	EXPECT(s, 8, 8, "records 8..9 are missing (truncated)");

	/* truncate mid-record */
	memcpy(v, lines, n * sizeof(*v));
	char half[SMG_AUDIT_RECORD_MAX];
	snprintf(half, sizeof(half), "%.*s", (int)strlen(lines[n - 1]) / 2, lines[n - 1]);
	v[n - 1] = half;
	write_lines(copy, v, n);
	s = verify(f, 1, head, pin);
	EXPECT(s, 9, 9, "truncated mid-record");

	/* splice in another host's record */
	memcpy(v, lines, 5 * sizeof(*v));
	v[5] = olines[2];
	memcpy(v + 6, lines + 5, (n - 5) * sizeof(*v));
	write_lines(copy, v, n + 1);
	s = verify(f, 1, head, pin);
	EXPECT(s, 6, 3, "signed by another key");

	/* splice in a duplicate of our own record 3 */
	memcpy(v, lines, 6 * sizeof(*v));
	v[6] = lines[2];
	memcpy(v + 7, lines + 6, (n - 6) * sizeof(*v));
	write_lines(copy, v, n + 1);
	s = verify(f, 1, head, pin);
	EXPECT(s, 7, 3, "out of order");

	/* the beginning cut off */
	write_lines(copy, lines + 2, n - 2);
	s = verify(f, 1, head, pin);
	EXPECT(s, 1, 3, "beginning was cut off");

	/* a whole log re-signed by another key: the pin catches it */
	write_lines(copy, olines, on);
	s = verify(f, 1, NULL, pin);
	EXPECT(s, 1, 1, "signed by another key");

	for (size_t i = 0; i < n; i++)
		free(lines[i]);
	for (size_t i = 0; i < on; i++)
		free(olines[i]);
	host_close(&h);
	host_close(&other);
}

static void test_rotate(void)
{
	struct host h;
	char rotated[700], cur[200], head[200], copy[200], *lines[LINES_MAX];
	char **files = NULL;
	size_t nf = 0, n;
	struct seen s;

	CHECK_EQ(host_open(&h, "hosta"), SMG_OK);
	append(&h, 1, 4); /* seq 1..5 */
	CHECK_EQ(smg_audit_rotate(h.a, rotated, sizeof(rotated)), SMG_OK);
	CHECK(strstr(rotated, "audit.log.0000000005") != NULL);
	append(&h, 10, 3); /* rotate record 6, then 7..9 */
	CHECK_EQ(smg_audit_log_files(h.adir, &files, &nf), SMG_OK);
	CHECK_EQ(nf, 2);
	snprintf(head, sizeof(head), "%s/audit.head", h.adir);
	s = verify((const char *const *)files, nf, head, NULL);
	CHECK_EQ(s.n, 0);
	/* the current file alone starts with a rotation: still a chain */
	s = verify((const char *const *)files + 1, 1, head, NULL);
	CHECK_EQ(s.n, 0);
	/* the rotation record removed: the break shows across files */
	snprintf(cur, sizeof(cur), "%s/audit.log", h.adir);
	n = read_lines(cur, lines);
	CHECK_EQ(n, 4);
	snprintf(copy, sizeof(copy), "%s/audit.log", h.dir);
	write_lines(copy, lines + 1, n - 1);
	const char *two[2] = {files[0], copy};
	s = verify(two, 2, NULL, NULL);
	EXPECT(s, 1, 7, "records 6..6 are missing");
	for (size_t i = 0; i < n; i++)
		free(lines[i]);
	smg_audit_log_files_free(files, nf);
	host_close(&h);
}

static void test_rate_limit(void)
{
	struct host h;
	uint64_t c[SMG_CNT_MAX_];
	char log[200], *lines[LINES_MAX];
	size_t n;

	CHECK_EQ(host_open(&h, "hosta"), SMG_OK);
	for (int i = 0; i < 8; i++)
		smg_audit_alert(h.a, "192.0.2.7", "", SMG_ERR_UNKNOWN_PEER);
	smg_audit_alert(h.a, "192.0.2.8", "", SMG_ERR_UNKNOWN_PEER);
	snprintf(log, sizeof(log), "%s/audit.log", h.adir);
	n = read_lines(log, lines);
	CHECK_EQ(n, 1 + 5 + 1); /* open, a burst of 5 from .7, one from .8 */
	CHECK_EQ(smg_audit_counters_read(h.adir, c), SMG_OK);
	CHECK_EQ(c[SMG_CNT_HANDSHAKE_REFUSED], 9);
	CHECK_EQ(c[SMG_CNT_UNKNOWN_PEER], 9);
	CHECK_EQ(c[SMG_CNT_SUPPRESSED], 3);
	CHECK_EQ(c[SMG_CNT_RECORDS], 6);
	CHECK(strstr(lines[1], "\"kind\":\"unknown_peer\"") != NULL);
	CHECK(strstr(lines[1], "\"peer_addr\":\"192.0.2.7\"") != NULL);
	for (size_t i = 0; i < n; i++)
		free(lines[i]);
	host_close(&h);
}

/* A live log whose last line is torn (a crash mid-write): the next append
 * turns it into a rotated file and the new log links to its last readable
 * record, so verifying the directory reports exactly the torn record. */
static void test_damaged(void)
{
	struct host h;
	char log[200], cmd[400], *lines[LINES_MAX], **files = NULL;
	size_t n, nf = 0;
	struct seen s;

	CHECK_EQ(host_open(&h, "hosta"), SMG_OK);
	append(&h, 1, 3); /* seq 1..4 */
	snprintf(log, sizeof(log), "%s/audit.log", h.adir);
	snprintf(cmd, sizeof(cmd), "truncate -s -40 '%s'", log);
	CHECK_EQ(system(cmd), 0);
	append(&h, 7, 1); /* rotate (seq 4, linked to 3), then the alert */
	n = read_lines(log, lines);
	CHECK_EQ(n, 2);
	CHECK(n > 0 && strstr(lines[0], "\"event\":\"rotate\"") != NULL &&
	      strstr(lines[0], "\"previous\":\"audit.log.0000000003\"") != NULL &&
	      strstr(lines[0], "\"damaged\":") != NULL);
	CHECK_EQ(smg_audit_log_files(h.adir, &files, &nf), SMG_OK);
	CHECK_EQ(nf, 2);
	s = verify((const char *const *)files, nf, NULL, NULL);
	EXPECT(s, 4, 4, "truncated mid-record");
	CHECK_EQ(s.n, 1);
	smg_audit_log_files_free(files, nf);
	for (size_t i = 0; i < n; i++)
		free(lines[i]);
	host_close(&h);
}

int main(void)
{
	if (sodium_init() < 0)
		return 1;
	smg_log_set_level(SMG_LOG_ERROR);
	test_tamper();
	test_rotate();
	test_rate_limit();
	test_damaged();
	return check_result("test_audit_log");
}
