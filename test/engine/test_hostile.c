/* A hostile (but enrolled) source against a real `secmig recv --json`:
 * the strings it chooses (migration id, domain name, ABORT detail) must not
 * reach the destination's event stream raw. Before, the id was copied into
 * the events before it was checked and printed with printf: a crafted id
 * injected fields and whole events into the receiver's JSON. Every line the
 * receiver writes must parse as one JSON object with no field the attacker
 * named, and no control character may survive into a detail.
 *
 * The receiver is the real binary ($SECMIG) with a real sim host; the
 * attacker uses the library to speak the protocol directly. */
#include <json-c/json.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/base.h"
#include "check.h"
#include "engine/engine.h"
#include "proto/proto.h"
#include "secmig.pb-c.h"
#include "transport/transport.h"

static char dir[] = "/tmp/smg-hostile.XXXXXX";
static const char *secmig;

static pid_t spawn(const char *out, const char *const argv[])
{
	pid_t p = fork();

	if (p == 0) {
		FILE *f = freopen(out, "w", stdout);
		(void)f;
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	return p;
}

static unsigned recv_port(const char *path)
{
	char line[512];
	unsigned port = 0;

	for (int i = 0; i < 400 && port == 0; i++) {
		FILE *f = fopen(path, "r");
		while (f != NULL && fgets(line, sizeof(line), f) != NULL) {
			char *p = strstr(line, "\"port\":");
			if (p != NULL)
				port = (unsigned)strtoul(p + 7, NULL, 10);
		}
		if (f != NULL)
			fclose(f);
		if (port == 0)
			usleep(50000);
	}
	return port;
}

/* Every line one JSON object, none carrying what the attacker wrote. */
static unsigned check_stream(const char *path)
{
	char line[8192];
	unsigned n = 0;
	FILE *f = fopen(path, "r");

	CHECK(f != NULL);
	while (f != NULL && fgets(line, sizeof(line), f) != NULL) {
		json_object *o = json_tokener_parse(line), *v;
		n++;
		CHECK(o != NULL && json_object_is_type(o, json_type_object));
		if (o == NULL) {
			fprintf(stderr, "not JSON: %s", line);
			continue;
		}
		CHECK(!json_object_object_get_ex(o, "injected", &v));
		if (json_object_object_get_ex(o, "outcome", &v))
			CHECK(strcmp(json_object_get_string(v), "migrated") != 0);
		if (json_object_object_get_ex(o, "detail", &v))
			for (const char *s = json_object_get_string(v); *s; s++)
				CHECK(*s >= 0x20 && *s < 0x7f);
		if (json_object_object_get_ex(o, "migration_id", &v)) {
			const char *id = json_object_get_string(v);
			CHECK(id[0] == '\0' || smg_migration_id_valid(id));
		}
		json_object_put(o);
	}
	if (f != NULL)
		fclose(f);
	return n;
}

static int connect_evil(unsigned port, struct smg_session **s)
{
	char key[600], peers[600];
	struct smg_identity *id;
	struct smg_peers *pe;
	int r;

	snprintf(key, sizeof(key), "%s/evil.key", dir);
	snprintf(peers, sizeof(peers), "%s/evil.peers", dir);
	if ((r = smg_identity_load(key, &id)) != 0 ||
	    (r = smg_peers_load(peers, &pe)) != 0)
		return r;
	struct smg_session_opts so = {.identity = id,
				      .peers = pe,
				      .name = "evil",
				      .expect_peer = "dst",
				      .channels = 1};
	r = smg_session_connect("127.0.0.1", (uint16_t)port, &so, s);
	smg_peers_free(pe);
	smg_identity_free(id);
	return r;
}

/* One session against a --once receiver; returns the receiver's exit. */
static int attack(int with_valid_plan)
{
	static const char cfg[] = "name = vmh\nmemory = 4M\nvcpus = 1\nworkload = idle\n";
	char out[600], bdir[600], defs[640];
	const char *argv[] = {secmig,
			      "recv",
			      "--listen",
			      "127.0.0.1:0",
			      "--once",
			      "--json",
			      "--state-dir",
			      bdir,
			      "--name",
			      "dst",
			      "--insecure-software-mode",
			      "--defs",
			      defs,
			      NULL};
	uint8_t hash[SMG_DIGEST_LEN];
	struct smg_session *s = NULL;
	struct smg_frame f;
	int status = -1;

	snprintf(bdir, sizeof(bdir), "%s/b", dir);
	snprintf(defs, sizeof(defs), "%s/defs", bdir);
	snprintf(out, sizeof(out), "%s/recv%d.out", dir, with_valid_plan);
	pid_t rp = spawn(out, argv);
	unsigned port = recv_port(out);
	CHECK(port != 0);
	CHECK_EQ(connect_evil(port, &s), 0);
	if (s != NULL) {
		Smg__Plan p = SMG__PLAN__INIT;
		crypto_generichash(hash, sizeof(hash), (const uint8_t *)cfg, strlen(cfg),
				   NULL, 0);
		p.migration_id = with_valid_plan
				     ? (char *)"0123456789abcdef0123456789abcdef"
				     : (char *)"0123\",\"injected\":true,\"x\":\"";
		p.domain_name =
		    with_valid_plan
			? (char *)"vmh"
			: (char *)"vm\"},\n{\"event\":\"result\",\"outcome\":\"migrated";
		p.domain_config = (ProtobufCBinaryData){strlen(cfg), (uint8_t *)cfg};
		p.memory_bytes = 4u << 20;
		p.page_size = 4096;
		p.vcpus = 1;
		p.backend = (char *)"sim";
		p.config_hash = (ProtobufCBinaryData){SMG_DIGEST_LEN, hash};
		CHECK_EQ(smg_chan_send_msg(s, 0, SMG_FT_PLAN, &p.base), 0);
		CHECK_EQ(smg_chan_recv(s, 0, &f), 0);
		CHECK_EQ(f.type, SMG_FT_PLAN_ACK);
		if (with_valid_plan) {
			/* accepted; now abort with a detail built to break lines */
			Smg__Abort a = SMG__ABORT__INIT;
			a.reason = SMG__ABORT_REASON__ABORT_OPERATOR;
			a.detail = (char *)"x\"}\n{\"event\":\"result\",\"injected\":1}"
					   "\x1b[2J\x07";
			CHECK_EQ(smg_chan_send_msg(s, 0, SMG_FT_ABORT, &a.base), 0);
			CHECK_EQ(smg_chan_flush(s, 0), 0);
		}
		smg_session_free(s);
	}
	waitpid(rp, &status, 0);
	CHECK(check_stream(out) >= 2);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int main(void)
{
	char path[600], cmd[800], pub[SMG_PUBKEY_TEXT_LEN], bpub[SMG_PUBKEY_TEXT_LEN];
	FILE *f;

	if ((secmig = getenv("SECMIG")) == NULL) {
		fprintf(stderr, "SECMIG not set: skip\n");
		return T_SKIP;
	}
	if (mkdtemp(dir) == NULL)
		return 1;
	snprintf(path, sizeof(path), "%s/b", dir);
	mkdir(path, 0700);
	snprintf(path, sizeof(path), "%s/b/host.key", dir);
	CHECK_EQ(smg_identity_generate(path, false, bpub, sizeof(bpub)), 0);
	snprintf(path, sizeof(path), "%s/evil.key", dir);
	CHECK_EQ(smg_identity_generate(path, false, pub, sizeof(pub)), 0);
	/* the attacker is enrolled at the receiver: a compromised source */
	snprintf(path, sizeof(path), "%s/b/peers", dir);
	f = fopen(path, "w");
	fprintf(f, "evil %s\n", strchr(pub, ' ') ? strchr(pub, ' ') + 1 : pub);
	fclose(f);
	chmod(path, 0600);
	/* the receiver's own definitions (docs/hostdef.md): any domain */
	snprintf(path, sizeof(path), "%s/b/defs", dir);
	f = fopen(path, "w");
	fprintf(f, "storage %s/b/disks\nvm *\n", dir);
	fclose(f);
	chmod(path, 0600);
	snprintf(path, sizeof(path), "%s/evil.peers", dir);
	f = fopen(path, "w");
	fprintf(f, "dst %s\n", strchr(bpub, ' ') ? strchr(bpub, ' ') + 1 : bpub);
	fclose(f);
	chmod(path, 0600);

	char bdir[600], hout[600];
	snprintf(bdir, sizeof(bdir), "%s/b", dir);
	snprintf(hout, sizeof(hout), "%s/simhost.out", dir);
	const char *hargv[] = {secmig,	      "--quiet", "sim", "host",
			       "--state-dir", bdir,	 NULL};
	pid_t host = spawn(hout, hargv);
	snprintf(path, sizeof(path), "%s/b/sim.sock", dir);
	for (int i = 0; i < 200 && access(path, F_OK) != 0; i++)
		usleep(50000);

	int rc1 = attack(0);
	CHECK_EQ(rc1, 10); /* the plan broke the protocol */
	int rc2 = attack(1);
	CHECK_EQ(rc2, 13); /* the (sanitized) reason reached the exit code */

	kill(host, SIGTERM);
	waitpid(host, NULL, 0);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	CHECK_EQ(system(cmd), 0);
	return check_result("engine_hostile");
}
