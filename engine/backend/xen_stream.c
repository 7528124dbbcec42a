/* Synthesis of Xen's libxc/libxl migration streams and the bitmap walk.
 * Field layouts follow the public specs in xen.git docs/specs/; the image
 * and libxl headers are big-endian, everything else is little-endian
 * (x86 native), and every record is padded to 8 bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "engine/backend/xen_stream.h"

#define XS_IHDR_MARKER	  UINT64_C(0xffffffffffffffff)
#define XS_IHDR_ID	  0x58454E46u /* "XENF" */
#define XS_IHDR_VERSION	  3u
#define XL_HDR_IDENT	  UINT64_C(0x4c6962786c466d74) /* "LibxlFmt" */
#define XL_HDR_VERSION	  2u
#define XS_REC_ALIGN	  8u
#define XS_TSC_INFO_LEN	  24u /* mode, khz, nsec(64), incarnation, reserved */
#define XS_PARAM_LEN	  16u /* index(64), value(64) */
#define XS_CPUID_LEAF_LEN 24u /* leaf, subleaf, a, b, c, d */
#define XS_MSR_ENTRY_LEN  16u /* idx, flags, val(64) */

int smg_xs_mem_write(void *opaque, const void *buf, size_t len)
{
	struct smg_xs_mem *m = opaque;

	if (len > SIZE_MAX / 4 || m->len > SIZE_MAX / 4 - len)
		return SMG_ERR_NOMEM;
	if (m->len + len > m->cap) {
		size_t cap = (m->cap + len) * 2;
		uint8_t *p = realloc(m->p, cap);

		if (p == NULL)
			return SMG_ERR_NOMEM;
		m->p = p;
		m->cap = cap;
	}
	memcpy(m->p + m->len, buf, len);
	m->len += len;
	return 0;
}

static int sink_put(struct smg_xs_sink *s, const void *buf, size_t len)
{
	int r;

	if (len == 0)
		return 0;
	if ((r = s->write(s->opaque, buf, len)) != 0)
		return r;
	s->bytes += len;
	return 0;
}

static int put_rhdr(struct smg_xs_sink *s, uint32_t type, uint32_t len)
{
	uint8_t h[8];

	smg_store_le32(h, type);
	smg_store_le32(h + 4, len);
	return sink_put(s, h, sizeof(h));
}

static int put_pad(struct smg_xs_sink *s, size_t len)
{
	static const uint8_t zero[XS_REC_ALIGN];
	size_t pad = (XS_REC_ALIGN - (len % XS_REC_ALIGN)) % XS_REC_ALIGN;

	return sink_put(s, zero, pad);
}

int smg_xs_write_libxl_header(struct smg_xs_sink *s)
{
	uint8_t h[16];

	smg_store_be64(h, XL_HDR_IDENT);
	smg_store_be32(h + 8, XL_HDR_VERSION);
	smg_store_be32(h + 12, 0); /* little-endian, not a legacy conversion */
	return sink_put(s, h, sizeof(h));
}

int smg_xs_write_libxl_libxc_context(struct smg_xs_sink *s)
{
	return put_rhdr(s, SMG_XL_REC_LIBXC_CONTEXT, 0);
}

int smg_xs_write_libxl_end(struct smg_xs_sink *s)
{
	return put_rhdr(s, SMG_XL_REC_END, 0);
}

int smg_xs_write_headers(struct smg_xs_sink *s, uint32_t dhdr_type, uint32_t xen_major,
			 uint32_t xen_minor)
{
	uint8_t ih[24] = {0}, dh[16] = {0};
	int r;

	smg_store_be64(ih, XS_IHDR_MARKER);
	smg_store_be32(ih + 8, XS_IHDR_ID);
	smg_store_be32(ih + 12, XS_IHDR_VERSION);
	/* options (be16) = 0: little-endian; reserved fields stay zero */
	smg_store_le32(dh, dhdr_type);
	dh[4] = SMG_XS_PAGE_SHIFT; /* page_shift, le16 */
	smg_store_le32(dh + 8, xen_major);
	smg_store_le32(dh + 12, xen_minor);
	if ((r = sink_put(s, ih, sizeof(ih))) != 0 ||
	    (r = sink_put(s, dh, sizeof(dh))) != 0)
		return r;
	return 0;
}

int smg_xs_write_record(struct smg_xs_sink *s, uint32_t type, const void *body,
			size_t len)
{
	int r;

	if (len > SMG_XS_REC_LENGTH_MAX)
		return SMG_ERR_TOO_LONG;
	if ((r = put_rhdr(s, type, (uint32_t)len)) != 0 ||
	    (r = sink_put(s, body, len)) != 0 || (r = put_pad(s, len)) != 0)
		return r;
	return 0;
}

static bool type_has_data(uint64_t type)
{
	return type <= 4 || (type >= 9 && type <= 0xc); /* NOTAB, L1..L4, pinned */
}

