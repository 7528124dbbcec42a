/* transport/ internals shared by its .c files and the tests/fuzzers. */
#ifndef SMG_TRANSPORT_INTERNAL_H
#define SMG_TRANSPORT_INTERNAL_H

#include <liburing.h>
#include <sodium.h>
#include <stdatomic.h>

#include "base/base.h"
#include "proto/proto.h"
#include "transport/transport.h"

/* ---- the frame AEAD (aead.c): XChaCha20-Poly1305 ------------------------ */
#define AEAD_KEY_LEN   32
#define AEAD_SALT_LEN  24 /* the STREAM body: the sender's random nonce prefix */
#define AEAD_NONCE_LEN 24 /* XChaCha20's */
#define AEAD_MAC_LEN   16
#define SS_KEY	       AEAD_KEY_LEN  /* a channel direction's key */
#define SS_HEADER      AEAD_SALT_LEN /* STREAM body */

/* One direction of one channel. Plain values: copying one copies the
 * stream's position (the tests replay frames that way). */
struct aead_key {
	uint8_t key[AEAD_KEY_LEN];    /* this epoch's key */
	uint8_t subkey[AEAD_KEY_LEN]; /* HChaCha20(key, salt[0..16]) */
	uint8_t salt[AEAD_SALT_LEN];
	uint64_t ctr;	/* frames sealed / opened so far, across epochs */
	uint64_t epoch; /* rekeys so far */
};

void smg_aead_init(struct aead_key *k, const uint8_t key[AEAD_KEY_LEN],
		   const uint8_t salt[AEAD_SALT_LEN]);
/* Next epoch: key = crypto_kdf(key, id epoch, "smgrekey"); ctr carries on. */
void smg_aead_rekey(struct aead_key *k);
/* The XChaCha20 nonce of frame ctr: salt[0..16] || salt[16..24] ^ le64(ctr). */
void smg_aead_nonce(const struct aead_key *k, uint64_t ctr,
		    uint8_t nonce[AEAD_NONCE_LEN]);
/* In place over p[0..len), nonce of frame k->ctr, then k->ctr++. Open
 * advances only when the MAC holds (SMG_ERR_DECRYPT otherwise). */
int smg_aead_seal(struct aead_key *k, uint8_t *p, size_t len, const uint8_t *ad,
		  size_t adlen, uint8_t mac[AEAD_MAC_LEN]);
int smg_aead_open(struct aead_key *k, uint8_t *p, size_t len, const uint8_t *ad,
		  size_t adlen, const uint8_t mac[AEAD_MAC_LEN]);
/* Free this thread's cipher context now (it holds the last subkey used). */
void smg_aead_thread_wipe(void);

/* Wire layout of an encrypted frame:
 *   [u32 BE n][flags (encrypted)][type (encrypted)][payload (encrypted)][MAC]
 * with n = 2 + payload length + AEAD_MAC_LEN. */
#define FRAME_LEN_BYTES	  4
#define FRAME_HDR_BYTES	  2 /* flags, type */
#define FRAME_PAYLOAD_OFF (FRAME_LEN_BYTES + FRAME_HDR_BYTES)
#define FRAME_MSG_MIN	  (FRAME_HDR_BYTES + AEAD_MAC_LEN)
#define FRAME_MSG_MAX	  (FRAME_MSG_MIN + SMG_FRAME_PAYLOAD_MAX)
#define FRAME_WIRE_MAX	  (FRAME_LEN_BYTES + FRAME_MSG_MAX)
#define FRAME_OVERHEAD	  (FRAME_LEN_BYTES + FRAME_MSG_MIN)
/* The flags byte (the values secretstream's tags had). */
#define FRAME_FLAG_MESSAGE 0x00
#define FRAME_FLAG_REKEY   0x02 /* both sides step to the next epoch after it */
#define FRAME_FLAG_FINAL   0x03 /* the stream's last frame (CLOSE) */

/* Per channel: send window and receive buffer (the memory bound). */
#define TX_SLOTS     8
#define RX_BUF_BYTES (2 * FRAME_WIRE_MAX)
#define URING_DEPTH  8

/* libsodium must be initialised before any use; idempotent, thread-safe. */
static inline int smg_sodium_ready(void)
{
	return sodium_init() < 0 ? SMG_ERR_CRYPTO : SMG_OK;
}

