/* The handshake as pure message functions (no I/O): HELLO both ways, AUTH
 * both ways, the BLAKE2b transcript over every handshake byte and the key
 * schedule (docs/protocol.md "Handshake", "Key schedule"). The I/O around it
 * is in session.c (client) and listener.c (server). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "secmig.pb-c.h"
#include "transport/internal.h"

#define SIG_CONTEXT "secmig auth v1"
#define KDF_CONFIRM "smgconf_"
#define KDF_CHAN    "smgchan_"
#define KDF_SESSION "smgsess_"
#define KDF_ID_SID  1
#define KDF_ID_JOIN 2

int smg_hs_frame_put(uint8_t *buf, size_t cap, uint8_t type, const ProtobufCMessage *msg,
		     size_t *len)
{
	size_t n = protobuf_c_message_get_packed_size(msg);

	if (n + 1 > SMG_HS_FRAME_MAX || n + 5 > cap)
		return SMG_ERR_TOO_LONG;
	smg_store_be32(buf, (uint32_t)(n + 1));
	buf[4] = type;
	protobuf_c_message_pack(msg, buf + 5);
	*len = n + 5;
	return SMG_OK;
}

int smg_hs_frame_get(const uint8_t *buf, size_t len, uint8_t *type, const uint8_t **body,
		     size_t *body_len, size_t *used)
{
	uint32_t n;

	if (len < 4)
		return SMG_ERR_TRUNCATED;
	n = smg_load_be32(buf);
	/* The length is the peer's claim: cap it before waiting for (or
	 * buffering) that many bytes. */
	if (n > SMG_HS_FRAME_MAX)
		return SMG_ERR_TOO_LONG;
	if (n < 1)
		return SMG_ERR_PROTO;
	if (len < 4 + (size_t)n)
		return SMG_ERR_TRUNCATED;
	*type = buf[4];
	*body = buf + 5;
	*body_len = n - 1;
	*used = 4 + (size_t)n;
	return SMG_OK;
}

void smg_hs_init(struct hs *hs, bool initiator, const struct smg_session_opts *opts)
{
	memset(hs, 0, sizeof(*hs));
	hs->initiator = initiator;
	hs->opts = opts;
	crypto_generichash_init(&hs->th, NULL, 0, SMG_TRANSCRIPT_LEN);
	crypto_box_keypair(hs->eph_pk, hs->eph_sk);
	randombytes_buf(hs->nonce, sizeof(hs->nonce));
}

/* The extension's state for this handshake: begun before our HELLO, ended
 * once, when the handshake is done or dropped. */
static int ext_begin(struct hs *hs)
{
	const struct smg_handshake_ext *ext = hs->opts->ext;
	int r;

	if (ext == NULL || hs->ext_begun)
		return SMG_OK;
	if (ext->begin != NULL && (r = ext->begin(ext->self, &hs->ext_ctx)) != 0) {
		smg_err("handshake: %s extension could not start: %s", ext->name,
			smg_strerror(r));
		return r;
	}
	hs->ext_begun = true;
	return SMG_OK;
}

static void ext_end(struct hs *hs)
{
	const struct smg_handshake_ext *ext = hs->opts != NULL ? hs->opts->ext : NULL;

	if (hs->ext_begun && ext != NULL && ext->end != NULL)
		ext->end(ext->self, hs->ext_ctx);
	hs->ext_begun = false;
	hs->ext_ctx = NULL;
}

void smg_hs_wipe(struct hs *hs)
{
	ext_end(hs);
	sodium_memzero(hs, sizeof(*hs));
}

static void th_peek(const struct hs *hs, uint8_t out[SMG_TRANSCRIPT_LEN])
{
	crypto_generichash_state copy = hs->th;

	crypto_generichash_final(&copy, out, SMG_TRANSCRIPT_LEN);
	sodium_memzero(&copy, sizeof(copy));
}

static void th_add(struct hs *hs, const uint8_t *frame, size_t len)
{
	crypto_generichash_update(&hs->th, frame, len);
}

static const char *our_name(const struct smg_session_opts *o, char *buf, size_t cap)
{
	if (o->name != NULL)
		return o->name;
	if (gethostname(buf, cap) != 0)
		return "localhost";
	buf[cap - 1] = '\0';
	return buf;
}

static uint64_t our_caps(const struct hs *hs)
{
	uint64_t caps = SMG_CAP_CHANNELS;

	if (hs->opts->ext != NULL)
		caps |= hs->opts->ext->capability;
	return caps;
}

