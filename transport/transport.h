/* Secure channel: identities and enrolled peers, the authenticated session
 * (handshake + N data channels), and encrypted framing on each channel.
 * The wire format is specified byte by byte in docs/protocol.md.
 *
 * Threading: a session's channels are independent; one thread may drive each
 * channel concurrently (that is how encryption uses more than one core).
 * Calls on the same channel must come from one thread at a time. */
#ifndef SMG_TRANSPORT_H
#define SMG_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "proto/proto.h"

/* ---- identities and peers (software-key mode) -------------------------- */
#define SMG_PEER_NAME_MAX 64 /* bytes, [A-Za-z0-9._-], no NUL inside */
#define SMG_PUBKEY_LEN	  32 /* Ed25519 public key */
#define SMG_PEER_OPTS_MAX 1024

struct smg_identity; /* our static Ed25519 key pair, in sodium_malloc'd memory */
struct smg_peers;    /* enrolled peers: name -> public key + options */

/* One enrolled peer (a line of the peers file, docs/peers.md). `options` is
 * the rest of the line after the key, verbatim ("" if none); modes such as
 * the TPM-bound one keep their per-peer data there (e.g. "tpm=BASE64"). */
struct smg_peer {
	char name[SMG_PEER_NAME_MAX + 1];
	uint8_t pubkey[SMG_PUBKEY_LEN];
	char options[SMG_PEER_OPTS_MAX + 1];
	unsigned line; /* line number in the peers file */
};

/* Write a new key pair to PATH (0600) and PATH.pub; refuse to overwrite
 * (SMG_ERR_EXISTS) unless force. Prints nothing; returns the public key in
 * text form ("ed25519 BASE64", fits in SMG_PUBKEY_TEXT_LEN). */
#define SMG_PUBKEY_TEXT_LEN 64
int smg_identity_generate(const char *path, bool force, char *pub_text, size_t pub_len);
/* SMG_ERR_PERM if the file is readable by group/other. */
int smg_identity_load(const char *path, struct smg_identity **out);
void smg_identity_public(const struct smg_identity *id, uint8_t pub[SMG_PUBKEY_LEN]);
/* Ed25519 signature of msg with the identity (audit records, manifests,
 * receipts, tickets: each caller prefixes its own context string). */
#define SMG_SIG_LEN 64
int smg_identity_sign(const struct smg_identity *id, const void *msg, size_t len,
		      uint8_t sig[SMG_SIG_LEN]);
void smg_identity_free(struct smg_identity *id);
/* Errors are logged with the file's line number; SMG_ERR_CONFIG. */
int smg_peers_load(const char *path, struct smg_peers **out);
/* Same format from memory (tests, config embedding). */
int smg_peers_parse(const char *text, size_t len, struct smg_peers **out);
const struct smg_peer *smg_peers_find(const struct smg_peers *peers, const char *name);
void smg_peers_free(struct smg_peers *peers);

/* ---- handshake extension: how the TPM-bound mode slots in -------------- */
/* The transcript hash every signature, quote and confirmation covers. */
#define SMG_TRANSCRIPT_LEN  32	 /* BLAKE2b-256 */
#define SMG_HS_EXT_MAX	    2048 /* our HELLO's extension blob */
#define SMG_HS_EVIDENCE_MAX 8192 /* AUTH evidence blob */
#define SMG_HS_SECRET_MAX   128	 /* extra secret fed into the key schedule */