/* ---- identities -------------------------------------------------------- */
struct smg_identity {
	uint8_t sk[crypto_sign_SECRETKEYBYTES];
	uint8_t pk[crypto_sign_PUBLICKEYBYTES];
};

struct smg_peers {
	struct smg_peer *v;
	size_t n;
};

bool smg_peer_name_ok(const char *s, size_t n);

/* ---- handshake --------------------------------------------------------- */
#define HS_NONCE_LEN 32
#define HS_KEY_LEN   32
#define HS_WIRE_MAX  (4 + SMG_HS_FRAME_MAX)

enum hs_state {
	HS_START = 0,
	HS_SENT_HELLO,	/* client: waiting for server HELLO + AUTH */
	HS_WAIT_AUTH,	/* server: sent HELLO + AUTH, waiting for client AUTH */
	HS_AUTH_SIGNED, /* server, mode extension: client's signature verified,
			 * its extension work (TPM) still to do */
	HS_WAIT_FINISH, /* client, mode extension: sent AUTH, waiting for the
			 * server's FINISH (its TPM-bound confirmation) */
	HS_DONE,
	HS_FAILED,
};

struct hs {
	bool initiator;
	enum hs_state state;
	const struct smg_session_opts *opts;
	const struct smg_peer *peer;
	crypto_generichash_state th; /* running transcript */
	uint8_t eph_sk[crypto_scalarmult_SCALARBYTES];
	uint8_t eph_pk[crypto_scalarmult_BYTES];
	uint8_t nonce[HS_NONCE_LEN];
	uint8_t hs_key[HS_KEY_LEN];
	uint8_t session_key[HS_KEY_LEN];
	uint8_t transcript[SMG_TRANSCRIPT_LEN]; /* final */
	uint8_t our_ext[SMG_HS_EXT_MAX];
	size_t our_ext_len;
	uint32_t version;
	uint64_t caps;
	unsigned channels;
	char peer_name[SMG_PEER_NAME_MAX + 1];
	char our_name[SMG_PEER_NAME_MAX + 1]; /* as sent in our HELLO */
	int reject; /* Reject reason to send when failing (server) */
	/* Mode extension (TPM): its secret and evidence come in a second
	 * stage, after the peer's software signature verified, so an
	 * unauthenticated peer never costs a TPM operation. */
	bool deferred;
	uint8_t peer_ext[SMG_HS_EXT_MAX];
	size_t peer_ext_len;
	/* The extension's per-handshake state (opts->ext->begin), ended by
	 * finish or smg_hs_wipe, whichever comes first. */
	void *ext_ctx;
	bool ext_begun;
};

/* Frame of the plaintext handshake: [u32 BE n][type][body], n = 1 + body. */
int smg_hs_frame_put(uint8_t *buf, size_t cap, uint8_t type, const ProtobufCMessage *msg,
		     size_t *len);
/* Parse one complete handshake frame in buf[0..len): SMG_ERR_TRUNCATED if
 * more bytes are needed (*need set), SMG_ERR_TOO_LONG over the cap. */
int smg_hs_frame_get(const uint8_t *buf, size_t len, uint8_t *type, const uint8_t **body,
		     size_t *body_len, size_t *used);

void smg_hs_init(struct hs *hs, bool initiator, const struct smg_session_opts *opts);
/* Ends the extension's per-handshake state if still live; every hs that
 * went through smg_hs_init must be wiped, on every path. */
void smg_hs_wipe(struct hs *hs);
/* Client: write HELLO into out. */
int smg_hs_client_hello(struct hs *hs, uint8_t *out, size_t cap, size_t *len);
/* Server: consume the client HELLO frame, write HELLO + AUTH. */
int smg_hs_server_on_hello(struct hs *hs, const uint8_t *frame, size_t flen, uint8_t *out,
			   size_t cap, size_t *len);
/* Client: consume server HELLO and AUTH frames, write our AUTH. */
int smg_hs_client_on_server(struct hs *hs, const uint8_t *hello, size_t hlen,
			    const uint8_t *auth, size_t alen, uint8_t *out, size_t cap,
			    size_t *len);
/* Server, mode extension: the cheap half of the client's AUTH (frame
 * checks and its Ed25519 signature over the transcript); then
 * smg_hs_server_finish does the extension's (TPM) work and writes the
 * FINISH frame. Without an extension smg_hs_server_finish writes nothing. */