static int build_hello(struct hs *hs, uint32_t vmin, uint32_t vmax, uint64_t caps,
		       unsigned channels, uint8_t *out, size_t cap, size_t *len)
{
	const struct smg_handshake_ext *ext = hs->opts->ext;
	Smg__Hello h = SMG__HELLO__INIT;
	char host[SMG_PEER_NAME_MAX + 1];
	int r;

	if ((r = ext_begin(hs)) != 0)
		return r;
	if (ext != NULL && ext->hello_ext != NULL &&
	    (r = ext->hello_ext(ext->self, hs->ext_ctx, hs->initiator, hs->our_ext,
				sizeof(hs->our_ext), &hs->our_ext_len)) != 0) {
		smg_err("handshake: %s extension failed to build HELLO: %s", ext->name,
			smg_strerror(r));
		return r;
	}
	h.version_min = vmin;
	h.version_max = vmax;
	h.capabilities = caps;
	h.channels = channels;
	h.ephemeral.data = hs->eph_pk;
	h.ephemeral.len = sizeof(hs->eph_pk);
	h.nonce.data = hs->nonce;
	h.nonce.len = sizeof(hs->nonce);
	h.name = (char *)our_name(hs->opts, host, sizeof(host));
	if (!smg_peer_name_ok(h.name, strlen(h.name))) {
		smg_err("handshake: our host name '%s' is not a valid peer name", h.name);
		return SMG_ERR_CONFIG;
	}
	snprintf(hs->our_name, sizeof(hs->our_name), "%s", h.name);
	h.ext.data = hs->our_ext;
	h.ext.len = hs->our_ext_len;
	h.initiator = hs->initiator;
	if ((r = smg_hs_frame_put(out, cap, SMG_FT_HELLO, &h.base, len)) != 0)
		return r;
	th_add(hs, out, *len);
	return SMG_OK;
}

int smg_hs_client_hello(struct hs *hs, uint8_t *out, size_t cap, size_t *len)
{
	unsigned ch = hs->opts->channels == 0 ? 1 : hs->opts->channels;
	int r;

	if (ch > SMG_CHANNELS_MAX)
		return SMG_ERR_INVAL;
	r = build_hello(hs, SMG_PROTO_VERSION_MIN, SMG_PROTO_VERSION, our_caps(hs), ch,
			out, cap, len);
	if (r == 0)
		hs->state = HS_SENT_HELLO;
	return r;
}

/* Unpack and check the invariant fields of a HELLO (pure: fuzzed). */
static int parse_hello(const uint8_t *p, size_t len, Smg__Hello **out)
{
	ProtobufCMessage *m;
	Smg__Hello *h;
	int r;

	*out = NULL;
	if ((r = smg_proto_unpack(SMG_FT_HELLO, p, len, &m)) != 0)
		return r;
	h = (Smg__Hello *)m;
	/* Lengths are the peer's claims: a short key or nonce would read
	 * past the field. */
	if (h->ephemeral.len != crypto_scalarmult_BYTES || h->nonce.len != HS_NONCE_LEN ||
	    h->ext.len > SMG_HS_EXT_MAX || h->name == NULL ||
	    !smg_peer_name_ok(h->name, strlen(h->name)) || h->channels == 0 ||
	    h->channels > SMG_CHANNELS_MAX || h->version_min > h->version_max) {
		smg_proto_free(m);
		return SMG_ERR_PROTO;
	}
	*out = h;
	return SMG_OK;
}

/* finish: a server FINISH frame (no signature) instead of an AUTH. */
static int parse_auth_as(const uint8_t *p, size_t len, bool finish, Smg__Auth **out)
{
	ProtobufCMessage *m;
	Smg__Auth *a;
	int r;

	*out = NULL;
	if ((r = smg_proto_unpack(SMG_FT_AUTH, p, len, &m)) != 0)
		return r;
	a = (Smg__Auth *)m;
	if (a->signature.len != (finish ? 0 : crypto_sign_BYTES) ||
	    a->confirm.len != crypto_auth_BYTES ||
	    a->evidence.len > SMG_HS_EVIDENCE_MAX) {
		smg_proto_free(m);
		return SMG_ERR_PROTO;
	}
	*out = a;
	return SMG_OK;
}

static int parse_auth(const uint8_t *p, size_t len, Smg__Auth **out)
{
	return parse_auth_as(p, len, false, out);
}

int smg_hs_parse_hello(const uint8_t *p, size_t len)
{
	Smg__Hello *h;
	int r = parse_hello(p, len, &h);

	smg_proto_free(h != NULL ? &h->base : NULL);
	return r;
}

int smg_hs_parse_auth(const uint8_t *p, size_t len)
{
	Smg__Auth *a;
	int r = parse_auth(p, len, &a);

	smg_proto_free(a != NULL ? &a->base : NULL);
	return r;
}

