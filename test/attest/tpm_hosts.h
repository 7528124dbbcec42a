/* Test fixture: TPM-mode hosts for session tests, each with an identity, a
 * real swtpm with enrolled keys, a policy enrolling its peer, the attest
 * object and the handshake extension wired as the CLI wires it; and a
 * server thread that accepts one session. */
#ifndef SMG_TEST_TPM_HOSTS_H
#define SMG_TEST_TPM_HOSTS_H

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "attest/attest.h"
#include "base/base.h"
#include "cli/host_tpm.h"
#include "tpm_env.h"
#include "transport/transport.h"

#define THOST_MASK ((1u << 0) | (1u << 7) | (1u << 16))

struct thost {
	const char *name;
	struct tenv env;
	struct smg_tpm *tpm;
	struct smg_tpm_keys keys;
	struct smg_policy *pol;
	struct smg_attest *at;
	struct smg_handshake_ext ext;
	struct smg_identity *id;
	char pub[SMG_PUBKEY_TEXT_LEN];
};

/* Identity in dir/NAME.key, swtpm, keys enrolled under THOST_MASK. */
static inline int thost_up(struct thost *h, const char *dir, const char *name)
{
	char path[128];

	h->name = name;
	snprintf(path, sizeof(path), "%s/%s.key", dir, name);
	if (smg_identity_generate(path, false, h->pub, sizeof(h->pub)) != 0 ||
	    smg_identity_load(path, &h->id) != 0 || tenv_start(&h->env, true) != 0 ||
	    smg_tpm_open(h->env.sw.tcti, &h->tpm) != 0 ||
	    smg_tpm_enroll(h->tpm, THOST_MASK, false, &h->keys) != 0)
		return -1;
	return 0;
}

/* self's policy enrolling peer (its keys, or doctored ones), then the
 * attest object and extension anew. */
static inline int thost_policy(struct thost *self, const struct thost *peer,
			       const struct smg_tpm_keys *k)
{
	char text[8192], block[4096], err[256];
	int n;

	smg_attest_free(self->at);
	self->at = NULL;
	smg_policy_free(self->pol);
	self->pol = NULL;
	if (smg_policy_format_peer(peer->name, k ? k : &peer->keys, NULL, 0, block,
				   sizeof(block)) != 0)
		return -1;
	n = snprintf(text, sizeof(text), "host %s\npcrs 0,7,16\n%s  send *\n", self->name,
		     block);
	if (smg_policy_parse(text, (size_t)n, "test", &self->pol, err, sizeof(err)) !=
		0 ||
	    smg_attest_new(self->pol, self->tpm, &self->at) != 0)
		return -1;
	smg_cli_tpm_ext(self->at, &self->ext);
	return 0;
}

/* src and dst up in dir, each enrolled in the other's policy, *peers
 * naming both; -1 with the reason on stderr. */
static inline int thost_pair_up(struct thost *src, struct thost *dst, const char *dir,
				struct smg_peers **peers)
{
	char text[512];

	if (thost_up(src, dir, "src") != 0 || thost_up(dst, dir, "dst") != 0) {
		fprintf(stderr, "cannot bring up the two hosts\n");
		return -1;
	}
	snprintf(text, sizeof(text), "src %s\ndst %s\n", src->pub, dst->pub);
	if (smg_peers_parse(text, strlen(text), peers) != 0 ||
	    thost_policy(src, dst, NULL) != 0 || thost_policy(dst, src, NULL) != 0) {
		fprintf(stderr, "cannot enrol the two hosts\n");
		return -1;
	}
	return 0;
}

static inline void thost_down(struct thost *h)
{
	smg_attest_free(h->at);
	smg_policy_free(h->pol);
	smg_tpm_close(h->tpm);
	smg_identity_free(h->id);
	tenv_stop(&h->env);
}

static inline struct smg_session_opts thost_opts(const struct thost *h,
						 const struct smg_peers *peers,
						 const struct smg_handshake_ext *ext)
{
	struct smg_session_opts o;

	memset(&o, 0, sizeof(o));
	o.identity = h->id;
	o.peers = peers;
	o.name = h->name;
	o.ext = ext;
	o.channels = 1;
	o.handshake_timeout_ms = 5000;
	o.io_timeout_ms = 5000;
	o.accept_timeout_ms = 700; /* a refused client leaves the server waiting */
	return o;
}

/* smg_listener_accept once on a thread; rc its result. */
struct tserver1 {
	struct smg_listener *l;
	struct smg_session_opts opts;
	int rc;
	pthread_t th;
};

static inline void *tserver1_main(void *arg)
{
	struct tserver1 *sv = arg;
	struct smg_session *s = NULL;

	sv->rc = smg_listener_accept(sv->l, &sv->opts, &s);
	if (sv->rc == 0)
		sv->rc = smg_session_close(s);
	return NULL;
}

#endif