int smg_hs_server_auth_sig(struct hs *hs, const uint8_t *frame, size_t flen);
int smg_hs_server_finish(struct hs *hs, const uint8_t *frame, size_t flen, uint8_t *out,
			 size_t cap, size_t *len);
/* Client, mode extension: the server's FINISH after our AUTH. */
int smg_hs_client_on_finish(struct hs *hs, const uint8_t *frame, size_t flen);
/* Server: consume the client AUTH frame (both halves at once). */
int smg_hs_server_on_auth(struct hs *hs, const uint8_t *frame, size_t flen);
/* After HS_DONE. dir 0: client->server, 1: server->client. */
void smg_hs_chan_key(const uint8_t session_key[HS_KEY_LEN], unsigned chan, unsigned dir,
		     uint8_t key[SS_KEY]);
void smg_hs_session_id(const uint8_t session_key[HS_KEY_LEN], uint8_t id[32]);
void smg_hs_join_mac(const uint8_t session_key[HS_KEY_LEN], const uint8_t id[32],
		     uint32_t index, uint8_t mac[crypto_auth_BYTES]);
int smg_hs_err_from_reject(int reason);
int smg_hs_reject_from_err(int err);

/* Pure entry points for the fuzzers: parse one handshake message body. */
int smg_hs_parse_hello(const uint8_t *p, size_t len);
int smg_hs_parse_auth(const uint8_t *p, size_t len);
int smg_hs_parse_join(const uint8_t *p, size_t len);

/* ---- framing ----------------------------------------------------------- */
struct frame_rx {
	struct aead_key k;
	bool final; /* FINAL seen */
};

struct frame_tx {
	struct aead_key k;
	uint64_t since_rekey;
	uint64_t rekey_bytes;
	uint64_t rekey_at_ms; /* 0: no time budget (tests, fuzz) */
	bool final;
};

/* Seal in place: buf holds room for the length, flags and type before
 * buf[FRAME_PAYLOAD_OFF] = payload, and AEAD_MAC_LEN after it. Writes
 * the whole wire frame at buf; returns its length in *wire. */
int smg_frame_seal(struct frame_tx *tx, uint8_t *buf, uint8_t type, size_t len,
		   bool final, size_t *wire);
/* Given the bytes buffered so far: SMG_ERR_TRUNCATED with *need = bytes
 * the whole frame takes, or a length error before anything else. */
int smg_frame_check_len(const uint8_t *buf, size_t have, size_t *need);
/* Open one complete wire frame in place. */
int smg_frame_open(struct frame_rx *rx, uint8_t *buf, size_t wire, struct smg_frame *out);
/* Fuzz entry: a stream of wire frames under a fixed key. */
int smg_frame_decode_stream(const uint8_t *p, size_t len);
void smg_frame_fuzz_key(uint8_t key[SS_KEY], uint8_t header[SS_HEADER]);
/* Key a sender and a receiver of one direction (session.c, tests). */
void smg_frame_tx_key(struct frame_tx *tx, const uint8_t key[SS_KEY],
		      const uint8_t salt[SS_HEADER]);
void smg_frame_rx_key(struct frame_rx *rx, const uint8_t key[SS_KEY],
		      const uint8_t salt[SS_HEADER]);

/* ---- session liveness (live.c; docs/protocol.md, "Liveness") ----------- */
#define WAIT_SLICE_MS 100 /* a blocked wait re-reads the session's rule this often */

struct live {
	_Atomic uint64_t moved_ms;    /* a byte in, or accepted out, on any channel */
	_Atomic uint64_t progress_ms; /* a whole frame, not a PING, in or out */
	_Atomic uint64_t cutoff_ms;   /* every wait ends by then; 0: never */
	_Atomic unsigned busy;	      /* threads of this side working locally */
	_Atomic uint64_t local_ms;    /* the last time one of them finished */
	unsigned idle_ms, progress_limit_ms;
	const char *peer; /* for logs */
};

void smg_live_init(struct live *l, const struct smg_session_opts *o, const char *peer);
/* Bytes moved; progress: they completed a frame that is not a PING. */
void smg_live_moved(struct live *l, bool progress);
enum live_verdict { LIVE_OK = 0, LIVE_IDLE, LIVE_PINGS, LIVE_CUTOFF };
/* LIVE_OK while a wait that began at since may block *left_ms more (at
 * most WAIT_SLICE_MS, then ask again); else the rule that ends it. */
