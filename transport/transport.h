/* Secure channel: identities and enrolled peers, the authenticated session
 * (handshake + N data channels), and encrypted framing on each channel.
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

/* ---- identities and peers (software-key mode) -------------------------- */
#define SMG_PEER_NAME_MAX 64

struct smg_identity; /* our static Ed25519 key pair, in sodium_malloc'd memory */
struct smg_peers;    /* enrolled peers: name -> public key (+ later: TPM keys) */

/* Write a new key pair to PATH (0600) and PATH.pub; refuse to overwrite
 * unless force. Prints nothing; returns the public key in text form. */
int smg_identity_generate(const char *path, bool force, char *pub_text, size_t pub_len);
int smg_identity_load(const char *path, struct smg_identity **out);
void smg_identity_free(struct smg_identity *id);
int smg_peers_load(const char *path, struct smg_peers **out);
void smg_peers_free(struct smg_peers *peers);

/* ---- sessions ------------------------------------------------------------ */
#define SMG_CHANNELS_MAX 8
#define SMG_DEFAULT_PORT 4849

struct smg_attest; /* TPM-bound mode (attest/); NULL for software-key mode */

struct smg_session_opts {
	const struct smg_identity *identity;
	const struct smg_peers *peers;
	struct smg_attest *attest;     /* optional: extra secret inputs + evidence */
	unsigned channels;	       /* client: requested; server: max accepted */
	unsigned handshake_timeout_ms; /* 0: default */
	unsigned io_timeout_ms;	       /* 0: default; a stalled peer past this fails */
	bool force_poll;	       /* use the poll(2) path even if io_uring works */
	int sock_buf;		       /* >0: SO_SNDBUF/SO_RCVBUF (tests) */
};

struct smg_session;
struct smg_listener;

int smg_session_connect(const char *host, uint16_t port,
			const struct smg_session_opts *opts, struct smg_session **out);
int smg_listener_open(const char *host, uint16_t port, struct smg_listener **out);
uint16_t smg_listener_port(const struct smg_listener *l); /* after port 0 */
int smg_listener_fd(const struct smg_listener *l);
/* Accept one connection and run the server handshake (deadline, pre-auth
 * caps), then accept its data channels. */
int smg_listener_accept(struct smg_listener *l, const struct smg_session_opts *opts,
			struct smg_session **out);
void smg_listener_close(struct smg_listener *l);

const char *smg_session_peer_name(const struct smg_session *s);
unsigned smg_session_channels(const struct smg_session *s);
/* Transcript hash of the handshake (binds manifests, quotes, audit). */
const uint8_t *smg_session_transcript(const struct smg_session *s);

/* ---- frames on a channel ----------------------------------------------- */
/* Largest payload of one frame (type byte excluded); the protocol's limit. */
#define SMG_FRAME_PAYLOAD_MAX (1024 * 1024)

struct smg_frame {
	uint8_t type;		/* frame type registry in proto/proto.h */
	const uint8_t *payload; /* valid until the next recv on this channel */
	size_t len;
};

/* Control frame: a protobuf-c message packed and sealed. */
int smg_chan_send_msg(struct smg_session *s, unsigned chan, uint8_t type,
		      const ProtobufCMessage *msg);
/* Bulk frame, encrypted in place: get a buffer for up to len payload bytes,
 * fill it, then submit the bytes actually used. */
int smg_chan_bulk_begin(struct smg_session *s, unsigned chan, size_t len,
			uint8_t **payload);
int smg_chan_bulk_submit(struct smg_session *s, unsigned chan, uint8_t type, size_t len);
/* Wait until every frame queued on chan is on the wire. */
int smg_chan_flush(struct smg_session *s, unsigned chan);
/* Next frame on chan (blocking, io_timeout_ms). SMG_ERR_EOF after the peer's
 * FINAL frame; SMG_ERR_CUT if the stream ended without one. */
int smg_chan_recv(struct smg_session *s, unsigned chan, struct smg_frame *out);
/* Unpack a control frame's payload with the bounded allocator. */
int smg_frame_unpack(const struct smg_frame *f, const ProtobufCMessageDescriptor *desc,
		     ProtobufCMessage **out);
void smg_frame_msg_free(ProtobufCMessage *msg);

/* Send FINAL on every channel and wait for the peer's; then free. */
int smg_session_close(struct smg_session *s);
/* Drop without FINAL (abort paths); the peer sees SMG_ERR_CUT. */
void smg_session_free(struct smg_session *s);

#endif
