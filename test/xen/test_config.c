/* The xen config blob a destination receives in the plan: a well-formed one
 * parses to the right fields; every lie about lengths, counts, ranges and
 * duplicates is refused before libxl sees any of it.
 * `test_xen_config --seeds DIR` writes the fuzz seeds for fuzz_xen_blob. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

#if SMG_HAVE_XEN
#include "base/base.h"
#include "engine/backend/xen_internal.h"

struct membuf {
	uint8_t p[8192];
	size_t len;
};

static int mem_write(void *opaque, const void *buf, size_t len)
{
	struct membuf *m = opaque;

	if (m->len + len > sizeof(m->p))
		return SMG_ERR_NOSPACE;
	memcpy(m->p + m->len, buf, len);
	m->len += len;
	return 0;
}

struct spec {
	uint32_t type, vcpus;
	uint64_t p2m;
	const char *json;
	uint64_t ranges[4][2];
	size_t n_ranges;
	bool dup_json, no_ram, cpuid;
};

static size_t build(const struct spec *sp, struct membuf *m)
{
	struct smg_xs_sink s = {mem_write, m, 0};
	uint8_t info[24], rb[64], leaf[24] = {0};

	m->len = 0;
	smg_store_le32(info, sp->type);
	smg_store_le32(info + 4, 4);
	smg_store_le32(info + 8, 17);
	smg_store_le32(info + 12, sp->vcpus);
	smg_store_le64(info + 16, sp->p2m);
	for (size_t i = 0; i < sp->n_ranges; i++) {
		smg_store_le64(rb + 16 * i, sp->ranges[i][0]);
		smg_store_le64(rb + 16 * i + 8, sp->ranges[i][1]);
	}
	CHECK_EQ(smg_xs_write_record(&s, SMG_XC_REC_INFO, info, sizeof(info)), 0);
	CHECK_EQ(smg_xs_write_record(&s, SMG_XC_REC_JSON, sp->json, strlen(sp->json)), 0);
	if (sp->dup_json)
		CHECK_EQ(
		    smg_xs_write_record(&s, SMG_XC_REC_JSON, sp->json, strlen(sp->json)),
		    0);
	if (sp->cpuid)
		CHECK_EQ(
		    smg_xs_write_record(&s, SMG_XS_REC_CPUID_POLICY, leaf, sizeof(leaf)),
		    0);
	if (!sp->no_ram)
		CHECK_EQ(smg_xs_write_record(&s, SMG_XC_REC_RAM, rb, 16 * sp->n_ranges),
			 0);
	return m->len;
}

#define GOOD                                                         \
	.type = SMG_XS_DHDR_X86_HVM, .vcpus = 1, .p2m = 0xff000,     \
	.json = "{\"c_info\":{\"type\":\"pvh\",\"name\":\"domu\"}}", \
	.ranges = {{0, 0x8000}, {0xfeff0, 0xff000}}, .n_ranges = 2

static void test_good(void)
{
	struct spec sp = {GOOD, .cpuid = true};
	struct membuf m;
	struct smg_xen_config c;
	size_t n = build(&sp, &m);

	CHECK_EQ(smg_xen_config_parse(m.p, n, &c), 0);
	CHECK_EQ(c.dhdr_type, SMG_XS_DHDR_X86_HVM);
	CHECK_EQ(c.xen_major, 4);
	CHECK_EQ(c.xen_minor, 17);
	CHECK_EQ(c.vcpus, 1);
	CHECK_EQ(c.p2m_size, 0xff000);
	CHECK_EQ(c.json_len, strlen(sp.json));
	CHECK(c.json != NULL && memcmp(c.json, sp.json, c.json_len) == 0);
	CHECK_EQ(c.cpuid_len, 24);
	CHECK_EQ(c.msr_len, 0);
	CHECK_EQ(c.n_ranges, 2);
	CHECK(c.ranges[1][0] == 0xfeff0 && c.ranges[1][1] == 0xff000);
	CHECK(smg_xs_ranges_contain((const uint64_t(*)[2])c.ranges, c.n_ranges, 0x7fff));
	CHECK(!smg_xs_ranges_contain((const uint64_t(*)[2])c.ranges, c.n_ranges, 0x8000));
}

static const char *const bad_names[] = {
    "pv type", "no vcpus", "p2m zero",	"p2m huge",	 "range past p2m", "empty range",
    "overlap", "unsorted", "no ranges", "no ram record", "json twice",	   "json empty",
};

/* Case i: the good spec with one lie in it. */
static void lie(size_t i, struct spec *sp)
{
	switch (i) {
	case 0:
		sp->type = SMG_XS_DHDR_X86_PV;
		break;
	case 1:
		sp->vcpus = 0;
		break;
	case 2:
		sp->p2m = 0;
		break;
	case 3:
		sp->p2m = UINT64_C(1) << 40;
		break;
	case 4:
		sp->p2m = 0xfe000;
		break;
	case 5:
		sp->ranges[0][0] = sp->ranges[0][1] = 5;
		sp->n_ranges = 1;
		break;
	case 6:
		sp->ranges[0][1] = 10;
		sp->ranges[1][0] = 5;
		sp->ranges[1][1] = 20;
		break;
	case 7:
		sp->ranges[0][0] = 50;
		sp->ranges[0][1] = 60;
		sp->ranges[1][0] = 0;
		sp->ranges[1][1] = 10;
		break;
	case 8:
		sp->n_ranges = 0;
		break;
	case 9:
		sp->no_ram = true;
		break;
	case 10:
		sp->dup_json = true;
		break;
	case 11:
		sp->json = "";
		break;
	}
}

