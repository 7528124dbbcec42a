/* For the harnesses that drive a whole side of the protocol: two real
 * sessions, joined channel by channel over AF_UNIX socket pairs, keyed as
 * a finished handshake keys them (transport/session.c's own set-up: the
 * channel keys from one session key, each direction's STREAM salt), so
 * every frame is sealed, sent, read and opened by the real transport. The
 * handshake itself is left out (fuzz_hello/auth/join/hsframe fuzz it):
 * both identities are fixed Ed25519 keys, each side enrolled in the other
 * as "src" (the client, the source) and "dst" (the server). */
#ifndef SMG_FUZZ_SESSION_PAIR_H
#define SMG_FUZZ_SESSION_PAIR_H

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "transport/internal.h"

struct fz_pair {
	struct smg_session *cli, *srv; /* the source's and the destination's */
	struct smg_session_opts co, so;
};

static struct smg_identity fz_id[2]; /* 0: src, 1: dst */
static struct smg_peer fz_peer[2];   /* the same, as enrolled peers */

static inline int fz_pair_init(void)
{
	static const char *const names[2] = {"src", "dst"};
	uint8_t seed[crypto_sign_SEEDBYTES];

	if (smg_sodium_ready() != SMG_OK)
		return -1;
	for (int i = 0; i < 2; i++) {
		memset(seed, 0x5a + i, sizeof(seed));
		crypto_sign_seed_keypair(fz_id[i].pk, fz_id[i].sk, seed);
		snprintf(fz_peer[i].name, sizeof(fz_peer[i].name), "%s", names[i]);
		memcpy(fz_peer[i].pubkey, fz_id[i].pk, SMG_PUBKEY_LEN);
	}
	return 0;
}

/* One side's view of the handshake's result. */
static inline void fz_hs(struct hs *h, bool initiator, const struct smg_session_opts *o,
			 unsigned nchan)
{
	memset(h, 0, sizeof(*h));
	h->initiator = initiator;
	h->opts = o;
	h->peer = &fz_peer[initiator ? 1 : 0];
	memset(h->session_key, 0x11, sizeof(h->session_key));
	memset(h->transcript, 0x22, sizeof(h->transcript));
	snprintf(h->peer_name, sizeof(h->peer_name), "%s", h->peer->name);
	snprintf(h->our_name, sizeof(h->our_name), "%s", fz_peer[initiator ? 0 : 1].name);
	h->channels = nchan;
}

static inline int fz_nonblock(int fd)
{
	return fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

/* Liveness: ms of idle (and of PINGs only) before any wait gives up. */
static inline int fz_pair_open(struct fz_pair *p, unsigned nchan, unsigned live_ms)
{
	struct hs h;

	memset(p, 0, sizeof(*p));
	p->co = (struct smg_session_opts){.identity = &fz_id[0],
					  .force_poll = true,
					  .io_timeout_ms = live_ms,
					  .progress_timeout_ms = live_ms,
					  .session_timeout_ms = 60000};
	p->so = p->co;
	p->so.identity = &fz_id[1];
	fz_hs(&h, true, &p->co, nchan);
	if (smg_session_new(&h, &p->cli) != SMG_OK)
		return -1;
	fz_hs(&h, false, &p->so, nchan);
	if (smg_session_new(&h, &p->srv) != SMG_OK)
		return -1;
	for (unsigned c = 0; c < nchan; c++) {
		uint8_t a[SMG_STREAM_FRAME_LEN], b[SMG_STREAM_FRAME_LEN];
		int fd[2];

		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fd) != 0)
			return -1;
		if (fz_nonblock(fd[0]) != 0 || fz_nonblock(fd[1]) != 0 ||
		    smg_session_attach(p->cli, c, fd[0], &p->co) != SMG_OK ||
		    smg_session_attach(p->srv, c, fd[1], &p->so) != SMG_OK)
			return -1;
		smg_session_stream_offer(p->cli, c, a);
		smg_session_stream_offer(p->srv, c, b);
		if (smg_session_stream_accept(p->srv, c, a, sizeof(a)) != SMG_OK ||
		    smg_session_stream_accept(p->cli, c, b, sizeof(b)) != SMG_OK)
			return -1;
	}
	return 0;
}

/* Side s is done talking: its peer reads the end of every stream (no
 * FINAL: SMG_ERR_CUT), as when a process dies. */
static inline void fz_hang_up(struct smg_session *s, unsigned nchan)
{
	for (unsigned c = 0; c < nchan; c++)
		shutdown(s->ch[c].fd, SHUT_WR);
}

static inline void fz_pair_close(struct fz_pair *p)
{
	smg_session_free(p->srv);
	smg_session_free(p->cli);
	p->srv = p->cli = NULL;
}

#endif
