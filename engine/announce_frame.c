/* Announcement frames: build RARP / gratuitous ARP / unsolicited neighbour
 * advertisement frames, and parse captured bytes back. The parser reads
 * whatever the wire carries, so it goes through the bounded reader and is
 * fuzzed (fuzz/fuzz_announce.c). */
#include <string.h>

#include "base/base.h"
#include "engine/engine.h"

#define ETH_HDR_LEN	  14
#define ETH_MIN_FRAME	  60 /* without FCS: short frames are padded */
#define ETHERTYPE_ARP	  0x0806
#define ETHERTYPE_RARP	  0x8035
#define ETHERTYPE_IPV6	  0x86dd
#define ARP_BODY_LEN	  28
#define ARP_HTYPE_ETH	  1
#define ARP_PTYPE_IPV4	  0x0800
#define ARP_OP_REQUEST	  1
#define ARP_OP_REPLY	  2
#define RARP_OP_REQUEST	  3
#define IPV6_HDR_LEN	  40
#define IPPROTO_ICMP6	  58
#define ND_HOP_LIMIT	  255 /* RFC 4861 7.1.2: anything else was forwarded */
#define ICMP6_NA	  136
#define NA_LEN		  24 /* type, code, csum, flags, target */
#define NA_FLAG_SOLICITED 0x40
#define NA_FLAG_OVERRIDE  0x20
#define ND_OPT_TLLA	  2
#define NA_FRAME_LEN	  (ETH_HDR_LEN + IPV6_HDR_LEN + NA_LEN + 8)

static const uint8_t bcast[SMG_MAC_LEN] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
static const uint8_t all_nodes_mac[SMG_MAC_LEN] = {0x33, 0x33, 0, 0, 0, 1};
static const uint8_t all_nodes_ip[16] = {0xff, 0x02, [15] = 1};

const char *smg_announce_kind_name(enum smg_announce_kind kind)
{
	switch (kind) {
	case SMG_ANNOUNCE_RARP:
		return "rarp";
	case SMG_ANNOUNCE_GARP:
		return "garp";
	case SMG_ANNOUNCE_NA:
		return "na";
	}
	return "unknown";
}

