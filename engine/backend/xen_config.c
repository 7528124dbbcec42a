/* The xen config blob that travels in the plan (built by xen_src.c): a
 * bounded parse, since on the destination it comes from the network. */
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "engine/backend/xen_internal.h"

#define INFO_LEN 24u
/* 2^28 frames = 1 TiB of guest: bounds the destination's bitmaps. */
#define P2M_SIZE_MAX (UINT64_C(1) << 28)

struct parse_ctx {
	struct smg_xen_config *cfg;
	unsigned seen; /* bit per record type: each appears at most once */
	uint64_t p2m_size;
};

/* A RAM record: le64 [start,end) pairs, sorted, disjoint, non-empty (the
 * binary search and the bitmap fill rely on it), all below limit. */
int smg_xen_ranges_parse(const uint8_t *body, size_t len, uint64_t limit,
			 uint64_t (*out)[2], size_t max, size_t *n)
{
	uint64_t prev_end = 0;

	*n = 0;
	if (len % 16 != 0 || len / 16 > max)
		return SMG_ERR_PROTO;
	for (size_t i = 0; i < len / 16; i++) {
		uint64_t s = smg_load_le64(body + 16 * i),
			 e = smg_load_le64(body + 16 * i + 8);

		if (s >= e || e > limit || (i > 0 && s < prev_end))
			return SMG_ERR_PROTO;
		out[i][0] = s;
		out[i][1] = e;
		prev_end = e;
	}
	*n = len / 16;
	return 0;
}

static int take_ranges(struct parse_ctx *c, const uint8_t *body, size_t len)
{
	/* the frame count comes in INFO, which may follow: bound by the
	 * largest count INFO accepts, then check against it at the end */
	return smg_xen_ranges_parse(body, len, P2M_SIZE_MAX, c->cfg->ranges,
				    SMG_XC_MAX_RANGES, &c->cfg->n_ranges);
}

static int take(void *opaque, uint32_t type, const uint8_t *body, size_t len)
{
	struct parse_ctx *c = opaque;
	struct smg_xen_config *cfg = c->cfg;

	if (c->seen & (1u << type))
		return SMG_ERR_PROTO; /* a second copy could override the first */
	c->seen |= 1u << type;
	switch (type) {
	case SMG_XC_REC_INFO:
		if (len != INFO_LEN)
			return SMG_ERR_PROTO;
		cfg->dhdr_type = smg_load_le32(body);
		cfg->xen_major = smg_load_le32(body + 4);
		cfg->xen_minor = smg_load_le32(body + 8);
		cfg->vcpus = smg_load_le32(body + 12);
		c->p2m_size = smg_load_le64(body + 16);
		if (cfg->dhdr_type != SMG_XS_DHDR_X86_HVM || cfg->vcpus == 0 ||
		    c->p2m_size == 0 || c->p2m_size > P2M_SIZE_MAX)
			return SMG_ERR_PROTO;
		return 0;
	case SMG_XC_REC_JSON:
		/* libxl's JSON parser wants a C string: no NUL inside */
		if (len == 0 || len > SMG_XC_JSON_MAX || memchr(body, 0, len) != NULL)
			return SMG_ERR_PROTO;
		cfg->json = body;
		cfg->json_len = len;
		return 0;
	case SMG_XC_REC_RAM:
		return take_ranges(c, body, len);
	case SMG_XS_REC_CPUID_POLICY:
		cfg->cpuid = body;
		cfg->cpuid_len = len;
		return 0;
	case SMG_XS_REC_MSR_POLICY:
		cfg->msr = body;
		cfg->msr_len = len;
		return 0;
	default:
		return SMG_ERR_UNKNOWN_TYPE;
	}
}

int smg_xen_config_parse(const uint8_t *buf, size_t len, struct smg_xen_config *cfg)
{
	struct parse_ctx c = {cfg, 0, 0};
	int r;

	memset(cfg, 0, sizeof(*cfg));
	if ((r = smg_xs_parse_records(buf, len, SMG_XC_ALLOWED, take, &c)) != 0)
		goto fail;
	r = SMG_ERR_PROTO;
	if (!(c.seen & (1u << SMG_XC_REC_INFO)) || !(c.seen & (1u << SMG_XC_REC_JSON)) ||
	    !(c.seen & (1u << SMG_XC_REC_RAM)) || cfg->n_ranges == 0 ||
	    cfg->ranges[cfg->n_ranges - 1][1] > c.p2m_size)
		goto fail;
	cfg->p2m_size = c.p2m_size;
	return 0;
fail:
	memset(cfg, 0, sizeof(*cfg));
	return r;
}

struct state_ctx {
	struct smg_xen_state *st;
	uint64_t p2m_size;
	bool seen_ram;
};

static int take_state(void *opaque, uint32_t type, const uint8_t *body, size_t len)
{
	struct state_ctx *c = opaque;
	struct smg_xen_state *st = c->st;

	if (type != SMG_XC_REC_RAM)
		return 0;
	if (c->seen_ram || len == 0 || len / 16 > SMG_XS_STATE_RANGES_MAX)
		return SMG_ERR_PROTO;
	c->seen_ram = true;
	if ((st->ranges = malloc(len / 16 * sizeof(*st->ranges))) == NULL)
		return SMG_ERR_NOMEM;
	return smg_xen_ranges_parse(body, len, c->p2m_size, st->ranges,
				    SMG_XS_STATE_RANGES_MAX, &st->n_ranges);
}

int smg_xen_state_parse(const uint8_t *buf, size_t len, uint64_t p2m_size,
			struct smg_xen_state *st)
{
	struct state_ctx c = {st, p2m_size, false};
	int r;

	memset(st, 0, sizeof(*st));
	r = smg_xs_parse_records(buf, len, SMG_XS_STATE_ALLOWED, take_state, &c);
	if (r == 0 && !c.seen_ram)
		r = SMG_ERR_PROTO; /* which frames the guest has is not optional */
	if (r != 0)
		smg_xen_state_free(st);
	return r;
}

void smg_xen_state_free(struct smg_xen_state *st)
{
	free(st->ranges);
	st->ranges = NULL;
	st->n_ranges = 0;
}
