/* Control messages from untrusted bytes: cap the length for the frame type,
 * then let protobuf-c allocate from a bounded budget, so a peer cannot make
 * us allocate more than SMG_UNPACK_HEAP_MAX for one message (a packed
 * repeated field can otherwise expand each byte into an 8-byte element). */
#include <stdlib.h>

#include "base/base.h"
#include "proto/proto.h"

struct arena {
	size_t used;
	size_t cap;
	bool exhausted;
};

/* Each block carries its size in front so free needs no arena. */
#define HDR 16

static void *arena_alloc(void *data, size_t size)
{
	struct arena *a = data;
	uint8_t *p;

	if (a == NULL)
		return NULL;
	if (size > a->cap - a->used) {
		a->exhausted = true;
		return NULL;
	}
	if ((p = malloc(size + HDR)) == NULL)
		return NULL;
	a->used += size;
	*(size_t *)p = size;
	return p + HDR;
}

static void arena_free(void *data, void *ptr)
{
	if (ptr != NULL)
		free((uint8_t *)ptr - HDR);
}

int smg_proto_unpack(uint8_t type, const uint8_t *p, size_t len, ProtobufCMessage **out)
{
	const struct smg_frame_info *fi = smg_proto_frame_info(type);
	struct arena a = {0, SMG_UNPACK_HEAP_MAX, false};
	ProtobufCAllocator alloc = {arena_alloc, arena_free, &a};
	ProtobufCMessage *m;

	*out = NULL;
	if (fi == NULL)
		return SMG_ERR_UNKNOWN_TYPE;
	if (fi->desc == NULL)
		return SMG_ERR_STATE; /* not a control message */
	if (len > fi->max_payload)
		return SMG_ERR_TOO_LONG;
	if ((m = protobuf_c_message_unpack(fi->desc, &alloc, len, p)) == NULL)
		return a.exhausted ? SMG_ERR_TOO_LONG : SMG_ERR_PROTO;
	*out = m;
	return SMG_OK;
}

void smg_proto_free(ProtobufCMessage *msg)
{
	ProtobufCAllocator alloc = {arena_alloc, arena_free, NULL};

	if (msg != NULL)
		protobuf_c_message_free_unpacked(msg, &alloc);
}