static uint16_t icmp6_csum(const uint8_t src[16], const uint8_t dst[16],
			   const uint8_t *msg, size_t len)
{
	uint32_t sum = 0;
	size_t i;

	for (i = 0; i < 16; i += 2)
		sum += smg_load_be16(src + i) + smg_load_be16(dst + i);
	sum += (uint32_t)(len >> 16) + (uint32_t)(len & 0xffff) + IPPROTO_ICMP6;
	for (i = 0; i + 1 < len; i += 2)
		sum += smg_load_be16(msg + i);
	if (len & 1)
		sum += (uint32_t)msg[len - 1] << 8;
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

static int build_arp(struct smg_wr *wr, uint16_t ethertype, uint16_t op,
		     const uint8_t mac[SMG_MAC_LEN], const uint8_t *ip)
{
	static const uint8_t zero[SMG_MAC_LEN];
	const uint8_t *pa = ip != NULL ? ip : zero;
	/* RARP asks for its own address (target = sender MAC); a gratuitous
	 * ARP names the same IPv4 as sender and target. */
	const uint8_t *tha = op == RARP_OP_REQUEST ? mac : zero;
	int r;

	if ((r = smg_wr_bytes(wr, bcast, SMG_MAC_LEN)) != 0 ||
	    (r = smg_wr_bytes(wr, mac, SMG_MAC_LEN)) != 0 ||
	    (r = smg_wr_u16(wr, ethertype)) != 0 ||
	    (r = smg_wr_u16(wr, ARP_HTYPE_ETH)) != 0 ||
	    (r = smg_wr_u16(wr, ARP_PTYPE_IPV4)) != 0 ||
	    (r = smg_wr_u8(wr, SMG_MAC_LEN)) != 0 || (r = smg_wr_u8(wr, 4)) != 0 ||
	    (r = smg_wr_u16(wr, op)) != 0 ||
	    (r = smg_wr_bytes(wr, mac, SMG_MAC_LEN)) != 0 ||
	    (r = smg_wr_bytes(wr, pa, 4)) != 0 ||
	    (r = smg_wr_bytes(wr, tha, SMG_MAC_LEN)) != 0 ||
	    (r = smg_wr_bytes(wr, pa, 4)) != 0)
		return r;
	while (wr->off < ETH_MIN_FRAME)
		if ((r = smg_wr_u8(wr, 0)) != 0)
			return r;
	return SMG_OK;
}

static int build_na(struct smg_wr *wr, const uint8_t mac[SMG_MAC_LEN],
		    const uint8_t ip[16])
{
	uint8_t *icmp;
	int r;

	if ((r = smg_wr_bytes(wr, all_nodes_mac, SMG_MAC_LEN)) != 0 ||
	    (r = smg_wr_bytes(wr, mac, SMG_MAC_LEN)) != 0 ||
	    (r = smg_wr_u16(wr, ETHERTYPE_IPV6)) != 0 ||
	    (r = smg_wr_u32(wr, 6u << 28)) != 0 ||
	    (r = smg_wr_u16(wr, NA_LEN + 8)) != 0 ||
	    (r = smg_wr_u8(wr, IPPROTO_ICMP6)) != 0 ||
	    (r = smg_wr_u8(wr, ND_HOP_LIMIT)) != 0 ||
	    (r = smg_wr_bytes(wr, ip, 16)) != 0 ||
	    (r = smg_wr_bytes(wr, all_nodes_ip, 16)) != 0 ||
	    (r = smg_wr_reserve(wr, NA_LEN + 8, &icmp)) != 0)
		return r;
	memset(icmp, 0, NA_LEN + 8);
	icmp[0] = ICMP6_NA;
	/* Unsolicited (S=0) with Override: peers replace their cached MAC. */
	icmp[4] = NA_FLAG_OVERRIDE;
	memcpy(icmp + 8, ip, 16);
	icmp[NA_LEN] = ND_OPT_TLLA;
	icmp[NA_LEN + 1] = 1; /* in units of 8 bytes */
	memcpy(icmp + NA_LEN + 2, mac, SMG_MAC_LEN);
	smg_store_be16(icmp + 2, icmp6_csum(ip, all_nodes_ip, icmp, NA_LEN + 8));
	return SMG_OK;
}

int smg_announce_build(enum smg_announce_kind kind, const uint8_t mac[static SMG_MAC_LEN],
		       const uint8_t *ip, uint8_t *buf, size_t cap, size_t *len)
{
	struct smg_wr wr;
	int r;

	*len = 0;
	smg_wr_init(&wr, buf, cap);
	switch (kind) {
	case SMG_ANNOUNCE_RARP:
		r = build_arp(&wr, ETHERTYPE_RARP, RARP_OP_REQUEST, mac, NULL);
		break;
	case SMG_ANNOUNCE_GARP:
		r = ip != NULL ? build_arp(&wr, ETHERTYPE_ARP, ARP_OP_REQUEST, mac, ip)
			       : SMG_ERR_INVAL;
		break;
	case SMG_ANNOUNCE_NA:
		r = ip != NULL ? build_na(&wr, mac, ip) : SMG_ERR_INVAL;
		break;
	default:
		r = SMG_ERR_INVAL;
	}
	if (r == SMG_OK)
		*len = wr.off;
	return r;
}

struct arp_body {
	uint16_t htype, ptype, op;
	uint8_t hlen, plen;
	uint8_t sha[SMG_MAC_LEN], spa[4], tha[SMG_MAC_LEN], tpa[4];
};

static int read_arp(struct smg_rd *rd, struct arp_body *a)
{
	int r;

	if ((r = smg_rd_u16(rd, &a->htype)) != 0 ||
	    (r = smg_rd_u16(rd, &a->ptype)) != 0 || (r = smg_rd_u8(rd, &a->hlen)) != 0 ||
	    (r = smg_rd_u8(rd, &a->plen)) != 0 || (r = smg_rd_u16(rd, &a->op)) != 0)
		return r;
	/* Only Ethernet/IPv4 bodies have this layout; a frame lying about its
	 * address lengths would make us read fields from the wrong offsets. */
	if (a->htype != ARP_HTYPE_ETH || a->ptype != ARP_PTYPE_IPV4 ||
	    a->hlen != SMG_MAC_LEN || a->plen != 4)
		return SMG_ERR_UNKNOWN_TYPE;
	if ((r = smg_rd_bytes(rd, a->sha, SMG_MAC_LEN)) != 0 ||
	    (r = smg_rd_bytes(rd, a->spa, 4)) != 0 ||
	    (r = smg_rd_bytes(rd, a->tha, SMG_MAC_LEN)) != 0 ||
	    (r = smg_rd_bytes(rd, a->tpa, 4)) != 0)
		return r;
	return SMG_OK;
}

static int parse_rarp(struct smg_rd *rd, const uint8_t *dst, const uint8_t *src,
		      struct smg_announce_frame *out)
{
	struct arp_body a;
	int r;

	if ((r = read_arp(rd, &a)) != 0)
		return r;
	if (a.op != RARP_OP_REQUEST)
		return SMG_ERR_UNKNOWN_TYPE; /* a RARP reply is a server's */
	/* An announcement asks for its own MAC, from that MAC, to everyone;
	 * anything else would teach the switch a MAC the sender is not. */
	if (memcmp(dst, bcast, SMG_MAC_LEN) != 0 ||
	    memcmp(a.sha, src, SMG_MAC_LEN) != 0 || memcmp(a.tha, src, SMG_MAC_LEN) != 0)
		return SMG_ERR_PROTO;
	out->kind = SMG_ANNOUNCE_RARP;
	memcpy(out->mac, src, SMG_MAC_LEN);
	return SMG_OK;
}

static int parse_garp(struct smg_rd *rd, const uint8_t *dst, const uint8_t *src,
		      struct smg_announce_frame *out)
{
	static const uint8_t zero4[4];
	struct arp_body a;
	int r;

	if ((r = read_arp(rd, &a)) != 0)
		return r;
	if ((a.op != ARP_OP_REQUEST && a.op != ARP_OP_REPLY) ||
	    memcmp(a.spa, a.tpa, 4) != 0 || memcmp(a.spa, zero4, 4) == 0)
		return SMG_ERR_UNKNOWN_TYPE; /* an ordinary ARP or a probe */
	if (memcmp(dst, bcast, SMG_MAC_LEN) != 0 || memcmp(a.sha, src, SMG_MAC_LEN) != 0)
		return SMG_ERR_PROTO;
	out->kind = SMG_ANNOUNCE_GARP;
	memcpy(out->mac, src, SMG_MAC_LEN);
	memcpy(out->ip, a.spa, 4);
	return SMG_OK;
}

/* Walk the ND options for a target link-layer address equal to `src`. */
static int na_check_options(struct smg_rd *rd, const uint8_t *src)
{
	bool found = false;
	uint8_t type, units;
	const uint8_t *body;
	int r;

	while (smg_rd_left(rd) > 0) {
		if ((r = smg_rd_u8(rd, &type)) != 0 || (r = smg_rd_u8(rd, &units)) != 0)
			return r;
		/* RFC 4861 4.6: a zero length must be dropped (it loops forever). */
		if (units == 0)
			return SMG_ERR_PROTO;
		if ((r = smg_rd_ptr(rd, (size_t)units * 8 - 2, &body)) != 0)
			return r;
		if (type == ND_OPT_TLLA) {
			if (units != 1 || memcmp(body, src, SMG_MAC_LEN) != 0)
				return SMG_ERR_PROTO;
			found = true;
		}
	}
	return found ? SMG_OK : SMG_ERR_PROTO;
}

static int parse_na(struct smg_rd *rd, const uint8_t *dst, const uint8_t *src,
		    struct smg_announce_frame *out)
{
	const uint8_t *hdr, *icmp;
	uint16_t plen;
	struct smg_rd ir;
	int r;

	if ((r = smg_rd_ptr(rd, IPV6_HDR_LEN, &hdr)) != 0)
		return r;
	if (hdr[0] >> 4 != 6)
		return SMG_ERR_PROTO;
	if (hdr[6] != IPPROTO_ICMP6)
		return SMG_ERR_UNKNOWN_TYPE; /* extension headers: not ours */
	plen = smg_load_be16(hdr + 4);
	/* The payload length may lie about what was captured. */
	if ((r = smg_rd_ptr(rd, plen, &icmp)) != 0)
		return r;
	if (plen < 1 || icmp[0] != ICMP6_NA)
		return SMG_ERR_UNKNOWN_TYPE;
	if (plen < NA_LEN)
		return SMG_ERR_TRUNCATED;
	if ((icmp[4] & NA_FLAG_SOLICITED) != 0 || memcmp(hdr + 24, all_nodes_ip, 16) != 0)
		return SMG_ERR_UNKNOWN_TYPE; /* a solicited answer, not an announcement */
	if (hdr[7] != ND_HOP_LIMIT || icmp[1] != 0 ||
	    memcmp(dst, all_nodes_mac, SMG_MAC_LEN) != 0 ||
	    icmp6_csum(hdr + 8, hdr + 24, icmp, plen) != 0)
		return SMG_ERR_PROTO;
	smg_rd_init(&ir, icmp + NA_LEN, plen - NA_LEN);
	if ((r = na_check_options(&ir, src)) != 0)
		return r;
	out->kind = SMG_ANNOUNCE_NA;
	memcpy(out->mac, src, SMG_MAC_LEN);
	memcpy(out->ip, icmp + 8, 16);
	return SMG_OK;
}

int smg_announce_parse(const uint8_t *buf, size_t len, struct smg_announce_frame *out)
{
	const uint8_t *dst, *src;
	struct smg_announce_frame f;
	uint16_t type;
	struct smg_rd rd;
	int r;

	memset(out, 0, sizeof(*out));
	memset(&f, 0, sizeof(f));
	smg_rd_init(&rd, buf, len);
	if ((r = smg_rd_ptr(&rd, SMG_MAC_LEN, &dst)) != 0 ||
	    (r = smg_rd_ptr(&rd, SMG_MAC_LEN, &src)) != 0 ||
	    (r = smg_rd_u16(&rd, &type)) != 0)
		return r;
	/* A multicast source MAC is never a station's: no switch learns it. */
	if (src[0] & 1)
		return SMG_ERR_PROTO;
	switch (type) {
	case ETHERTYPE_RARP:
		r = parse_rarp(&rd, dst, src, &f);
		break;
	case ETHERTYPE_ARP:
		r = parse_garp(&rd, dst, src, &f);
		break;
	case ETHERTYPE_IPV6:
		r = parse_na(&rd, dst, src, &f);
		break;
	default:
		return SMG_ERR_UNKNOWN_TYPE;
	}
	/* Trailing bytes are Ethernet padding (or the rest of an IPv6 frame
	 * beyond its payload length): allowed, not read. */
	if (r == SMG_OK)
		*out = f;
	return r;
}
