/* libxc/libxl stream synthesis, state-record parsing and the log-dirty
 * bitmap walk: the xen backend's pieces that need no hypervisor.
 * `test_xen_stream --emit FILE` also writes a full libxl stream for
 * test_stream_verify.sh to check with Xen's own verify-stream-v2. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

#if SMG_HAVE_XEN
#include "base/base.h"
#include "engine/backend/xen_stream.h"

/* A memory sink that fails once it would hold more than fail_at bytes. */
static size_t fail_at;

static int failing_write(void *opaque, const void *buf, size_t len)
{
	struct smg_xs_mem *m = opaque;

	if (m->len + len > fail_at)
		return SMG_ERR_EOF;
	return smg_xs_mem_write(opaque, buf, len);
}

/* A state blob as the source backend builds it: TSC, HVM context, params. */
static size_t make_state(uint8_t *buf, size_t cap, struct smg_xs_mem *m)
{
	struct smg_xs_sink s = {smg_xs_mem_write, m, 0};
	uint8_t tsc[24] = {0}, ctx[100], params[8 + 2 * 16];

	memset(ctx, 0xab, sizeof(ctx));
	smg_store_le32(tsc, 0);		  /* mode: default */
	smg_store_le32(tsc + 4, 2000000); /* kHz */
	smg_store_le64(tsc + 8, 12345);
	smg_store_le32(tsc + 16, 1);
	smg_store_le32(params, 2);
	smg_store_le32(params + 4, 0);
	smg_store_le64(params + 8, 1); /* HVM_PARAM_STORE_PFN */
	smg_store_le64(params + 16, 0xfeffc);
	smg_store_le64(params + 24, 17); /* HVM_PARAM_CONSOLE_PFN */
	smg_store_le64(params + 32, 0xfefff);
	CHECK_EQ(smg_xs_write_record(&s, SMG_XS_REC_TSC_INFO, tsc, sizeof(tsc)), 0);
	CHECK_EQ(smg_xs_write_record(&s, SMG_XS_REC_HVM_CONTEXT, ctx, sizeof(ctx)), 0);
	CHECK_EQ(smg_xs_write_record(&s, SMG_XS_REC_HVM_PARAMS, params, sizeof(params)),
		 0);
	CHECK(m->len <= cap);
	memcpy(buf, m->p, m->len);
	return m->len;
}

#define STATE_TYPES                                                 \
	(1u << SMG_XS_REC_TSC_INFO | 1u << SMG_XS_REC_HVM_CONTEXT | \
	 1u << SMG_XS_REC_HVM_PARAMS)

static int splice(void *opaque, uint32_t type, const uint8_t *body, size_t len)
{
	return smg_xs_write_record(opaque, type, body, len);
}

/* The whole libxl stream a destination feeds to libxl's restore. */
static void build_stream(struct smg_xs_mem *m)
{
	struct smg_xs_sink s = {smg_xs_mem_write, m, 0};
	uint8_t cpuid[2 * 24] = {0}, msr[16] = {0}, state[512];
	static uint8_t pages[4 * SMG_XS_PAGE_SIZE];
	struct smg_xs_mem sm = {0};
	size_t slen;
	uint64_t pfns[5];

	CHECK_EQ(smg_xs_write_libxl_header(&s), 0);
	CHECK_EQ(smg_xs_write_libxl_libxc_context(&s), 0);
	CHECK_EQ(smg_xs_write_headers(&s, SMG_XS_DHDR_X86_HVM, 4, 17), 0);
	smg_store_le32(cpuid, 0);
	smg_store_le32(cpuid + 4, 0xffffffffu);
	smg_store_le32(msr, 0xce);
	CHECK_EQ(smg_xs_write_record(&s, SMG_XS_REC_CPUID_POLICY, cpuid, sizeof(cpuid)),
		 0);
	CHECK_EQ(smg_xs_write_record(&s, SMG_XS_REC_MSR_POLICY, msr, sizeof(msr)), 0);
	CHECK_EQ(smg_xs_write_record(&s, SMG_XS_REC_STATIC_DATA_END, NULL, 0), 0);
	for (size_t i = 0; i < sizeof(pages); i++)
		pages[i] = (uint8_t)(i * 7);
	/* round 0: three pages and a hole */
	pfns[0] = 0;
	pfns[1] = 1;
	pfns[2] = SMG_XS_TYPE_XTAB << SMG_XS_TYPE_SHIFT | 0xa0;
	pfns[3] = 0x7fff;
	CHECK_EQ(smg_xs_write_page_data(&s, pfns, 4, pages, 3 * SMG_XS_PAGE_SIZE), 0);
	/* round 1: page 1 again (overwrites), a populate-only frame */
	pfns[0] = 1;
	pfns[1] = SMG_XS_TYPE_XALLOC << SMG_XS_TYPE_SHIFT | 2;
	CHECK_EQ(smg_xs_write_page_data(&s, pfns, 2, pages + SMG_XS_PAGE_SIZE,
					SMG_XS_PAGE_SIZE),
		 0);
	slen = make_state(state, sizeof(state), &sm);
	CHECK_EQ(smg_xs_parse_records(state, slen, STATE_TYPES, splice, &s), 0);
	CHECK_EQ(smg_xs_write_record(&s, SMG_XS_REC_END, NULL, 0), 0);
	CHECK_EQ(smg_xs_write_libxl_end(&s), 0);
	CHECK_EQ(s.bytes, m->len);
	free(sm.p);
}

