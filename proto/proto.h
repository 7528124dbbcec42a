/* The wire protocol's public face: version, capabilities, the frame type
 * registry, limits and the bulk frame headers. The control messages live in
 * secmig.proto (generated at build time); docs/protocol.md is the spec. */
#ifndef SMG_PROTO_H
#define SMG_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

/* v2: the counter-nonce frame AEAD; v3: disk roots in the manifest are
 * SHA-256 Merkle roots, memory's construction (docs/protocol.md §8). */
#define SMG_PROTO_VERSION     3u
#define SMG_PROTO_VERSION_MIN 3u /* oldest version we still speak */

/* Capabilities (HELLO.capabilities); agreed set = client & server. */
#define SMG_CAP_CHANNELS (1ull << 0) /* data channels beyond the control one */
#define SMG_CAP_TPM	 (1ull << 1) /* TPM-bound mode (attest/) */
/* Bits 2 and 3 (once ZERO_PAGES and WAIO) are reserved: every version 3 peer
 * speaks ZERO_PAGES frames, and WAIO is the source's own business (the
 * destination applies the same record frames whatever the source tracks
 * with), so neither was a choice to negotiate. A peer that still offers them
 * gets them masked out of the agreed set like any bit we do not know. */
#define SMG_CAP_KNOWN (SMG_CAP_CHANNELS | SMG_CAP_TPM)

/* ---- frame types (the byte after the length on the wire for handshake
 * frames, the second plaintext byte (after the flags) of the AEAD message for all
 * others). Unknown types are errors. */
enum smg_frame_type {
	/* plaintext handshake frames */
	SMG_FT_HELLO = 0x01,
	SMG_FT_AUTH = 0x02,
	SMG_FT_JOIN = 0x03,
	SMG_FT_REJECT = 0x04,
	SMG_FT_STREAM =
	    0x05, /* 24-byte nonce salt of the frame AEAD, once per direction */
	/* encrypted control frames (protobuf-c) */
	SMG_FT_PLAN = 0x10,
	SMG_FT_PLAN_ACK = 0x11,
	SMG_FT_ROUND_START = 0x12,
	SMG_FT_ROUND_END = 0x13,
	/* 0x14, 0x16 and 0x1f are reserved (once ACK, DISK_RECORD, ERROR, never
	 * sent): unknown types, refused as such. */
	SMG_FT_DEVICE_STATE = 0x15,
	SMG_FT_VTPM_STATE = 0x17,
	SMG_FT_MANIFEST = 0x18,
	SMG_FT_READY = 0x19,
	SMG_FT_COMMIT = 0x1a,
	SMG_FT_DONE = 0x1b,
	SMG_FT_RESOLVE_QUERY = 0x1c,
	SMG_FT_RESOLVE_ANSWER = 0x1d,
	SMG_FT_ABORT = 0x1e,
	SMG_FT_PRECHECK = 0x20,	       /* a Plan, checked and never acted on */
	SMG_FT_PRECHECK_RESULT = 0x21, /* the destination's verdicts */
	/* encrypted bulk frames (binary header + raw data) */
	SMG_FT_PAGES = 0x40,
	SMG_FT_ZERO_PAGES = 0x41,
	SMG_FT_DISK_CHUNK = 0x42,
	/* transport-internal */
	SMG_FT_PING = 0x70,  /* keepalive, empty; never returned by recv */
	SMG_FT_CLOSE = 0x7f, /* empty, TAG_FINAL: clean end of the stream */
};

enum smg_frame_kind {
	SMG_FK_HANDSHAKE = 1,
	SMG_FK_CONTROL = 2,
	SMG_FK_BULK = 3,
	SMG_FK_TRANSPORT = 4,
};

/* Who may send it: source (client) -> destination, the reverse, or both. */
enum smg_frame_dir {
	SMG_DIR_SRC_TO_DST = 1,
	SMG_DIR_DST_TO_SRC = 2,
	SMG_DIR_BOTH = 3,
};

