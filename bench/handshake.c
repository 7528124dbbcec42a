/* bench_handshake: session handshake latency, software-key mode vs TPM-bound
 * mode (two swtpm instances, one per host, enrolled as in production), over
 * loopback, median of N. Last line: JSON with handshake_ms_soft and
 * handshake_ms_tpm. Usage: bench_handshake [N] (default 20). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "attest/attest.h"
#include "base/base.h"
#include "cli/host_tpm.h"
#include "test/attest/tpm_env.h"
#include "transport/transport.h"

#define RUNS_MAX      1000
#define TARGET_TPM_MS 150.0

struct host {
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

static char dir[64];
static struct smg_peers *peers;

static int host_up(struct host *h, const char *name)
{
	char path[128];

	h->name = name;
	snprintf(path, sizeof(path), "%s/%s.key", dir, name);
	if (smg_identity_generate(path, false, h->pub, sizeof(h->pub)) != 0 ||
	    smg_identity_load(path, &h->id) != 0 || tenv_start(&h->env, true) != 0 ||
	    smg_tpm_open(h->env.sw.tcti, &h->tpm) != 0 ||
	    smg_tpm_enroll(h->tpm, SMG_PCR_MASK_DEFAULT, false, &h->keys) != 0)
		return -1;
	return 0;
}

static int enrol(struct host *self, const struct host *peer)
{
	char text[8192], block[4096], err[256];
	int n;

	if (smg_policy_format_peer(peer->name, &peer->keys, NULL, 0, block,
				   sizeof(block)) != 0)
		return -1;
	n = snprintf(text, sizeof(text), "host %s\n%s  send *\n", self->name, block);
	if (smg_policy_parse(text, (size_t)n, "bench", &self->pol, err, sizeof(err)) !=
		0 ||
	    smg_attest_new(self->pol, self->tpm, &self->at) != 0)
		return -1;
	smg_cli_tpm_ext(self->at, &self->ext);
	return 0;
}

static struct smg_session_opts opts_for(const struct host *h, bool tpm)
{
	struct smg_session_opts o;

	memset(&o, 0, sizeof(o));
	o.identity = h->id;
	o.peers = peers;
	o.name = h->name;
	o.ext = tpm ? &h->ext : NULL;
	o.channels = 1;
	o.accept_timeout_ms = 20000;
	return o;
}

struct server {
	struct smg_listener *l;
	struct smg_session_opts opts;
	int runs, rc;
};

static void *server_main(void *arg)
{
	struct server *sv = arg;

	for (int i = 0; i < sv->runs && sv->rc == 0; i++) {
		struct smg_session *s = NULL;
		if ((sv->rc = smg_listener_accept(sv->l, &sv->opts, &s)) == 0)
			sv->rc = smg_session_close(s);
	}
	return NULL;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Median client-side handshake time (connect() until the session is up). */
static int measure(struct host *src, struct host *dst, bool tpm, int runs, double *median)
{
	struct server sv = {.opts = opts_for(dst, tpm), .runs = runs};
	struct smg_session_opts co = opts_for(src, tpm);
	double ms[RUNS_MAX];
	pthread_t th;
	int rc = 0;

	co.expect_peer = dst->name;
	if (smg_listener_open("127.0.0.1", 0, &sv.l) != 0)
		return -1;
	pthread_create(&th, NULL, server_main, &sv);
	for (int i = 0; i < runs; i++) {
		struct smg_session *s = NULL;
		uint64_t t0 = smg_now_ns();

		if ((rc = smg_session_connect("127.0.0.1", smg_listener_port(sv.l), &co,
					      &s)) != 0)
			break;
		ms[i] = (double)(smg_now_ns() - t0) / 1e6;
		if ((rc = smg_session_close(s)) != 0)
			break;
	}
	pthread_join(th, NULL);
	smg_listener_close(sv.l);
	if (rc != 0 || sv.rc != 0) {
		fprintf(stderr, "bench: %s handshake failed: %s / %s\n",
			tpm ? "tpm" : "soft", smg_strerror(rc), smg_strerror(sv.rc));
		return -1;
	}
	qsort(ms, (size_t)runs, sizeof(ms[0]), cmp_double);
	*median = runs % 2 ? ms[runs / 2] : (ms[runs / 2 - 1] + ms[runs / 2]) / 2;
	return 0;
}

int main(int argc, char **argv)
{
	struct host src = {0}, dst = {0};
	double soft = 0, tpm = 0;
	int runs = argc > 1 ? atoi(argv[1]) : 20, rc = 1;
	char text[512], cmd[128];

	if (runs < 1 || runs > RUNS_MAX) {
		fprintf(stderr, "usage: bench_handshake [RUNS 1..%d]\n", RUNS_MAX);
		return 2;
	}
	smg_log_set_level(SMG_LOG_WARN); /* one line per session otherwise */
	snprintf(dir, sizeof(dir), "/tmp/smg-bench-XXXXXX");
	if (sodium_init() < 0 || mkdtemp(dir) == NULL)
		return 1;
	if (host_up(&src, "src") != 0 || host_up(&dst, "dst") != 0) {
		fprintf(stderr,
			"bench: cannot start two swtpm hosts (is swtpm installed?)\n");
		goto out;
	}
	snprintf(text, sizeof(text), "src %s\ndst %s\n", src.pub, dst.pub);
	if (smg_peers_parse(text, strlen(text), &peers) != 0 || enrol(&src, &dst) != 0 ||
	    enrol(&dst, &src) != 0)
		goto out;
	if (measure(&src, &dst, false, runs, &soft) != 0 ||
	    measure(&src, &dst, true, runs, &tpm) != 0)
		goto out;
	printf("handshake software-key mode: median %.2f ms over %d runs\n", soft, runs);
	printf("handshake TPM-bound mode:    median %.2f ms over %d runs (swtpm, PCRs "
	       "0-3,7)\n",
	       tpm, runs);
	printf("TPM / software: %.2fx; TPM vs target %.0f ms: %.2f of the budget\n",
	       soft > 0 ? tpm / soft : 0, TARGET_TPM_MS, tpm / TARGET_TPM_MS);
	printf("{\"handshake_ms_soft\": %.3f, \"handshake_ms_tpm\": %.3f, "
	       "\"tpm_over_soft\": %.3f, "
	       "\"target_ms_tpm\": %.0f, \"runs\": %d}\n",
	       soft, tpm, soft > 0 ? tpm / soft : 0, TARGET_TPM_MS, runs);
	rc = 0;
out:
	smg_peers_free(peers);
	for (struct host *h = &src; h != NULL; h = h == &src ? &dst : NULL) {
		smg_attest_free(h->at);
		smg_policy_free(h->pol);
		smg_tpm_close(h->tpm);
		smg_identity_free(h->id);
		tenv_stop(&h->env);
	}
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cleanup failed\n");
	return rc;
}
