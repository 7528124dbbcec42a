/* Peers file and identity files: format, errors with line numbers, limits,
 * private key permissions. */
#include <sys/stat.h>

#include "check.h"
#include "tutil.h"

static int parse(const char *t)
{
	struct smg_peers *p = NULL;
	int r = smg_peers_parse(t, strlen(t), &p);

	smg_peers_free(p);
	return r;
}

int main(void)
{
	static const char key[] = "L1Wa8aT5N0dNwsnoJhjUIOcVmlzDVwXn/JA0cd6yt0s=";
	struct smg_peers *p = NULL;
	char t[1024], path[128], log[4096] = "";
	struct tkeys k;
	struct smg_identity *id = NULL;
	FILE *f;

	if (sodium_init() < 0 || tkeys_init(&k) != 0)
		return 1;
	snprintf(t, sizeof(t), "# c\n\n a.b-c_1 %s  tpm=xyz more # note\r\nb %s\n", key,
		 key);
	CHECK_EQ(smg_peers_parse(t, strlen(t), &p), 0);
	if (p != NULL) {
		const struct smg_peer *e = smg_peers_find(p, "a.b-c_1");

		CHECK(e != NULL && e->line == 3 &&
		      strcmp(e->options, "tpm=xyz more ") == 0);
		CHECK(smg_peers_find(p, "b") != NULL && smg_peers_find(p, "c") == NULL);
		smg_peers_free(p);
	}
	/* errors carry the line number */
	f = fmemopen(log, sizeof(log), "w");
	smg_log_set_stream(f);
	snprintf(t, sizeof(t), "a %s\n\nb notbase64\n", key);
	CHECK_EQ(parse(t), SMG_ERR_CONFIG);
	fflush(f);
	CHECK(strstr(log, "peers line 3") != NULL);
	smg_log_set_stream(NULL);
	fclose(f);
	snprintf(t, sizeof(t), "a %s\na %s\n", key, key); /* duplicate */
	CHECK_EQ(parse(t), SMG_ERR_CONFIG);
	CHECK_EQ(parse("bad/name AAAA\n"), SMG_ERR_CONFIG);
	/* the one name rule (smg_name_valid): a good key, a bad name */
	snprintf(t, sizeof(t), "ok %s\n", key);
	CHECK_EQ(parse(t), SMG_OK);
	snprintf(t, sizeof(t), "-rf %s\n", key);
	CHECK_EQ(parse(t), SMG_ERR_CONFIG);
	snprintf(t, sizeof(t), ".. %s\n", key);
	CHECK_EQ(parse(t), SMG_ERR_CONFIG);
	CHECK_EQ(parse("lonely\n"), SMG_ERR_CONFIG);
	snprintf(t, sizeof(t), "a %s\n", "AAAA"); /* short key */
	CHECK_EQ(parse(t), SMG_ERR_CONFIG);
	{
		struct smg_peers *q = NULL;

		CHECK_EQ(smg_peers_parse("a\0b\n", 4, &q), SMG_ERR_CONFIG); /* NUL */
	}
	/* a private key readable by others is refused */
	snprintf(path, sizeof(path), "%s/src.key", k.dir);
	chmod(path, 0644);
	CHECK_EQ(smg_identity_load(path, &id), SMG_ERR_PERM);
	chmod(path, 0600);
	CHECK_EQ(smg_identity_load(path, &id), 0);
	smg_identity_free(id);
	CHECK_EQ(smg_identity_generate(path, false, t, sizeof(t)), SMG_ERR_EXISTS);
	tkeys_fini(&k);
	return check_result("test_transport_peers");
}