int smg_hs_parse_join(const uint8_t *p, size_t len)
{
	ProtobufCMessage *m;
	Smg__Join *j;
	int r;

	if ((r = smg_proto_unpack(SMG_FT_JOIN, p, len, &m)) != 0)
		return r;
	j = (Smg__Join *)m;
	if (j->session_id.len != 32 || j->mac.len != crypto_auth_BYTES || j->index == 0 ||
	    j->index >= SMG_CHANNELS_MAX)
		r = SMG_ERR_PROTO;
	smg_proto_free(m);
	return r;
}

/* After both HELLOs: DH, the mode's extra secret, and the handshake key,
 * keyed by the transcript so far. */
static int derive_hs_key(struct hs *hs, const Smg__Hello *peer)
{
	const struct smg_handshake_ext *ext = hs->opts->ext;
	uint8_t dh[crypto_scalarmult_BYTES], th[SMG_TRANSCRIPT_LEN];
	uint8_t extra[SMG_HS_SECRET_MAX], elen[2];
	crypto_generichash_state st;
	size_t extra_len = 0;
	int r;

	/* An all-zero result means a low-order point from the peer. */
	if (crypto_scalarmult(dh, hs->eph_sk, peer->ephemeral.data) != 0)
		return SMG_ERR_PROTO;
	/* With a mode extension its secret joins later (stage2_key), once
	 * the peer's signature is known good: see docs/protocol.md. */
	hs->deferred = ext != NULL;
	if (peer->ext.len > sizeof(hs->peer_ext))
		return SMG_ERR_PROTO;
	if (peer->ext.len > 0)
		memcpy(hs->peer_ext, peer->ext.data, peer->ext.len);
	hs->peer_ext_len = peer->ext.len;
	if (!hs->deferred && ext != NULL && ext->extra_secret != NULL) {
		r = ext->extra_secret(ext->self, hs->ext_ctx, hs->initiator, hs->peer,
				      hs->our_ext, hs->our_ext_len, peer->ext.data,
				      peer->ext.len, extra, sizeof(extra), &extra_len);
		if (r != 0 || extra_len > sizeof(extra)) {
			smg_err("handshake: %s extension could not derive its secret "
				"with peer '%s': %s",
				ext->name, hs->peer_name, smg_strerror(r));
			sodium_memzero(dh, sizeof(dh));
			return r != 0 ? r : SMG_ERR_INTERNAL;
		}
	}
	th_peek(hs, th);
	smg_store_be16(elen, (uint16_t)extra_len);
	crypto_generichash_init(&st, th, sizeof(th), HS_KEY_LEN);
	crypto_generichash_update(&st, (const uint8_t *)"secmig-v1 hs", 12);
	crypto_generichash_update(&st, dh, sizeof(dh));
	crypto_generichash_update(&st, elen, 2);
	crypto_generichash_update(&st, extra, extra_len);
	crypto_generichash_final(&st, hs->hs_key, HS_KEY_LEN);
	sodium_memzero(dh, sizeof(dh));
	sodium_memzero(extra, sizeof(extra));
	sodium_memzero(&st, sizeof(st));
	return SMG_OK;
}

/* Second stage of a mode extension: hs_key' = BLAKE2b(key = hs_key,
 * "secmig-v1 ext" || be16 len(extra) || extra). The extension's secret
 * (TPM ECDH) enters every key from here on. */
static int stage2_key(struct hs *hs)
{
	const struct smg_handshake_ext *ext = hs->opts->ext;
	uint8_t extra[SMG_HS_SECRET_MAX], elen[2], k[HS_KEY_LEN];
	crypto_generichash_state st;
	size_t extra_len = 0;
	int r = SMG_OK;

	if (ext != NULL && ext->extra_secret != NULL) {
		r = ext->extra_secret(ext->self, hs->ext_ctx, hs->initiator, hs->peer,
				      hs->our_ext, hs->our_ext_len, hs->peer_ext,
				      hs->peer_ext_len, extra, sizeof(extra), &extra_len);
		if (r != 0 || extra_len > sizeof(extra)) {
			smg_err("handshake: %s extension could not derive its secret "
				"with peer '%s': %s",
				ext->name, hs->peer_name, smg_strerror(r));
			sodium_memzero(extra, sizeof(extra));
			return r != 0 ? r : SMG_ERR_INTERNAL;
		}
	}
	smg_store_be16(elen, (uint16_t)extra_len);
	crypto_generichash_init(&st, hs->hs_key, HS_KEY_LEN, HS_KEY_LEN);
	crypto_generichash_update(&st, (const uint8_t *)"secmig-v1 ext", 13);
	crypto_generichash_update(&st, elen, 2);
	crypto_generichash_update(&st, extra, extra_len);
	crypto_generichash_final(&st, k, HS_KEY_LEN);
	memcpy(hs->hs_key, k, HS_KEY_LEN);
	sodium_memzero(k, sizeof(k));
	sodium_memzero(extra, sizeof(extra));
	sodium_memzero(&st, sizeof(st));
	return r;
}