/* Filled in by a mode (the CLI wires attest/'s TPM-bound mode) and passed
 * in opts->ext. The software handshake always runs (ephemeral X25519,
 * Ed25519 signatures); the extension adds bytes to it. Order of calls on
 * each side:
 *   0. begin          -> per-handshake state (e.g. the ephemeral P-256 key
 *                        hello_ext makes and extra_secret uses); *ctx is
 *                        handed to every later callback of this handshake.
 *   1. hello_ext      -> bytes carried in our HELLO (e.g. an ephemeral P-256
 *                        public key, a TPM key name); in the transcript.
 *   2. extra_secret   -> after both HELLOs, with the peer's enrolled entry
 *                        (already looked up by its claimed name): a secret
 *                        only the genuine peer can also compute (e.g. ECDH
 *                        via Esys_ECDH_ZGen with the TPM-resident static key).
 *                        It is mixed into every key (docs/protocol.md, key
 *                        schedule); a mismatch fails AUTH's key confirmation
 *                        with SMG_ERR_AUTH before any data flows.
 *   3. evidence       -> over the transcript hash at AUTH time (e.g. a
 *                        TPM2_Quote with qualifying data = th); sent in AUTH.
 *   4. verify         -> the peer's evidence over the same th; return
 *                        SMG_ERR_ATTEST (or SMG_ERR_TPM) to reject.
 *   5. end            -> exactly once for every begin that succeeded, when
 *                        the handshake is over: done, failed, timed out, or
 *                        its connection dropped at any stage. The state
 *                        lives exactly as long as its handshake: a peer that
 *                        sends HELLO and vanishes costs one begin/end pair,
 *                        never another handshake's state.
 * Any callback may be NULL (contributes nothing / accepts; without begin,
 * ctx is NULL). Callbacks return SMG_OK or a negative smg_err; `*len` is set
 * on success; `cap` is the room in `out`. Every input from the peer is
 * untrusted bytes. Callbacks of different handshakes may run at once on
 * different threads (the listener's worker); one handshake's never do.
 * `capability` is a bit of SMG_CAP_*: both sides must offer it, or the side
 * that has an ext rejects the other with SMG_ERR_ATTEST (no silent fallback
 * to software mode). */
struct smg_handshake_ext {
	void *self;
	const char *name; /* for logs, e.g. "tpm" */
	uint64_t capability;
	int (*begin)(void *self, void **ctx);
	void (*end)(void *self, void *ctx);
	int (*hello_ext)(void *self, void *ctx, bool initiator, uint8_t *out, size_t cap,
			 size_t *len);
	int (*extra_secret)(void *self, void *ctx, bool initiator,
			    const struct smg_peer *peer, const uint8_t *our_ext,
			    size_t our_len, const uint8_t *peer_ext, size_t peer_len,
			    uint8_t *out, size_t cap, size_t *len);
	int (*evidence)(void *self, void *ctx, bool initiator,
			const uint8_t th[SMG_TRANSCRIPT_LEN], uint8_t *out, size_t cap,
			size_t *len);
	int (*verify)(void *self, void *ctx, bool initiator, const struct smg_peer *peer,
		      const uint8_t th[SMG_TRANSCRIPT_LEN], const uint8_t *ev,
		      size_t len);
};

/* ---- sessions ------------------------------------------------------------ */
#define SMG_CHANNELS_MAX 8
#define SMG_DEFAULT_PORT 4849
/* Defaults (opts value 0). Liveness is the session's (docs/protocol.md,
 * "Liveness"): a blocked wait on any channel fails only when the whole
 * session moved no byte, in either direction on any channel, for the idle
 * limit (SMG_IO_TIMEOUT_MS), or moved nothing but PINGs for the progress
 * limit (SMG_PROGRESS_TIMEOUT_MS), and every one fails once the session is
 * older than SMG_SESSION_TIMEOUT_MS. */
#define SMG_HANDSHAKE_TIMEOUT_MS 10000
#define SMG_IO_TIMEOUT_MS	 60000
#define SMG_PROGRESS_TIMEOUT_MS	 (15 * 60 * 1000)
#define SMG_SESSION_TIMEOUT_MS	 (24 * 3600 * 1000) /* hard ceiling, whatever moves */
#define SMG_PREAUTH_MAX		 64   /* concurrent unauthenticated connections */
#define SMG_PREAUTH_PER_ADDR	 8    /* ... of them from one source address */
#define SMG_HELLO_TIMEOUT_MS	 2000 /* a connection's first frame, complete */
#define SMG_REKEY_BYTES		 (256ull << 20) /* per stream, then a REKEY frame */
#define SMG_REKEY_INTERVAL_MS	 120000		/* ... or after this long */