struct smg_frame_info {
	uint8_t type;
	const char *name;
	enum smg_frame_kind kind;
	enum smg_frame_dir dir;
	size_t max_payload;			/* bytes after the type byte */
	const ProtobufCMessageDescriptor *desc; /* control/handshake; NULL for bulk */
};

/* NULL for an unknown type. */
const struct smg_frame_info *smg_proto_frame_info(uint8_t type);

/* ---- limits --------------------------------------------------------------- */
/* Largest payload of one frame (type byte excluded); the protocol's limit. */
#define SMG_FRAME_PAYLOAD_MAX (1024 * 1024)
#define SMG_HS_FRAME_MAX      16384	    /* a whole handshake frame incl. type byte */
#define SMG_CONTROL_MAX	      (64 * 1024)   /* most control messages */
#define SMG_STATE_MAX	      (1024 * 1024) /* DEVICE_STATE, VTPM_STATE, PLAN */
#define SMG_UNPACK_HEAP_MAX   (4 * 1024 * 1024) /* bounded allocator per unpack */

/* ---- bulk frame headers (big-endian) --------------------------------------
 * PAGES:      u32 round | u32 count | count x page_size data | count x u64 pfn
 * ZERO_PAGES: u32 round | u32 count | count x u64 pfn
 * A PAGES sender reads pages straight into its frame from the front and
 * writes their pfns after the last one it kept: nothing moves whatever
 * count it stops at (smg_pages_data, smg_pages_put_pfns).
 * DISK_CHUNK's payload is storage's record frame, defined, encoded and
 * decoded in one place: storage/record.c (smg_stg_frame_decode, fuzzed by
 * fuzz_stg_records; docs/storage.md "Chunks, holes and the wire format"). */
#define SMG_PAGE_SIZE_MIN 4096u
#define SMG_PAGE_SIZE_MAX 65536u
#define SMG_PAGES_HDR_LEN 8u

struct smg_pages_hdr {
	uint32_t round;
	uint32_t count;
	const uint8_t *pfns; /* count x be64, use smg_pages_pfn() */
	const uint8_t *data; /* count x page_size, NULL for ZERO_PAGES */
};

/* Pure parsers of untrusted payloads (fuzzed): exact lengths, caps, no
 * allocation. page_size must be a power of two in [MIN, MAX]. */
int smg_pages_parse(const uint8_t *p, size_t len, uint32_t page_size, bool zero,
		    struct smg_pages_hdr *out);
static inline uint64_t smg_pages_pfn(const struct smg_pages_hdr *h, uint32_t i)
{
	const uint8_t *b = h->pfns + (size_t)i * 8;

	return (uint64_t)b[0] << 56 | (uint64_t)b[1] << 48 | (uint64_t)b[2] << 40 |
	       (uint64_t)b[3] << 32 | (uint64_t)b[4] << 24 | (uint64_t)b[5] << 16 |
	       (uint64_t)b[6] << 8 | b[7];
}
/* Header of a PAGES/ZERO_PAGES frame into buf (>= SMG_PAGES_HDR_LEN). */
void smg_pages_put_hdr(uint8_t *buf, uint32_t round, uint32_t count);
/* PAGES: where page i's data goes, and the pfn table after count pages;
 * returns the payload length. */
static inline uint8_t *smg_pages_data(uint8_t *payload, uint32_t page_size, uint32_t i)
{
	return payload + SMG_PAGES_HDR_LEN + (size_t)i * page_size;
}
size_t smg_pages_put_pfns(uint8_t *payload, uint32_t round, uint32_t page_size,
			  const uint64_t *pfns, uint32_t count);
/* Most pages one PAGES frame can carry for a page size. */
uint32_t smg_pages_per_frame(uint32_t page_size);

/* Unpack a control message of frame `type` from untrusted bytes: the length
 * is checked against the type's cap and protobuf-c allocates from a bounded
 * arena (SMG_UNPACK_HEAP_MAX). Free with smg_proto_free(). */
int smg_proto_unpack(uint8_t type, const uint8_t *p, size_t len, ProtobufCMessage **out);
void smg_proto_free(ProtobufCMessage *msg);

#endif