static void sig_msg(uint8_t *m, bool server_role, const uint8_t th[SMG_TRANSCRIPT_LEN])
{
	memcpy(m, SIG_CONTEXT, sizeof(SIG_CONTEXT)); /* with its NUL */
	m[sizeof(SIG_CONTEXT)] = server_role ? 'S' : 'C';
	memcpy(m + sizeof(SIG_CONTEXT) + 1, th, SMG_TRANSCRIPT_LEN);
}
#define SIG_MSG_LEN (sizeof(SIG_CONTEXT) + 1 + SMG_TRANSCRIPT_LEN)

static void confirm_key(const struct hs *hs, bool server_role,
			uint8_t k[crypto_auth_KEYBYTES])
{
	crypto_kdf_derive_from_key(k, crypto_auth_KEYBYTES, server_role ? 1 : 2,
				   KDF_CONFIRM, hs->hs_key);
}

static int build_auth(struct hs *hs, uint8_t *out, size_t cap, size_t *len)
{
	/* The server's first AUTH in a deferred mode carries no evidence:
	 * its quote comes in FINISH, after the client's signature verified. */
	bool with_evidence = !hs->deferred || hs->initiator;
	const struct smg_handshake_ext *ext = hs->opts->ext;
	Smg__Auth a = SMG__AUTH__INIT;
	uint8_t th[SMG_TRANSCRIPT_LEN], m[SIG_MSG_LEN], sig[crypto_sign_BYTES];
	uint8_t mac[crypto_auth_BYTES], k[crypto_auth_KEYBYTES];
	uint8_t *ev = NULL;
	size_t ev_len = 0;
	int r;

	th_peek(hs, th);
	sig_msg(m, !hs->initiator, th);
	crypto_sign_detached(sig, NULL, m, sizeof(m), hs->opts->identity->sk);
	confirm_key(hs, !hs->initiator, k);
	crypto_auth(mac, th, sizeof(th), k);
	sodium_memzero(k, sizeof(k));
	if (with_evidence && ext != NULL && ext->evidence != NULL) {
		if ((ev = malloc(SMG_HS_EVIDENCE_MAX)) == NULL)
			return SMG_ERR_NOMEM;
		r = ext->evidence(ext->self, hs->ext_ctx, hs->initiator, th, ev,
				  SMG_HS_EVIDENCE_MAX, &ev_len);
		if (r != 0 || ev_len > SMG_HS_EVIDENCE_MAX) {
			smg_err("handshake: %s extension could not produce evidence: %s",
				ext->name, smg_strerror(r));
			free(ev);
			return r != 0 ? r : SMG_ERR_INTERNAL;
		}
	}
	a.signature.data = sig;
	a.signature.len = sizeof(sig);
	a.confirm.data = mac;
	a.confirm.len = sizeof(mac);
	a.evidence.data = ev;
	a.evidence.len = ev_len;
	r = smg_hs_frame_put(out, cap, SMG_FT_AUTH, &a.base, len);
	free(ev);
	if (r == 0)
		th_add(hs, out, *len);
	return r;
}

/* The peer's Ed25519 signature over the transcript as it stood before
 * its AUTH: software only, the cheapest proof of who it is. */
static int check_sig(struct hs *hs, const Smg__Auth *a)
{
	uint8_t th[SMG_TRANSCRIPT_LEN], m[SIG_MSG_LEN];

	th_peek(hs, th);
	sig_msg(m, hs->initiator, th);
	if (crypto_sign_verify_detached(a->signature.data, m, sizeof(m),
					hs->peer->pubkey) != 0) {
		smg_peer_log(
		    SMG_LOG_ERROR,
		    "handshake: peer '%s' failed the signature check (wrong key for "
		    "that name, a man in the middle, or a tampered/downgraded handshake)",
		    hs->peer_name);
		hs->reject = SMG__REJECT_REASON__REJECT_BAD_SIG;
		return SMG_ERR_BAD_SIG;
	}
	return SMG_OK;
}

/* Key confirmation (role key id: 1 server, 2 client, 3 server FINISH)
 * and the extension's evidence, over th. */