struct smg_session_opts {
	const struct smg_identity *identity; /* required */
	const struct smg_peers *peers;	     /* required: who we accept */
	const char *name;		     /* our claimed host name; NULL: hostname */
	const char *expect_peer;	     /* client: the server must be this peer */
	const struct smg_handshake_ext *ext; /* NULL: software-key mode */
	unsigned channels;		     /* client: requested; server: max accepted */
	unsigned handshake_timeout_ms;	     /* 0: SMG_HANDSHAKE_TIMEOUT_MS */
	unsigned io_timeout_ms;		     /* idle limit; 0: SMG_IO_TIMEOUT_MS */
	unsigned progress_timeout_ms;	     /* PINGs only; 0: SMG_PROGRESS_TIMEOUT_MS */
	unsigned session_timeout_ms;	     /* hard; 0: SMG_SESSION_TIMEOUT_MS */
	unsigned max_preauth;		     /* server; 0: SMG_PREAUTH_MAX */
	unsigned accept_timeout_ms;	     /* server; 0: wait forever */
	uint64_t rekey_bytes;		     /* 0: SMG_REKEY_BYTES */
	bool force_poll; /* use the poll(2) path even if io_uring works */
	int sock_buf;	 /* >0: SO_SNDBUF/SO_RCVBUF (tests) */
	/* Server: called for every connection the listener refuses or drops
	 * before it is authenticated (suspicious activity: audit/). peer is
	 * the claimed name ("" if none got that far); err the smg_err. */
	void (*on_refused)(void *arg, const char *addr, const char *peer, int err);
	void *refused_arg;
};

struct smg_session;
struct smg_listener;

/* On failure the reason is logged once (which check failed) and returned:
 * SMG_ERR_UNKNOWN_PEER, SMG_ERR_BAD_SIG, SMG_ERR_AUTH, SMG_ERR_VERSION,
 * SMG_ERR_ATTEST, SMG_ERR_TIMEOUT, SMG_ERR_SYS ... (cli/exit.c maps them). */
int smg_session_connect(const char *host, uint16_t port,
			const struct smg_session_opts *opts, struct smg_session **out);
int smg_listener_open(const char *host, uint16_t port, struct smg_listener **out);
uint16_t smg_listener_port(const struct smg_listener *l); /* after port 0 */
int smg_listener_fd(const struct smg_listener *l);
/* Serve connections until one session is authenticated and all of its data
 * channels have joined; return it. Up to opts->max_preauth handshakes run at
 * once, each with its own deadline; failed handshakes are logged (rate
 * limited) and dropped without ending the call. opts->accept_timeout_ms 0:
 * wait forever, else SMG_ERR_TIMEOUT. */
int smg_listener_accept(struct smg_listener *l, const struct smg_session_opts *opts,
			struct smg_session **out);
void smg_listener_close(struct smg_listener *l);

const char *smg_session_peer_name(const struct smg_session *s);
/* The enrolled public key (SMG_PUBKEY_LEN bytes) the peer proved it holds. */
const uint8_t *smg_session_peer_key(const struct smg_session *s);
/* Thread-safe: make receives on every channel, blocked (within a wait
 * slice) or later, return SMG_ERR_CANCELLED; sending still works (for
 * ABORT). Used to cancel a migration from a signal or control thread. */
void smg_session_interrupt(struct smg_session *s);
/* Thread-safe: undo smg_session_interrupt once the caller has said ABORT,
 * so it can drain what the peer still sends until the peer hangs up (under
 * a deadline set with smg_session_set_deadline): a side that closes with
 * unread bytes resets the connection, and the peer may then fail a write
 * before it reads the ABORT. */
void smg_session_resume(struct smg_session *s);
unsigned smg_session_channels(const struct smg_session *s);
uint64_t smg_session_capabilities(const struct smg_session *s); /* agreed */
/* Transcript hash of the handshake (binds manifests, quotes, audit). */
const uint8_t *smg_session_transcript(const struct smg_session *s);
/* Who this session binds (audit/: signed manifests, receipts, records):
 * our claimed name, the enrolled public key the peer proved, the peer's
 * network address, and a signature with our identity (opts->identity,
 * which must outlive the session). */
#define SMG_ADDR_TEXT_MAX 64
const char *smg_session_our_name(const struct smg_session *s);
const char *smg_session_peer_addr(const struct smg_session *s);
void smg_session_our_key(const struct smg_session *s, uint8_t pub[SMG_PUBKEY_LEN]);
int smg_session_sign(const struct smg_session *s, const void *msg, size_t len,
		     uint8_t sig[SMG_SIG_LEN]);
/* true if this session's sockets go through io_uring, false for poll(2). */
bool smg_session_uses_uring(const struct smg_session *s);

/* ---- frames on a channel ----------------------------------------------- */
struct smg_frame {
	uint8_t type;		/* frame type registry in proto/proto.h */
	const uint8_t *payload; /* valid until the next recv on this channel */
	size_t len;
};