static void test_layout(void)
{
	struct smg_xs_mem m = {0};
	static const uint8_t libxl_hdr[16] = {'L', 'i', 'b', 'x', 'l', 'F', 'm', 't',
					      0,   0,	0,   2,	  0,   0,   0,	 0};

	build_stream(&m);
	CHECK(m.len > 16 + 8 + 24 + 16);
	CHECK(memcmp(m.p, libxl_hdr, sizeof(libxl_hdr)) == 0);
	CHECK_EQ(smg_load_le32(m.p + 16), SMG_XL_REC_LIBXC_CONTEXT);
	CHECK_EQ(smg_load_le32(m.p + 20), 0);
	/* libxc image header: marker, "XENF", version 3, big-endian */
	for (int i = 0; i < 8; i++)
		CHECK_EQ(m.p[24 + i], 0xff);
	CHECK(memcmp(m.p + 32, "XENF", 4) == 0);
	CHECK_EQ(smg_load_be32(m.p + 36), 3);
	CHECK_EQ(smg_load_le32(m.p + 48), SMG_XS_DHDR_X86_HVM);
	CHECK_EQ(m.p[52], 12);
	CHECK_EQ(m.len % 8, 0);
	/* the stream ends with libxc END then libxl END */
	CHECK_EQ(smg_load_le32(m.p + m.len - 16), SMG_XS_REC_END);
	CHECK_EQ(smg_load_le32(m.p + m.len - 8), SMG_XL_REC_END);
	free(m.p);
}

static void test_page_data_errors(void)
{
	struct smg_xs_mem m = {0};
	struct smg_xs_sink s = {smg_xs_mem_write, &m, 0};
	static uint8_t page[SMG_XS_PAGE_SIZE];
	uint64_t pfn = 5, big[SMG_XS_BATCH_MAX + 1] = {0};

	CHECK_EQ(smg_xs_write_page_data(&s, &pfn, 0, page, 0), SMG_ERR_INVAL);
	CHECK_EQ(smg_xs_write_page_data(&s, big, SMG_XS_BATCH_MAX + 1, NULL, 0),
		 SMG_ERR_INVAL);
	CHECK_EQ(smg_xs_write_page_data(&s, &pfn, 1, page, 0), SMG_ERR_INVAL);
	pfn = UINT64_C(1) << 55 | 5; /* reserved bit */
	CHECK_EQ(smg_xs_write_page_data(&s, &pfn, 1, page, sizeof(page)), SMG_ERR_INVAL);
	CHECK_EQ(m.len, 0);
	pfn = 5;
	CHECK_EQ(smg_xs_write_page_data(&s, &pfn, 1, page, sizeof(page)), 0);
	CHECK_EQ(m.len, 8 + 8 + 8 + SMG_XS_PAGE_SIZE);
	CHECK_EQ(smg_load_le32(m.p + 4), 8 + 8 + SMG_XS_PAGE_SIZE);
	/* a sink error surfaces unchanged */
	fail_at = m.len + 10;
	s.write = failing_write;
	CHECK_EQ(smg_xs_write_page_data(&s, &pfn, 1, page, sizeof(page)), SMG_ERR_EOF);
	free(m.p);
}