static int check_confirm(struct hs *hs, uint64_t key_id, const uint8_t *th,
			 const ProtobufCBinaryData *confirm,
			 const ProtobufCBinaryData *evidence, bool verify_evidence)
{
	const struct smg_handshake_ext *ext = hs->opts->ext;
	uint8_t k[crypto_auth_KEYBYTES];
	int r;

	if (confirm->len != crypto_auth_BYTES)
		return SMG_ERR_PROTO;
	crypto_kdf_derive_from_key(k, sizeof(k), key_id, KDF_CONFIRM, hs->hs_key);
	r = crypto_auth_verify(confirm->data, th, SMG_TRANSCRIPT_LEN, k);
	sodium_memzero(k, sizeof(k));
	if (r != 0) {
		smg_err("handshake: peer '%s' failed key confirmation (it derived other "
			"keys: with a TPM-bound mode, a wrong TPM key or PCR state)",
			hs->peer_name);
		hs->reject = SMG__REJECT_REASON__REJECT_AUTH;
		return SMG_ERR_AUTH;
	}
	if (!verify_evidence) {
		/* deferred: the evidence comes later; none may ride here */
		return evidence->len == 0 ? SMG_OK : SMG_ERR_PROTO;
	}
	if (ext != NULL && ext->verify != NULL &&
	    (r = ext->verify(ext->self, hs->ext_ctx, hs->initiator, hs->peer, th,
			     evidence->data, evidence->len)) != 0) {
		smg_err("handshake: peer '%s': %s evidence rejected: %s", hs->peer_name,
			ext->name, smg_strerror(r));
		hs->reject = SMG__REJECT_REASON__REJECT_ATTEST;
		return r;
	}
	return SMG_OK;
}

/* Check the peer's AUTH over the transcript as it stood before it. */
static int check_auth(struct hs *hs, const Smg__Auth *a)
{
	uint8_t th[SMG_TRANSCRIPT_LEN];
	bool peer_is_server = hs->initiator;
	int r;

	if ((r = check_sig(hs, a)) != 0)
		return r;
	th_peek(hs, th);
	/* In a deferred mode the server's first AUTH has no evidence. */
	return check_confirm(hs, peer_is_server ? 1 : 2, th, &a->confirm, &a->evidence,
			     !(hs->deferred && peer_is_server));
}

static int find_peer(struct hs *hs, const char *name)
{
	snprintf(hs->peer_name, sizeof(hs->peer_name), "%s", name);
	if ((hs->peer = smg_peers_find(hs->opts->peers, name)) == NULL) {
		smg_peer_log(
		    SMG_LOG_ERROR,
		    "handshake: peer claims to be '%s', which is not enrolled in "
		    "the peers file",
		    name);
		hs->reject = SMG__REJECT_REASON__REJECT_UNKNOWN_PEER;
		return SMG_ERR_UNKNOWN_PEER;
	}
	return SMG_OK;
}

/* Both sides must run the same extension mode: no silent fallback. */
static int check_ext_mode(struct hs *hs, uint64_t peer_caps)
{
	const struct smg_handshake_ext *ext = hs->opts->ext;

	if (ext != NULL && (peer_caps & ext->capability) != ext->capability) {
		smg_err("handshake: peer '%s' does not offer %s mode, which we require",
			hs->peer_name, ext->name);
		hs->reject = SMG__REJECT_REASON__REJECT_ATTEST_REQUIRED;
		return SMG_ERR_ATTEST;
	}
	return SMG_OK;
}

int smg_hs_server_on_hello(struct hs *hs, const uint8_t *frame, size_t flen, uint8_t *out,
			   size_t cap, size_t *len)
{
	Smg__Hello *h = NULL;
	size_t l1 = 0, l2 = 0, used, blen;
	const uint8_t *body;
	uint8_t type;
	unsigned maxch;
	int r;

	hs->reject = SMG__REJECT_REASON__REJECT_MALFORMED;
	if ((r = smg_hs_frame_get(frame, flen, &type, &body, &blen, &used)) != 0)
		goto out;
	if (type != SMG_FT_HELLO || used != flen || hs->state != HS_START) {
		r = SMG_ERR_STATE;
		goto out;
	}
	if ((r = parse_hello(body, blen, &h)) != 0)
		goto out;
	if (!h->initiator) {
		r = SMG_ERR_PROTO; /* a reflected server HELLO */
		goto out;
	}
	th_add(hs, frame, flen);
	if ((r = find_peer(hs, h->name)) != 0)
		goto out;
	if (h->version_max < SMG_PROTO_VERSION_MIN ||
	    h->version_min > SMG_PROTO_VERSION) {
		smg_peer_log(SMG_LOG_ERROR,
			     "handshake: peer '%s' speaks versions %u..%u, we %u..%u",
			     hs->peer_name, h->version_min, h->version_max,
			     SMG_PROTO_VERSION_MIN, SMG_PROTO_VERSION);
		hs->reject = SMG__REJECT_REASON__REJECT_VERSION;
		r = SMG_ERR_VERSION;
		goto out;
	}
	if ((r = check_ext_mode(hs, h->capabilities)) != 0)
		goto out;
	hs->version =
	    h->version_max < SMG_PROTO_VERSION ? h->version_max : SMG_PROTO_VERSION;
	hs->caps = our_caps(hs) & h->capabilities;
	maxch = hs->opts->channels == 0 ? 1 : hs->opts->channels;
	hs->channels = h->channels < maxch ? h->channels : maxch;
	if (!(hs->caps & SMG_CAP_CHANNELS))
		hs->channels = 1;
	/* Server HELLO: version_min = chosen, version_max = our highest. The
	 * handshake key is keyed by the transcript of both HELLOs. */
	if ((r = build_hello(hs, hs->version, SMG_PROTO_VERSION, our_caps(hs),
			     hs->channels, out, cap, &l1)) != 0 ||
	    (r = derive_hs_key(hs, h)) != 0 ||
	    (r = build_auth(hs, out + l1, cap - l1, &l2)) != 0)
		goto out;
	*len = l1 + l2;
	hs->state = HS_WAIT_AUTH;
out:
	smg_proto_free(h != NULL ? &h->base : NULL);
	if (r != 0)
		hs->state = HS_FAILED;
	return r;
}