/* Control frame: a protobuf-c message packed and sealed. */
int smg_chan_send_msg(struct smg_session *s, unsigned chan, uint8_t type,
		      const ProtobufCMessage *msg);
/* Any frame from a byte buffer (one copy into the frame). */
int smg_chan_send(struct smg_session *s, unsigned chan, uint8_t type, const void *payload,
		  size_t len);
/* Bulk frame, encrypted in place: get a buffer for up to len payload bytes,
 * fill it, then submit the bytes actually used. Blocks while the channel's
 * send window is full (back-pressure). */
int smg_chan_bulk_begin(struct smg_session *s, unsigned chan, size_t len,
			uint8_t **payload);
int smg_chan_bulk_submit(struct smg_session *s, unsigned chan, uint8_t type, size_t len);
/* Give back a begun bulk frame unsent (it turned out to have nothing worth
 * sending); nothing reaches the wire and the stream is unchanged. */
int smg_chan_bulk_abandon(struct smg_session *s, unsigned chan);
/* Wait until every frame queued on chan is on the wire. */
int smg_chan_flush(struct smg_session *s, unsigned chan);
/* Next frame on chan (blocking, under the session's liveness rule).
 * SMG_ERR_EOF after the peer's FINAL frame; SMG_ERR_CUT if the stream ended
 * without one; SMG_ERR_INTERRUPTED (nothing lost, call again) once after
 * smg_chan_interrupt while it had to wait. */
int smg_chan_recv(struct smg_session *s, unsigned chan, struct smg_frame *out);
/* From any thread: make the receive wait on chan (blocked now or the next
 * one) return SMG_ERR_INTERRUPTED, e.g. to tell a control thread that a
 * data channel failed. */
void smg_chan_interrupt(struct smg_session *s, unsigned chan);
/* After a bad frame killed chan's stream: read and drop its bytes until the
 * peer closes it (SMG_ERR_EOF), so a peer still sending never blocks on a
 * channel nobody reads; it learns of the failure on the control channel.
 * Bounded by the session's liveness and deadline; *bytes: what was
 * dropped. SMG_ERR_STATE if the stream is not dead of a bad frame. */
int smg_chan_discard(struct smg_session *s, unsigned chan, uint64_t *bytes);
/* Whether chan holds unread bytes, without waiting (the peer sent more than
 * the protocol allowed once the caller stopped reading). */
bool smg_chan_has_input(struct smg_session *s, unsigned chan);
/* Unpack a control frame's payload with the bounded allocator; the frame's
 * type must be a control type whose registry entry names `desc`. */
int smg_frame_unpack(const struct smg_frame *f, const ProtobufCMessageDescriptor *desc,
		     ProtobufCMessage **out);
void smg_frame_msg_free(ProtobufCMessage *msg);

/* ---- liveness (docs/protocol.md, "Liveness") ------------------------------ */
/* For a wait outside the transport (a condition variable the peer's frames
 * will eventually satisfy) that began at since_ms (smg_now_ms): SMG_OK while
 * the session rule lets it go on, SMG_ERR_TIMEOUT (logged) once it does not. */
int smg_session_alive(struct smg_session *s, uint64_t since_ms);
/* Bracket local work that keeps this side from reading (a backend call
 * that writes pages into a slow hypervisor): while any thread of this side
 * is inside, the session is not silent; silence counts again from when the
 * last one left. Time spent working here is not the peer's silence. The
 * progress limit still applies. */
void smg_session_busy(struct smg_session *s, bool begin);
/* Every wait on every channel ends, SMG_ERR_TIMEOUT, at most ms from now
 * (only ever moves earlier): bounds the drain after an abort. */
void smg_session_set_deadline(struct smg_session *s, unsigned ms);
/* The idle limit in force (ms). */
unsigned smg_session_idle_limit(const struct smg_session *s);

/* Send FINAL on every channel and wait for the peer's; then free. */
int smg_session_close(struct smg_session *s);
/* Drop without FINAL (abort paths); the peer sees SMG_ERR_CUT. */
void smg_session_free(struct smg_session *s);

/* Receiver memory bound per session, bytes (stated in docs/protocol.md). */
size_t smg_session_mem_bound(unsigned channels);
/* Bytes of buffers this session holds now (<= the bound). */
size_t smg_session_mem_used(const struct smg_session *s);

#endif