static void test_record_padding(void)
{
	struct smg_xs_mem m = {0};
	struct smg_xs_sink s = {smg_xs_mem_write, &m, 0};
	const uint8_t body[3] = {1, 2, 3};

	CHECK_EQ(smg_xs_write_record(&s, SMG_XS_REC_HVM_CONTEXT, body, 3), 0);
	CHECK_EQ(m.len, 16);
	CHECK_EQ(smg_load_le32(m.p + 4), 3);
	CHECK(m.p[11] == 0 && m.p[15] == 0);
	CHECK_EQ(smg_xs_write_record(&s, 9, body, SMG_XS_REC_LENGTH_MAX + 1ul),
		 SMG_ERR_TOO_LONG);
	free(m.p);
}

struct parse_case {
	const char *name;
	size_t cut;	/* truncate to this many bytes (0: keep) */
	size_t flip_at; /* xor a byte (0: none) */
	uint8_t flip;
	uint32_t allowed; /* 0: STATE_TYPES */
	int want;
};

static void test_parse(void)
{
	uint8_t state[512], bad[512];
	struct smg_xs_mem sm = {0};
	size_t len = make_state(state, sizeof(state), &sm);
	/* offsets: TSC rec @0 (8+24), HVM ctx @32 (8+100+4 pad), params @144 */
	const struct parse_case cases[] = {
	    {"whole", 0, 0, 0, 0, 0},
	    {"cut in header", 4, 0, 0, 0, SMG_ERR_TRUNCATED},
	    {"cut in body", 20, 0, 0, 0, SMG_ERR_TRUNCATED},
	    {"cut in padding", 32 + 8 + 101, 0, 0, 0, SMG_ERR_TRUNCATED},
	    {"type not allowed", 0, 0, 0, 1u << SMG_XS_REC_TSC_INFO,
	     SMG_ERR_UNKNOWN_TYPE},
	    {"type out of range", 0, 3, 0x80, 0, SMG_ERR_UNKNOWN_TYPE},
	    {"length lies huge", 0, 7, 0x10, 0, SMG_ERR_TOO_LONG},
	    {"length lies long", 0, 144 + 4, 0x80, 0, SMG_ERR_TRUNCATED},
	    {"length lies short", 0, 4, 8, 0, SMG_ERR_PROTO},
	    {"tsc reserved set", 0, 8 + 20, 1, 0, SMG_ERR_PROTO},
	    {"padding not zero", 0, 32 + 8 + 101, 1, 0, SMG_ERR_PROTO},
	    {"params count lies", 0, 144 + 8, 1, 0, SMG_ERR_PROTO},
	};

	for (size_t i = 0; i < SMG_ARRAY_LEN(cases); i++) {
		const struct parse_case *c = &cases[i];
		size_t n = c->cut ? c->cut : len;
		int r;

		memcpy(bad, state, len);
		if (c->flip_at)
			bad[c->flip_at] ^= c->flip;
		r = smg_xs_parse_records(bad, n, c->allowed ? c->allowed : STATE_TYPES,
					 NULL, NULL);
		if (r != c->want)
			fprintf(stderr, "case '%s': got %d want %d\n", c->name, r,
				c->want);
		CHECK_EQ(r, c->want);
	}
	CHECK_EQ(smg_xs_parse_records(state, 0, STATE_TYPES, NULL, NULL), 0);
	free(sm.p);
}

static void test_check_record(void)
{
	uint8_t b[48] = {0};

	CHECK_EQ(smg_xs_check_record(SMG_XS_REC_TSC_INFO, b, 23), SMG_ERR_PROTO);
	CHECK_EQ(smg_xs_check_record(SMG_XS_REC_TSC_INFO, b, 24), 0);
	CHECK_EQ(smg_xs_check_record(SMG_XS_REC_HVM_CONTEXT, b, 0), SMG_ERR_PROTO);
	CHECK_EQ(smg_xs_check_record(SMG_XS_REC_HVM_PARAMS, b, 7), SMG_ERR_PROTO);
	CHECK_EQ(smg_xs_check_record(SMG_XS_REC_HVM_PARAMS, b, 8), 0);
	smg_store_le32(b, 2);
	CHECK_EQ(smg_xs_check_record(SMG_XS_REC_HVM_PARAMS, b, 40), 0);
	CHECK_EQ(smg_xs_check_record(SMG_XS_REC_HVM_PARAMS, b, 24), SMG_ERR_PROTO);
	smg_store_le32(b, 0x10000001u); /* count * 16 wraps 32 bits */
	CHECK_EQ(smg_xs_check_record(SMG_XS_REC_HVM_PARAMS, b, 24), SMG_ERR_PROTO);
	CHECK_EQ(smg_xs_check_record(SMG_XS_REC_CPUID_POLICY, b, 24), 0);
	CHECK_EQ(smg_xs_check_record(SMG_XS_REC_CPUID_POLICY, b, 25), SMG_ERR_PROTO);
	CHECK_EQ(smg_xs_check_record(SMG_XS_REC_MSR_POLICY, b, 32), 0);
	CHECK_EQ(smg_xs_check_record(SMG_XS_REC_MSR_POLICY, b, 0), SMG_ERR_PROTO);
	CHECK_EQ(smg_xs_check_record(SMG_XS_REC_END, b, 1), SMG_ERR_PROTO);
}