static void test_bad(void)
{
	struct membuf m;
	struct smg_xen_config c;

	for (size_t i = 0; i < SMG_ARRAY_LEN(bad_names); i++) {
		struct spec sp = {GOOD};
		size_t n;
		int r;

		lie(i, &sp);
		n = build(&sp, &m);
		r = smg_xen_config_parse(m.p, n, &c);
		if (r != SMG_ERR_PROTO)
			fprintf(stderr, "case '%s': got %d\n", bad_names[i], r);
		CHECK_EQ(r, SMG_ERR_PROTO);
		CHECK_EQ(c.n_ranges, 0); /* zeroed on failure */
	}
}

static void test_bytes(void)
{
	struct spec sp = {GOOD};
	struct membuf m;
	struct smg_xen_config c;
	size_t n = build(&sp, &m);

	/* every truncation fails, none crashes */
	for (size_t cut = 0; cut < n; cut++)
		CHECK(smg_xen_config_parse(m.p, cut, &c) != 0);
	/* a NUL inside the JSON would cut libxl's C string short */
	m.p[8 + 24 + 8 + 3] = 0;
	CHECK_EQ(smg_xen_config_parse(m.p, n, &c), SMG_ERR_PROTO);
	/* a state record type is not a config record */
	build(&sp, &m);
	m.p[0] = SMG_XS_REC_HVM_CONTEXT;
	CHECK_EQ(smg_xen_config_parse(m.p, n, &c), SMG_ERR_UNKNOWN_TYPE);
}

static int seeds(const char *dir)
{
	struct spec sp = {GOOD, .cpuid = true};
	struct membuf m;
	uint8_t st[88] = {0};
	char path[512];
	FILE *f;
	size_t n = build(&sp, &m);

	snprintf(path, sizeof(path), "%s/config", dir);
	if ((f = fopen(path, "wb")) == NULL)
		return 1;
	fputc(1, f);
	fwrite(m.p, 1, n, f);
	fclose(f);
	/* state: TSC_INFO (24) + HVM_PARAMS with one entry + RAM */
	smg_store_le32(st, SMG_XS_REC_TSC_INFO);
	smg_store_le32(st + 4, 24);
	smg_store_le32(st + 32, SMG_XS_REC_HVM_PARAMS);
	smg_store_le32(st + 36, 24);
	smg_store_le32(st + 40, 1);
	smg_store_le64(st + 48, 1);
	smg_store_le64(st + 56, 0xfeffc);
	/* and the final frame set: RAM [0, 0x8000) */
	smg_store_le32(st + 64, SMG_XC_REC_RAM);
	smg_store_le32(st + 68, 16);
	smg_store_le64(st + 80, 0x8000);
	snprintf(path, sizeof(path), "%s/state", dir);
	if ((f = fopen(path, "wb")) == NULL)
		return 1;
	fputc(0, f);
	fwrite(st, 1, sizeof(st), f);
	fclose(f);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "--seeds") == 0)
		return seeds(argv[2]);
	test_good();
	test_bad();
	test_bytes();
	return check_result("test_xen_config");
}
#else
int main(void)
{
	puts("test_xen_config: built without libxen-dev");
	return T_SKIP;
}
#endif