static void finish(struct hs *hs)
{
	crypto_generichash_state st;

	crypto_generichash_final(&hs->th, hs->transcript, SMG_TRANSCRIPT_LEN);
	crypto_generichash_init(&st, hs->transcript, SMG_TRANSCRIPT_LEN, HS_KEY_LEN);
	crypto_generichash_update(&st, (const uint8_t *)"secmig-v1 session", 17);
	crypto_generichash_update(&st, hs->hs_key, HS_KEY_LEN);
	crypto_generichash_final(&st, hs->session_key, HS_KEY_LEN);
	sodium_memzero(&st, sizeof(st));
	sodium_memzero(hs->eph_sk, sizeof(hs->eph_sk));
	sodium_memzero(hs->hs_key, sizeof(hs->hs_key));
	ext_end(hs);
	hs->state = HS_DONE;
}

/* The server's selection, checked against what we offered. */
static int check_selection(struct hs *hs, const Smg__Hello *h)
{
	uint32_t expect;

	if (h->initiator)
		return SMG_ERR_PROTO; /* our own HELLO reflected back */
	if (h->version_min < SMG_PROTO_VERSION_MIN ||
	    h->version_min > SMG_PROTO_VERSION) {
		smg_err("handshake: server '%s' chose version %u, we speak %u..%u",
			h->name, h->version_min, SMG_PROTO_VERSION_MIN,
			SMG_PROTO_VERSION);
		return SMG_ERR_VERSION;
	}
	expect = h->version_max < SMG_PROTO_VERSION ? h->version_max : SMG_PROTO_VERSION;
	if (h->version_min != expect) {
		smg_err("handshake: server '%s' chose version %u though both speak %u: "
			"downgrade",
			h->name, h->version_min, expect);
		return SMG_ERR_DOWNGRADE;
	}
	hs->version = h->version_min;
	hs->caps = our_caps(hs) & h->capabilities;
	if (h->channels > (hs->opts->channels == 0 ? 1 : hs->opts->channels) ||
	    (!(hs->caps & SMG_CAP_CHANNELS) && h->channels != 1))
		return SMG_ERR_PROTO;
	hs->channels = h->channels;
	return SMG_OK;
}

int smg_hs_client_on_server(struct hs *hs, const uint8_t *hello, size_t hlen,
			    const uint8_t *auth, size_t alen, uint8_t *out, size_t cap,
			    size_t *len)
{
	Smg__Hello *h = NULL;
	Smg__Auth *a = NULL;
	const uint8_t *body;
	size_t blen, used;
	uint8_t type;
	int r;

	if (hs->state != HS_SENT_HELLO)
		return SMG_ERR_STATE;
	if ((r = smg_hs_frame_get(hello, hlen, &type, &body, &blen, &used)) != 0)
		goto out;
	if (type != SMG_FT_HELLO || used != hlen) {
		r = SMG_ERR_STATE;
		goto out;
	}
	if ((r = parse_hello(body, blen, &h)) != 0)
		goto out;
	th_add(hs, hello, hlen);
	/* The pinned name first: "it is not the host you named" says more
	 * than "it is not enrolled" when both hold. */
	if (hs->opts->expect_peer != NULL &&
	    strcmp(hs->opts->expect_peer, h->name) != 0) {
		smg_err("handshake: server identifies as '%s', expected '%s'", h->name,
			hs->opts->expect_peer);
		r = SMG_ERR_UNKNOWN_PEER;
		goto out;
	}
	if ((r = find_peer(hs, h->name)) != 0)
		goto out;
	if ((r = check_selection(hs, h)) != 0 ||
	    (r = check_ext_mode(hs, h->capabilities)) != 0 ||
	    (r = derive_hs_key(hs, h)) != 0)
		goto out;
	if ((r = smg_hs_frame_get(auth, alen, &type, &body, &blen, &used)) != 0)
		goto out;
	if (type != SMG_FT_AUTH || used != alen) {
		r = SMG_ERR_STATE;
		goto out;
	}
	if ((r = parse_auth(body, blen, &a)) != 0 || (r = check_auth(hs, a)) != 0)
		goto out;
	th_add(hs, auth, alen);
	/* The server proved its identity in software: now our TPM work. */
	if (hs->deferred && (r = stage2_key(hs)) != 0)
		goto out;
	if ((r = build_auth(hs, out, cap, len)) != 0)
		goto out;
	if (hs->deferred)
		hs->state = HS_WAIT_FINISH;
	else
		finish(hs);
out:
	smg_proto_free(h != NULL ? &h->base : NULL);
	smg_proto_free(a != NULL ? &a->base : NULL);
	if (r != 0)
		hs->state = HS_FAILED;
	return r;
}