static void test_bitmap(void)
{
	uint64_t bm[4] = {0}, pfns[8], cur = 0;
	const uint64_t set[] = {0, 1, 63, 64, 130, 191, 200};
	size_t n;

	for (size_t i = 0; i < SMG_ARRAY_LEN(set); i++)
		bm[set[i] / 64] |= UINT64_C(1) << (set[i] % 64);
	CHECK_EQ(smg_xs_bitmap_count(bm, 256), 7);
	CHECK_EQ(smg_xs_bitmap_count(bm, 200), 6); /* bit 200 is outside */
	CHECK_EQ(smg_xs_bitmap_count(bm, 64), 3);
	n = smg_xs_bitmap_batch(bm, 201, &cur, pfns, 3);
	CHECK_EQ(n, 3);
	CHECK(pfns[0] == 0 && pfns[1] == 1 && pfns[2] == 63);
	CHECK_EQ(cur, 64);
	n = smg_xs_bitmap_batch(bm, 201, &cur, pfns, 8);
	CHECK_EQ(n, 4);
	CHECK(pfns[0] == 64 && pfns[1] == 130 && pfns[2] == 191 && pfns[3] == 200);
	CHECK_EQ(cur, 201);
	CHECK_EQ(smg_xs_bitmap_batch(bm, 201, &cur, pfns, 8), 0);
	cur = 0; /* a bit at or beyond nbits is never returned */
	n = smg_xs_bitmap_batch(bm, 200, &cur, pfns, 8);
	CHECK_EQ(n, 6);
	CHECK_EQ(cur, 200);
	memset(bm, 0xff, sizeof(bm));
	cur = 0;
	CHECK_EQ(smg_xs_bitmap_batch(bm, 70, &cur, pfns, 8), 8);
	CHECK_EQ(pfns[7], 7);
}

static void test_ranges(void)
{
	const uint64_t r[][2] = {{0, 0xa0}, {0x100, 0x8000}, {0xfeff0, 0xff000}};

	CHECK(smg_xs_ranges_contain(r, 3, 0));
	CHECK(smg_xs_ranges_contain(r, 3, 0x9f));
	CHECK(!smg_xs_ranges_contain(r, 3, 0xa0));
	CHECK(!smg_xs_ranges_contain(r, 3, 0xff));
	CHECK(smg_xs_ranges_contain(r, 3, 0x7fff));
	CHECK(smg_xs_ranges_contain(r, 3, 0xfeffc));
	CHECK(!smg_xs_ranges_contain(r, 3, 0xff000));
	CHECK(!smg_xs_ranges_contain(r, 0, 0));
}

static int emit(const char *path)
{
	struct smg_xs_mem m = {0};
	FILE *f;
	int ok;

	build_stream(&m);
	f = fopen(path, "wb");
	if (f == NULL) {
		perror(path);
		free(m.p);
		return 1;
	}
	ok = fwrite(m.p, 1, m.len, f) == m.len;
	ok = fclose(f) == 0 && ok;
	free(m.p);
	return ok && check_failures == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "--emit") == 0)
		return emit(argv[2]);
	test_layout();
	test_page_data_errors();
	test_record_padding();
	test_parse();
	test_check_record();
	test_bitmap();
	test_ranges();
	return check_result("test_xen_stream");
}
#else
int main(void)
{
	puts("test_xen_stream: built without libxen-dev");
	return T_SKIP;
}
#endif