int smg_xs_write_page_data(struct smg_xs_sink *s, const uint64_t *pfns, size_t n,
			   const uint8_t *data, size_t data_len)
{
	uint8_t hdr[8], ent[8];
	size_t with_data = 0, len;
	int r;

	if (n == 0 || n > SMG_XS_BATCH_MAX)
		return SMG_ERR_INVAL;
	for (size_t i = 0; i < n; i++) {
		uint64_t type = pfns[i] >> SMG_XS_TYPE_SHIFT;

		if ((pfns[i] & ~SMG_XS_PFN_MASK &
		     ~(UINT64_C(0xf) << SMG_XS_TYPE_SHIFT)) != 0)
			return SMG_ERR_INVAL; /* reserved bits 52..59 */
		if (type_has_data(type))
			with_data++;
	}
	if (data_len != with_data * SMG_XS_PAGE_SIZE)
		return SMG_ERR_INVAL;
	len = sizeof(hdr) + n * sizeof(ent) + data_len;
	smg_store_le32(hdr, (uint32_t)n);
	smg_store_le32(hdr + 4, 0);
	if ((r = put_rhdr(s, SMG_XS_REC_PAGE_DATA, (uint32_t)len)) != 0 ||
	    (r = sink_put(s, hdr, sizeof(hdr))) != 0)
		return r;
	for (size_t i = 0; i < n; i++) {
		smg_store_le64(ent, pfns[i]);
		if ((r = sink_put(s, ent, sizeof(ent))) != 0)
			return r;
	}
	if ((r = sink_put(s, data, data_len)) != 0)
		return r;
	return put_pad(s, len); /* always aligned already; kept for the rule */
}

int smg_xs_check_record(uint32_t type, const uint8_t *body, size_t len)
{
	switch (type) {
	case SMG_XS_REC_TSC_INFO:
		/* A short or long TSC record would make libxc read past it. */
		if (len != XS_TSC_INFO_LEN || smg_load_le32(body + 20) != 0)
			return SMG_ERR_PROTO;
		return 0;
	case SMG_XS_REC_HVM_CONTEXT:
		return len == 0 ? SMG_ERR_PROTO : 0;
	case SMG_XS_REC_HVM_PARAMS: {
		uint32_t count;

		/* The count is the peer's claim: it must match the length. */
		if (len < 8 || smg_load_le32(body + 4) != 0)
			return SMG_ERR_PROTO;
		count = smg_load_le32(body);
		if ((uint64_t)count * XS_PARAM_LEN != len - 8)
			return SMG_ERR_PROTO;
		return 0;
	}
	case SMG_XS_REC_CPUID_POLICY:
		return len == 0 || len % XS_CPUID_LEAF_LEN != 0 ? SMG_ERR_PROTO : 0;
	case SMG_XS_REC_MSR_POLICY:
		return len == 0 || len % XS_MSR_ENTRY_LEN != 0 ? SMG_ERR_PROTO : 0;
	case SMG_XS_REC_END:
	case SMG_XS_REC_STATIC_DATA_END:
		return len == 0 ? 0 : SMG_ERR_PROTO;
	default:
		return 0;
	}
}

int smg_xs_parse_records(const uint8_t *buf, size_t len, uint32_t allowed,
			 smg_xs_rec_fn fn, void *opaque)
{
	struct smg_rd rd;
	int r;

	smg_rd_init(&rd, buf, len);
	while (smg_rd_left(&rd) > 0) {
		uint8_t h[8];
		uint32_t type, rlen;
		size_t padded;
		const uint8_t *body, *pad;

		if ((r = smg_rd_bytes(&rd, h, sizeof(h))) != 0)
			return r;
		type = smg_load_le32(h);
		rlen = smg_load_le32(h + 4);
		if (type >= 32 || (allowed & (1u << type)) == 0)
			return SMG_ERR_UNKNOWN_TYPE;
		/* A length beyond libxc's cap or the buffer is a lie, not a record. */
		if (rlen > SMG_XS_REC_LENGTH_MAX)
			return SMG_ERR_TOO_LONG;
		padded = ((size_t)rlen + XS_REC_ALIGN - 1) & ~(size_t)(XS_REC_ALIGN - 1);
		if ((r = smg_rd_ptr(&rd, rlen, &body)) != 0 ||
		    (r = smg_rd_ptr(&rd, padded - rlen, &pad)) != 0)
			return r;
		for (size_t i = 0; i < padded - rlen; i++)
			if (pad[i] != 0)
				return SMG_ERR_PROTO;
		if ((r = smg_xs_check_record(type, body, rlen)) != 0)
			return r;
		if (fn != NULL && (r = fn(opaque, type, body, rlen)) != 0)
			return r;
	}
	return 0;
}

uint64_t smg_xs_bitmap_count(const uint64_t *bm, uint64_t nbits)
{
	uint64_t n = 0, words = nbits / 64;

	for (uint64_t i = 0; i < words; i++)
		n += (uint64_t)__builtin_popcountll(bm[i]);
	if (nbits % 64)
		n += (uint64_t)__builtin_popcountll(bm[words] &
						    ((UINT64_C(1) << (nbits % 64)) - 1));
	return n;
}

size_t smg_xs_bitmap_batch(const uint64_t *bm, uint64_t nbits, uint64_t *cursor,
			   uint64_t *pfns, size_t max)
{
	uint64_t p = *cursor;
	size_t n = 0;

	while (p < nbits && n < max) {
		uint64_t w = bm[p / 64] >> (p % 64);

		if (w == 0) {
			p = (p / 64 + 1) * 64; /* skip the rest of an empty word */
			continue;
		}
		p += (uint64_t)__builtin_ctzll(w);
		if (p >= nbits)
			break;
		pfns[n++] = p++;
	}
	*cursor = p < nbits ? p : nbits;
	return n;
}

bool smg_xs_ranges_contain(const uint64_t (*ranges)[2], size_t n, uint64_t pfn)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (pfn < ranges[mid][0])
			hi = mid;
		else if (pfn >= ranges[mid][1])
			lo = mid + 1;
		else
			return true;
	}
	return false;
}