static int auth_frame(const uint8_t *frame, size_t flen, bool finish, Smg__Auth **a)
{
	const uint8_t *body;
	size_t blen, used;
	uint8_t type;
	int r;

	*a = NULL;
	if ((r = smg_hs_frame_get(frame, flen, &type, &body, &blen, &used)) != 0)
		return r;
	if (type != SMG_FT_AUTH || used != flen)
		return SMG_ERR_STATE;
	return parse_auth_as(body, blen, finish, a);
}

int smg_hs_server_auth_sig(struct hs *hs, const uint8_t *frame, size_t flen)
{
	Smg__Auth *a = NULL;
	int r;

	hs->reject = SMG__REJECT_REASON__REJECT_MALFORMED;
	if (hs->state != HS_WAIT_AUTH)
		return SMG_ERR_STATE;
	if ((r = auth_frame(frame, flen, false, &a)) == 0 && (r = check_sig(hs, a)) == 0)
		hs->state = HS_AUTH_SIGNED;
	smg_proto_free(a != NULL ? &a->base : NULL);
	if (r != 0)
		hs->state = HS_FAILED;
	return r;
}

/* FINISH: an AUTH frame with no signature, the server's confirmation under
 * the stage-2 key (id 3) and its evidence, both over th = TH(AUTH_c). */
static int build_finish(struct hs *hs, const uint8_t *th, uint8_t *out, size_t cap,
			size_t *len)
{
	const struct smg_handshake_ext *ext = hs->opts->ext;
	Smg__Auth a = SMG__AUTH__INIT;
	uint8_t mac[crypto_auth_BYTES], k[crypto_auth_KEYBYTES], *ev = NULL;
	size_t ev_len = 0;
	int r = SMG_OK;

	crypto_kdf_derive_from_key(k, sizeof(k), 3, KDF_CONFIRM, hs->hs_key);
	crypto_auth(mac, th, SMG_TRANSCRIPT_LEN, k);
	sodium_memzero(k, sizeof(k));
	if (ext->evidence != NULL) {
		if ((ev = malloc(SMG_HS_EVIDENCE_MAX)) == NULL)
			return SMG_ERR_NOMEM;
		r = ext->evidence(ext->self, hs->ext_ctx, false, th, ev,
				  SMG_HS_EVIDENCE_MAX, &ev_len);
		if (r != 0 || ev_len > SMG_HS_EVIDENCE_MAX) {
			smg_err("handshake: %s extension could not produce evidence: %s",
				ext->name, smg_strerror(r));
			free(ev);
			return r != 0 ? r : SMG_ERR_INTERNAL;
		}
	}
	a.confirm = (ProtobufCBinaryData){sizeof(mac), mac};
	a.evidence = (ProtobufCBinaryData){ev_len, ev};
	r = smg_hs_frame_put(out, cap, SMG_FT_AUTH, &a.base, len);
	free(ev);
	return r;
}

int smg_hs_server_finish(struct hs *hs, const uint8_t *frame, size_t flen, uint8_t *out,
			 size_t cap, size_t *len)
{
	uint8_t th[SMG_TRANSCRIPT_LEN];
	Smg__Auth *a = NULL;
	int r;

	*len = 0;
	if (hs->state != HS_AUTH_SIGNED)
		return SMG_ERR_STATE;
	if ((r = auth_frame(frame, flen, false, &a)) != 0)
		goto out;
	th_peek(hs, th);
	/* The client is who it says (its signature verified): only now the
	 * extension's work -- with a TPM, ECDH_ZGen and, below, a quote. */
	if (hs->deferred && (r = stage2_key(hs)) != 0)
		goto out;
	if ((r = check_confirm(hs, 2, th, &a->confirm, &a->evidence, true)) != 0)
		goto out;
	th_add(hs, frame, flen);
	if (hs->deferred) {
		th_peek(hs, th);
		if ((r = build_finish(hs, th, out, cap, len)) != 0)
			goto out;
	}
	finish(hs);
out:
	smg_proto_free(a != NULL ? &a->base : NULL);
	if (r != 0)
		hs->state = HS_FAILED;
	return r;
}

