/* The xen backend's private view of Xen's save/restore formats:
 * the libxc migration stream (docs/specs/libxc-migration-stream.pandoc,
 * version 3 as Xen 4.17 writes it) inside the libxl v2 wrapper
 * (docs/specs/libxl-migration-stream.pandoc), synthesised from pages and
 * state records; the log-dirty bitmap walk that turns a harvest into batches.
 * Nothing here calls Xen, so it is unit-tested without a hypervisor. */
#ifndef SMG_XEN_STREAM_H
#define SMG_XEN_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SMG_XS_PAGE_SHIFT 12
#define SMG_XS_PAGE_SIZE  (1u << SMG_XS_PAGE_SHIFT)
/* libxc reads at most this many bytes per record (REC_LENGTH_MAX). */
#define SMG_XS_REC_LENGTH_MAX (128u << 20)
/* Pages per PAGE_DATA record: libxc's own batch size, so one record's
 * pfn list and data stay well under REC_LENGTH_MAX. */
#define SMG_XS_BATCH_MAX 1024
/* pfn field: 52 bits of frame number, 4 bits of XEN_DOMCTL_PFINFO type. */
#define SMG_XS_PFN_MASK	   ((UINT64_C(1) << 52) - 1)
#define SMG_XS_TYPE_SHIFT  60
#define SMG_XS_TYPE_NOTAB  UINT64_C(0x0)
#define SMG_XS_TYPE_XALLOC UINT64_C(0xe) /* populate, no data */
#define SMG_XS_TYPE_XTAB   UINT64_C(0xf) /* not a frame: hole */

/* libxc stream record types this backend emits or accepts in a state blob. */
enum smg_xs_rec {
	SMG_XS_REC_END = 0x00,
	SMG_XS_REC_PAGE_DATA = 0x01,
	SMG_XS_REC_TSC_INFO = 0x08,
	SMG_XS_REC_HVM_CONTEXT = 0x09,
	SMG_XS_REC_HVM_PARAMS = 0x0a,
	SMG_XS_REC_STATIC_DATA_END = 0x10,
	SMG_XS_REC_CPUID_POLICY = 0x11,
	SMG_XS_REC_MSR_POLICY = 0x12,
};
#define SMG_XS_DHDR_X86_PV  1u
#define SMG_XS_DHDR_X86_HVM 2u /* HVM and PVH: both are "x86 HVM" to libxc */

/* libxl v2 wrapper record types. */
#define SMG_XL_REC_END		 0u
#define SMG_XL_REC_LIBXC_CONTEXT 1u

/* Byte sink for a stream under construction (a pipe into libxl, a file,
 * a memory buffer in tests). Returns 0 or a negative smg_err. */
struct smg_xs_sink {
	int (*write)(void *opaque, const void *buf, size_t len);
	void *opaque;
	uint64_t bytes; /* written so far */
};

/* A sink's memory buffer, grown as records come (the config and state
 * blobs, tests): opaque = a zeroed struct smg_xs_mem; free(p) after. */
struct smg_xs_mem {
	uint8_t *p;
	size_t len, cap;
};
int smg_xs_mem_write(void *opaque, const void *buf, size_t len);

int smg_xs_write_libxl_header(struct smg_xs_sink *s);
/* The LIBXC_CONTEXT record: the libxc stream follows inline, up to its END. */
int smg_xs_write_libxl_libxc_context(struct smg_xs_sink *s);
int smg_xs_write_libxl_end(struct smg_xs_sink *s);

/* Image header (version 3) and domain header. */
int smg_xs_write_headers(struct smg_xs_sink *s, uint32_t dhdr_type, uint32_t xen_major,
			 uint32_t xen_minor);
/* One record: 8-byte header, body, zero padding to 8 bytes. */
int smg_xs_write_record(struct smg_xs_sink *s, uint32_t type, const void *body,
			size_t len);
/* One PAGE_DATA record: pfns[i] with type NOTAB carries a page from data
 * (in order); XTAB/XALLOC entries carry none. n is 1..SMG_XS_BATCH_MAX. */
int smg_xs_write_page_data(struct smg_xs_sink *s, const uint64_t *pfns, size_t n,
			   const uint8_t *data, size_t data_len);

/* Walk a buffer of libxc records (a state blob from the source), checking
 * every header and length against the buffer before touching a body. Each
 * record type must be in allowed (a bitmask of 1u << type, types < 32).
 * Calls fn for each record unless fn is NULL; a non-zero return stops. */
typedef int (*smg_xs_rec_fn)(void *opaque, uint32_t type, const uint8_t *body,
			     size_t len);
int smg_xs_parse_records(const uint8_t *buf, size_t len, uint32_t allowed,
			 smg_xs_rec_fn fn, void *opaque);
/* Record-specific checks libxc would otherwise fail on after the domain is
 * half-built: TSC_INFO size, HVM_PARAMS count vs length, policy sizes. */
int smg_xs_check_record(uint32_t type, const uint8_t *body, size_t len);

/* Log-dirty bitmap (64 pfns per word, bit i%64 of word i/64). */
uint64_t smg_xs_bitmap_count(const uint64_t *bm, uint64_t nbits);
/* Fill pfns with up to max set bits at or after *cursor, below nbits;
 * returns how many and moves *cursor past the last one taken. */
size_t smg_xs_bitmap_batch(const uint64_t *bm, uint64_t nbits, uint64_t *cursor,
			   uint64_t *pfns, size_t max);
/* Does pfn appear in a sorted, disjoint list of [start,end) ranges? */
bool smg_xs_ranges_contain(const uint64_t (*ranges)[2], size_t n, uint64_t pfn);

/* Frame sets (xen_frames.c): which frames are populated, as bitmaps and as
 * sorted, disjoint [start,end) ranges. */
/* The ranges of bm's set bits below nbits: fills the first max of them
 * and returns how many there are. */
size_t smg_xf_ranges_of(const uint64_t *bm, uint64_t nbits, uint64_t (*r)[2], size_t max);
/* Sets the bits of the frames in r (the caller zeroes bm first). */
void smg_xf_bitmap_set_ranges(uint64_t *bm, const uint64_t (*r)[2], size_t n);
uint64_t smg_xf_ranges_frames(const uint64_t (*r)[2], size_t n);
/* Merges the nearest neighbours until at most max ranges are left: a
 * superset of the frames, for a record of bounded size. */
int smg_xf_ranges_cover(uint64_t (*r)[2], size_t *n, size_t max);
/* A new sweep of the populated frames: every frame whose state changed
 * since pop (it appeared or went) is set in dirty, the ones that appeared
 * also in appeared; pop becomes now. */
struct smg_xf_delta {
	uint64_t appeared, gone; /* frames that changed state */
	uint64_t newly_dirty;	 /* of those, the ones not yet set in dirty */
};
void smg_xf_update(uint64_t *pop, const uint64_t *now, uint64_t *appeared,
		   uint64_t *dirty, uint64_t nbits, struct smg_xf_delta *d);
/* dst |= src below nbits; returns how many bits were new in dst. */
uint64_t smg_xf_or_new(uint64_t *dst, const uint64_t *src, uint64_t nbits);

#endif
