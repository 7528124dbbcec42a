/* Shared fixtures for the transport tests: throwaway identities, a peers
 * table, and a server thread that accepts one session on a loopback port. */
#ifndef SMG_TEST_TUTIL_H
#define SMG_TEST_TUTIL_H

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "transport/internal.h"

struct tkeys {
	char dir[64];
	struct smg_identity *src, *dst, *evil;
	char src_pub[SMG_PUBKEY_TEXT_LEN], dst_pub[SMG_PUBKEY_TEXT_LEN],
	    evil_pub[SMG_PUBKEY_TEXT_LEN];
	struct smg_peers *peers; /* "src" and "dst" enrolled */
};

static inline int tkeys_make_one(struct tkeys *k, const char *name, char *pub,
				 struct smg_identity **id)
{
	char path[128];

	snprintf(path, sizeof(path), "%s/%s.key", k->dir, name);
	if (smg_identity_generate(path, false, pub, SMG_PUBKEY_TEXT_LEN) != 0)
		return -1;
	return smg_identity_load(path, id);
}

static inline int tkeys_init(struct tkeys *k)
{
	char text[512];

	memset(k, 0, sizeof(*k));
	snprintf(k->dir, sizeof(k->dir), "/tmp/smgtest.XXXXXX");
	if (mkdtemp(k->dir) == NULL)
		return -1;
	if (tkeys_make_one(k, "src", k->src_pub, &k->src) != 0 ||
	    tkeys_make_one(k, "dst", k->dst_pub, &k->dst) != 0 ||
	    tkeys_make_one(k, "evil", k->evil_pub, &k->evil) != 0)
		return -1;
	snprintf(text, sizeof(text), "# test peers\nsrc %s\ndst %s opt=1\n", k->src_pub,
		 k->dst_pub);
	return smg_peers_parse(text, strlen(text), &k->peers);
}

static inline void tkeys_fini(struct tkeys *k)
{
	char cmd[128];

	smg_identity_free(k->src);
	smg_identity_free(k->dst);
	smg_identity_free(k->evil);
	smg_peers_free(k->peers);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", k->dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cleanup of %s failed\n", k->dir);
}

static inline struct smg_session_opts topts(const struct smg_identity *id,
					    const struct smg_peers *peers,
					    const char *name, unsigned channels)
{
	struct smg_session_opts o;

	memset(&o, 0, sizeof(o));
	o.identity = id;
	o.peers = peers;
	o.name = name;
	o.channels = channels;
	o.handshake_timeout_ms = 5000;
	o.io_timeout_ms = 10000;
	o.accept_timeout_ms = 10000;
	return o;
}

/* A server thread running smg_listener_accept once. */
struct tserver {
	struct smg_listener *l;
	struct smg_session_opts opts;
	struct smg_session *s;
	int rc;
	pthread_t th;
	void (*body)(struct tserver *); /* optional: runs on the session */
	void *arg;
};

static inline void *tserver_main(void *a)
{
	struct tserver *t = a;

	t->rc = smg_listener_accept(t->l, &t->opts, &t->s);
	if (t->rc == 0 && t->body != NULL)
		t->body(t);
	return NULL;
}

/* body: close the accepted session cleanly (waits for the client's FINAL). */
static inline void tserver_close_body(struct tserver *t)
{
	t->rc = smg_session_close(t->s);
	t->s = NULL;
}

static inline int tserver_start(struct tserver *t)
{
	t->s = NULL;
	t->rc = -1000;
	return pthread_create(&t->th, NULL, tserver_main, t);
}

static inline int tserver_join(struct tserver *t)
{
	pthread_join(t->th, NULL);
	return t->rc;
}

#endif