int smg_hs_server_on_auth(struct hs *hs, const uint8_t *frame, size_t flen)
{
	uint8_t out[64];
	size_t len;
	int r;

	if (hs->opts->ext != NULL)
		return SMG_ERR_STATE; /* two halves and a FINISH frame */
	if ((r = smg_hs_server_auth_sig(hs, frame, flen)) != 0)
		return r;
	return smg_hs_server_finish(hs, frame, flen, out, sizeof(out), &len);
}

int smg_hs_client_on_finish(struct hs *hs, const uint8_t *frame, size_t flen)
{
	uint8_t th[SMG_TRANSCRIPT_LEN];
	Smg__Auth *a = NULL;
	int r;

	if (hs->state != HS_WAIT_FINISH)
		return SMG_ERR_STATE;
	if ((r = auth_frame(frame, flen, true, &a)) != 0)
		goto out;
	th_peek(hs, th);
	if ((r = check_confirm(hs, 3, th, &a->confirm, &a->evidence, true)) != 0)
		goto out;
	finish(hs);
out:
	smg_proto_free(a != NULL ? &a->base : NULL);
	if (r != 0)
		hs->state = HS_FAILED;
	return r;
}

void smg_hs_chan_key(const uint8_t session_key[HS_KEY_LEN], unsigned chan, unsigned dir,
		     uint8_t key[SS_KEY])
{
	crypto_kdf_derive_from_key(key, SS_KEY, 16 + 2 * (uint64_t)chan + dir, KDF_CHAN,
				   session_key);
}

void smg_hs_session_id(const uint8_t session_key[HS_KEY_LEN], uint8_t id[32])
{
	crypto_kdf_derive_from_key(id, 32, KDF_ID_SID, KDF_SESSION, session_key);
}

void smg_hs_join_mac(const uint8_t session_key[HS_KEY_LEN], const uint8_t id[32],
		     uint32_t index, uint8_t mac[crypto_auth_BYTES])
{
	uint8_t k[crypto_auth_KEYBYTES], m[36];

	crypto_kdf_derive_from_key(k, sizeof(k), KDF_ID_JOIN, KDF_SESSION, session_key);
	memcpy(m, id, 32);
	smg_store_be32(m + 32, index);
	crypto_auth(mac, m, sizeof(m), k);
	sodium_memzero(k, sizeof(k));
}

int smg_hs_err_from_reject(int reason)
{
	switch (reason) {
	case SMG__REJECT_REASON__REJECT_UNKNOWN_PEER:
		return SMG_ERR_UNKNOWN_PEER;
	case SMG__REJECT_REASON__REJECT_VERSION:
		return SMG_ERR_VERSION;
	case SMG__REJECT_REASON__REJECT_BUSY:
		return SMG_ERR_BUSY;
	case SMG__REJECT_REASON__REJECT_ATTEST_REQUIRED:
	case SMG__REJECT_REASON__REJECT_ATTEST:
		return SMG_ERR_ATTEST;
	case SMG__REJECT_REASON__REJECT_BAD_SIG:
		return SMG_ERR_BAD_SIG;
	case SMG__REJECT_REASON__REJECT_AUTH:
		return SMG_ERR_AUTH;
	case SMG__REJECT_REASON__REJECT_TIMEOUT:
		return SMG_ERR_TIMEOUT;
	default:
		return SMG_ERR_PROTO;
	}
}

int smg_hs_reject_from_err(int err)
{
	switch (err) {
	case SMG_ERR_UNKNOWN_PEER:
		return SMG__REJECT_REASON__REJECT_UNKNOWN_PEER;
	case SMG_ERR_VERSION:
		return SMG__REJECT_REASON__REJECT_VERSION;
	case SMG_ERR_BUSY:
		return SMG__REJECT_REASON__REJECT_BUSY;
	case SMG_ERR_BAD_SIG:
		return SMG__REJECT_REASON__REJECT_BAD_SIG;
	case SMG_ERR_AUTH:
		return SMG__REJECT_REASON__REJECT_AUTH;
	case SMG_ERR_ATTEST:
	case SMG_ERR_TPM:
		return SMG__REJECT_REASON__REJECT_ATTEST;
	case SMG_ERR_TIMEOUT:
		return SMG__REJECT_REASON__REJECT_TIMEOUT;
	default:
		return SMG__REJECT_REASON__REJECT_MALFORMED;
	}
}