enum live_verdict smg_live_check(struct live *l, uint64_t since, int *left_ms);
/* Log (rate limited) why `what` ended; returns SMG_ERR_TIMEOUT. */
int smg_live_fail(struct live *l, enum live_verdict v, const char *what);
bool smg_live_cut_off(struct live *l);

/* ---- channel I/O ------------------------------------------------------- */
struct tx_slot {
	uint8_t *buf; /* FRAME_WIRE_MAX bytes, lazily allocated */
	size_t len;   /* wire bytes queued */
	size_t sent;
	bool ping; /* a PING: keeps the session alive, is not progress */
};

struct chan {
	int fd;
	unsigned index;
	struct frame_tx tx;
	struct frame_rx rx;
	/* send window: slots[head .. head+queued) are queued in order */
	struct tx_slot slots[TX_SLOTS];
	unsigned head, queued;
	bool begun; /* bulk_begin handed out slot (head+queued) */
	/* receive buffer: bytes [rstart, rend) are unconsumed */
	uint8_t *rbuf;
	size_t rstart, rend;
	bool rx_eof; /* TCP FIN seen */
	bool eof_returned;
	int dead;    /* sticky error */
	int tx_dead; /* sticky send error: what the peer sent is still read */
	/* io_uring state; ring_ok false means the poll(2) path */
	bool ring_ok;
	struct io_uring ring;
	bool send_inflight, recv_inflight;
	struct iovec iov[TX_SLOTS];
	struct msghdr msg;
	struct live *live;	     /* the session's */
	uint64_t rx_since, tx_since; /* when the current receive / send wait began */
	_Atomic bool intr;	     /* smg_chan_interrupt: end the receive wait */
	size_t mem;		     /* bytes of buffers allocated for this channel */
};

int smg_chan_io_init(struct chan *c, int fd, bool force_poll, struct live *live);
void smg_chan_io_fini(struct chan *c);
/* Push queued slots to the socket; with wait, block until at least one
 * slot is free (or everything is sent when all). */
int smg_chan_io_send(struct chan *c, bool wait, bool all);
/* Read at least one more byte into rbuf (blocking, the wait that began at
 * c->rx_since). 0 bytes: rx_eof. */
int smg_chan_io_recv(struct chan *c);
/* Unread bytes in rbuf or the socket, without waiting. */
bool smg_chan_io_pending(struct chan *c);

struct smg_session {
	char peer_name[SMG_PEER_NAME_MAX + 1];
	char our_name[SMG_PEER_NAME_MAX + 1];
	char peer_addr[SMG_ADDR_TEXT_MAX];
	uint8_t peer_key[SMG_PUBKEY_LEN];    /* the enrolled key that answered */
	const struct smg_identity *identity; /* borrowed from the opts */
	_Atomic bool interrupted;	     /* smg_session_interrupt */
	unsigned nchan;
	uint64_t caps;
	uint8_t transcript[SMG_TRANSCRIPT_LEN];
	uint8_t *session_key; /* sodium_malloc'd HS_KEY_LEN */
	uint8_t session_id[32];
	bool initiator;
	struct live live;
	struct chan ch[SMG_CHANNELS_MAX];
};

/* Shared session set-up once the handshake is done (session.c). */
int smg_session_new(const struct hs *hs, struct smg_session **out);
int smg_session_attach(struct smg_session *s, unsigned idx, int fd,
		       const struct smg_session_opts *opts);
/* Exchange STREAM headers on channel idx (blocking, deadline). */
int smg_session_stream_start(struct smg_session *s, unsigned idx, uint64_t deadline_ms);
/* The same in two halves, for the listener's non-blocking loop: our
 * STREAM frame (push side keyed), then the peer's (pull side keyed). */
#define SMG_STREAM_FRAME_LEN (4 + 1 + SS_HEADER)
void smg_session_stream_offer(struct smg_session *s, unsigned idx,
			      uint8_t frame[SMG_STREAM_FRAME_LEN]);
int smg_session_stream_accept(struct smg_session *s, unsigned idx, const uint8_t *in,
			      size_t len);

/* Blocking helpers for plaintext handshake frames with a deadline. */
int smg_sock_write_all(int fd, const void *buf, size_t len, uint64_t deadline_ms);
int smg_sock_read_hs(int fd, uint8_t *buf, size_t cap, uint64_t deadline_ms, size_t *len);
int smg_sock_tune(int fd, int sock_buf);
void smg_send_reject(int fd, int reason, const char *detail);

#endif
