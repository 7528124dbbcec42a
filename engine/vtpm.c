/* The guest vTPM in the migration (DESIGN §8): during stop-and-copy the
 * source takes the state of the running instance through swtpm's control
 * channel, sends it inside the session (VTPM_STATE, encrypted like every
 * frame) and puts its BLAKE2b-256 hash into the manifest; the destination
 * loads it into the waiting instance the sim host started for the incoming
 * domain. The source's instance is left alone: it keeps serving the VM if
 * the migration aborts and dies with the domain after DONE. */
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "attest/attest.h"
#include "base/base.h"
#include "engine/internal.h"
#include "proto/proto.h"
#include "secmig.pb-c.h"
#include "transport/transport.h"

#define VTPM_FRAME_SLACK 64 /* protobuf tags and lengths around the state */

int smg_engine_vtpm_send(struct smg_session *s, const char *ctrl,
			 uint8_t hash[SMG_DIGEST_LEN], uint64_t *bytes)
{
	Smg__VtpmState vs = SMG__VTPM_STATE__INIT;
	struct smg_vtpm_state st;
	uint8_t *buf = NULL;
	size_t len = 0;
	int r;

	if ((r = smg_vtpm_get_state(ctrl, &st)) != SMG_OK) {
		smg_err("vTPM: cannot take the state of the guest's vTPM: %s",
			smg_strerror(r));
		return r;
	}
	r = smg_vtpm_state_encode(&st, &buf, &len);
	smg_vtpm_state_free(&st);
	if (r != SMG_OK)
		return r;
	if (len + SMG_DIGEST_LEN + VTPM_FRAME_SLACK > SMG_STATE_MAX) {
		smg_err("vTPM: state of %zu bytes exceeds the frame limit", len);
		free(buf);
		return SMG_ERR_TOO_LONG;
	}
	smg_vtpm_state_hash(buf, len, hash);
	vs.state = (ProtobufCBinaryData){len, buf};
	vs.state_hash = (ProtobufCBinaryData){SMG_DIGEST_LEN, hash};
	r = smg_chan_send_msg(s, 0, SMG_FT_VTPM_STATE, &vs.base);
	*bytes += len;
	sodium_memzero(buf, len);
	free(buf);
	return r;
}

int smg_engine_vtpm_recv(const struct smg_frame *f, const char *ctrl,
			 uint8_t hash[SMG_DIGEST_LEN])
{
	struct smg_vtpm_state st;
	ProtobufCMessage *m;
	Smg__VtpmState *vs;
	int r;

	if ((r = smg_frame_unpack(f, &smg__vtpm_state__descriptor, &m)) != SMG_OK)
		return r;
	vs = (Smg__VtpmState *)m;
	smg_vtpm_state_hash(vs->state.data, vs->state.len, hash);
	if (vs->state_hash.len != SMG_DIGEST_LEN ||
	    sodium_memcmp(vs->state_hash.data, hash, SMG_DIGEST_LEN) != 0) {
		smg_peer_log(SMG_LOG_ERROR, "vTPM state does not match its hash");
		r = SMG_ERR_INTEGRITY;
	} else if ((r = smg_vtpm_state_decode(vs->state.data, vs->state.len, &st)) !=
		   SMG_OK) {
		smg_peer_log(SMG_LOG_ERROR, "malformed vTPM state: %s", smg_strerror(r));
		r = SMG_ERR_PROTO;
	} else {
		if ((r = smg_vtpm_put_state(ctrl, &st)) != SMG_OK)
			smg_err("vTPM: the incoming instance refused the state: %s",
				smg_strerror(r));
		smg_vtpm_state_free(&st);
	}
	smg_frame_msg_free(m);
	return r;
}
