/* The frame type registry: every type the protocol knows, its kind, who may
 * send it, its payload cap and, for control frames, its protobuf message. */
#include <stddef.h>

#include "proto/proto.h"
#include "secmig.pb-c.h"

#define HS  SMG_FK_HANDSHAKE
#define CTL SMG_FK_CONTROL
#define BLK SMG_FK_BULK
#define TRN SMG_FK_TRANSPORT
#define S2D SMG_DIR_SRC_TO_DST
#define D2S SMG_DIR_DST_TO_SRC
#define ANY SMG_DIR_BOTH

static const struct smg_frame_info frames[] = {
    {SMG_FT_HELLO, "HELLO", HS, ANY, SMG_HS_FRAME_MAX - 1, &smg__hello__descriptor},
    {SMG_FT_AUTH, "AUTH", HS, ANY, SMG_HS_FRAME_MAX - 1, &smg__auth__descriptor},
    {SMG_FT_JOIN, "JOIN", HS, S2D, SMG_HS_FRAME_MAX - 1, &smg__join__descriptor},
    {SMG_FT_REJECT, "REJECT", HS, D2S, SMG_HS_FRAME_MAX - 1, &smg__reject__descriptor},
    {SMG_FT_STREAM, "STREAM", HS, ANY, 24, NULL},
    {SMG_FT_PLAN, "PLAN", CTL, S2D, SMG_STATE_MAX, &smg__plan__descriptor},
    {SMG_FT_PLAN_ACK, "PLAN_ACK", CTL, D2S, SMG_CONTROL_MAX, &smg__plan_ack__descriptor},
    {SMG_FT_ROUND_START, "ROUND_START", CTL, S2D, SMG_CONTROL_MAX,
     &smg__round_start__descriptor},
    {SMG_FT_ROUND_END, "ROUND_END", CTL, S2D, SMG_CONTROL_MAX,
     &smg__round_end__descriptor},
    {SMG_FT_DEVICE_STATE, "DEVICE_STATE", CTL, S2D, SMG_STATE_MAX,
     &smg__device_state__descriptor},
    {SMG_FT_VTPM_STATE, "VTPM_STATE", CTL, S2D, SMG_STATE_MAX,
     &smg__vtpm_state__descriptor},
    {SMG_FT_MANIFEST, "MANIFEST", CTL, S2D, SMG_CONTROL_MAX, &smg__manifest__descriptor},
    {SMG_FT_READY, "READY", CTL, D2S, SMG_CONTROL_MAX, &smg__ready__descriptor},
    {SMG_FT_COMMIT, "COMMIT", CTL, S2D, SMG_CONTROL_MAX, &smg__commit__descriptor},
    {SMG_FT_DONE, "DONE", CTL, D2S, SMG_CONTROL_MAX, &smg__done__descriptor},
    {SMG_FT_RESOLVE_QUERY, "RESOLVE_QUERY", CTL, S2D, SMG_CONTROL_MAX,
     &smg__resolve_query__descriptor},
    {SMG_FT_RESOLVE_ANSWER, "RESOLVE_ANSWER", CTL, D2S, SMG_CONTROL_MAX,
     &smg__resolve_answer__descriptor},
    {SMG_FT_ABORT, "ABORT", CTL, ANY, SMG_CONTROL_MAX, &smg__abort__descriptor},
    {SMG_FT_PRECHECK, "PRECHECK", CTL, S2D, SMG_STATE_MAX, &smg__plan__descriptor},
    {SMG_FT_PRECHECK_RESULT, "PRECHECK_RESULT", CTL, D2S, SMG_CONTROL_MAX,
     &smg__precheck_result__descriptor},
    {SMG_FT_PAGES, "PAGES", BLK, S2D, SMG_FRAME_PAYLOAD_MAX, NULL},
    {SMG_FT_ZERO_PAGES, "ZERO_PAGES", BLK, S2D, SMG_FRAME_PAYLOAD_MAX, NULL},
    {SMG_FT_DISK_CHUNK, "DISK_CHUNK", BLK, S2D, SMG_FRAME_PAYLOAD_MAX, NULL},
    {SMG_FT_PING, "PING", TRN, ANY, 0, NULL},
    {SMG_FT_CLOSE, "CLOSE", TRN, ANY, 0, NULL},
};

const struct smg_frame_info *smg_proto_frame_info(uint8_t type)
{
	for (size_t i = 0; i < sizeof(frames) / sizeof(frames[0]); i++)
		if (frames[i].type == type)
			return &frames[i];
	return NULL;
}
