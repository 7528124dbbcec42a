/* Announcement frames: build -> parse round trips, the exact bytes of a
 * RARP (QEMU's layout), and every way a captured frame can be malformed. */
#include <arpa/inet.h>
#include <string.h>

#include "base/base.h"
#include "check.h"
#include "engine/engine.h"

static const uint8_t mac[6] = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};

static void test_roundtrip(void)
{
	uint8_t buf[SMG_ANNOUNCE_FRAME_MAX], v4[4], v6[16];
	struct smg_announce_frame f;
	size_t len;

	inet_pton(AF_INET, "10.1.2.3", v4);
	inet_pton(AF_INET6, "fd00::42", v6);
	CHECK_EQ(smg_announce_build(SMG_ANNOUNCE_RARP, mac, NULL, buf, sizeof(buf), &len),
		 0);
	CHECK_EQ(len, 60);
	CHECK_EQ(smg_announce_parse(buf, len, &f), 0);
	CHECK_EQ(f.kind, SMG_ANNOUNCE_RARP);
	CHECK(memcmp(f.mac, mac, 6) == 0);

	CHECK_EQ(smg_announce_build(SMG_ANNOUNCE_GARP, mac, v4, buf, sizeof(buf), &len),
		 0);
	CHECK_EQ(len, 60);
	CHECK_EQ(smg_announce_parse(buf, len, &f), 0);
	CHECK_EQ(f.kind, SMG_ANNOUNCE_GARP);
	CHECK(memcmp(f.ip, v4, 4) == 0);

	CHECK_EQ(smg_announce_build(SMG_ANNOUNCE_NA, mac, v6, buf, sizeof(buf), &len), 0);
	CHECK_EQ(len, 86);
	CHECK_EQ(smg_announce_parse(buf, len, &f), 0);
	CHECK_EQ(f.kind, SMG_ANNOUNCE_NA);
	CHECK(memcmp(f.ip, v6, 16) == 0);

	/* No room, no IP, unknown kind. */
	CHECK_EQ(smg_announce_build(SMG_ANNOUNCE_NA, mac, v6, buf, 40, &len),
		 SMG_ERR_NOSPACE);
	CHECK_EQ(len, 0);
	CHECK_EQ(smg_announce_build(SMG_ANNOUNCE_GARP, mac, NULL, buf, sizeof(buf), &len),
		 SMG_ERR_INVAL);
	CHECK_EQ(smg_announce_build(9, mac, v4, buf, sizeof(buf), &len), SMG_ERR_INVAL);
}

/* The RARP QEMU's announce_self_create() sends, byte for byte. */
static void test_rarp_bytes(void)
{
	static const uint8_t want[42] = {
	    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x52, 0x54, 0x00, 0x12, 0x34,
	    0x56, 0x80, 0x35, 0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x03,
	    0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0x00, 0x00, 0x00, 0x00, 0x52,
	    0x54, 0x00, 0x12, 0x34, 0x56, 0x00, 0x00, 0x00, 0x00};
	uint8_t buf[SMG_ANNOUNCE_FRAME_MAX], zero[18] = {0};
	size_t len;

	CHECK_EQ(smg_announce_build(SMG_ANNOUNCE_RARP, mac, NULL, buf, sizeof(buf), &len),
		 0);
	CHECK(memcmp(buf, want, sizeof(want)) == 0);
	CHECK(memcmp(buf + 42, zero, 18) == 0);
}

static int parse_mut(enum smg_announce_kind kind, size_t off, uint8_t xor, size_t cut)
{
	uint8_t buf[SMG_ANNOUNCE_FRAME_MAX], v4[4] = {10, 0, 0, 9},
					     v6[16] = {0xfd, [15] = 9};
	struct smg_announce_frame f;
	size_t len;

	smg_announce_build(kind, mac, kind == SMG_ANNOUNCE_NA ? v6 : v4, buf, sizeof(buf),
			   &len);
	buf[off] ^= xor;
	return smg_announce_parse(buf, cut ? cut : len, &f);
}

static void test_malformed(void)
{
	struct smg_announce_frame f;
	uint8_t buf[128] = {0};

	CHECK_EQ(smg_announce_parse(NULL, 0, &f), SMG_ERR_TRUNCATED);
	CHECK_EQ(smg_announce_parse(buf, 13, &f), SMG_ERR_TRUNCATED);
	/* IPv4 frame: another kind, not an error. */
	buf[12] = 0x08;
	CHECK_EQ(smg_announce_parse(buf, 60, &f), SMG_ERR_UNKNOWN_TYPE);
	/* Multicast source MAC. */
	CHECK_EQ(parse_mut(SMG_ANNOUNCE_RARP, 6, 0x01, 0), SMG_ERR_PROTO);
	/* RARP: not broadcast, sha != src, tha != src, reply op, short body. */
	CHECK_EQ(parse_mut(SMG_ANNOUNCE_RARP, 0, 0x02, 0), SMG_ERR_PROTO);
	CHECK_EQ(parse_mut(SMG_ANNOUNCE_RARP, 23, 0x01, 0), SMG_ERR_PROTO);
	CHECK_EQ(parse_mut(SMG_ANNOUNCE_RARP, 33, 0x01, 0), SMG_ERR_PROTO);
	CHECK_EQ(parse_mut(SMG_ANNOUNCE_RARP, 21, 0x07, 0), SMG_ERR_UNKNOWN_TYPE);
	CHECK_EQ(parse_mut(SMG_ANNOUNCE_RARP, 0, 0, 30), SMG_ERR_TRUNCATED);
	/* A body claiming 16-byte hardware addresses. */
	CHECK_EQ(parse_mut(SMG_ANNOUNCE_RARP, 18, 0x16, 0), SMG_ERR_UNKNOWN_TYPE);
	/* GARP: spa != tpa is an ordinary ARP; sha != src is a lie. */
	CHECK_EQ(parse_mut(SMG_ANNOUNCE_GARP, 41, 0x01, 0), SMG_ERR_UNKNOWN_TYPE);
	CHECK_EQ(parse_mut(SMG_ANNOUNCE_GARP, 22, 0x04, 0), SMG_ERR_PROTO);
	/* NA: bad checksum, hop limit, solicited flag, version, truncated,
	 * payload length lying, zero-length option, TLLA naming another MAC. */
	CHECK_EQ(parse_mut(SMG_ANNOUNCE_NA, 60, 0x01, 0), SMG_ERR_PROTO);
	CHECK_EQ(parse_mut(SMG_ANNOUNCE_NA, 21, 0x01, 0), SMG_ERR_PROTO);
	CHECK_EQ(parse_mut(SMG_ANNOUNCE_NA, 58, 0x40, 0), SMG_ERR_UNKNOWN_TYPE);
	CHECK_EQ(parse_mut(SMG_ANNOUNCE_NA, 14, 0x30, 0), SMG_ERR_PROTO);
	CHECK_EQ(parse_mut(SMG_ANNOUNCE_NA, 0, 0, 70), SMG_ERR_TRUNCATED);
	CHECK_EQ(parse_mut(SMG_ANNOUNCE_NA, 19, 0x40, 0), SMG_ERR_TRUNCATED);
	CHECK_EQ(parse_mut(SMG_ANNOUNCE_NA, 79, 0x01, 0), SMG_ERR_PROTO);
	CHECK_EQ(parse_mut(SMG_ANNOUNCE_NA, 85, 0x01, 0), SMG_ERR_PROTO);
	/* Echo request (type 128): another ICMPv6 message. */
	CHECK_EQ(parse_mut(SMG_ANNOUNCE_NA, 54, 136 ^ 128, 0), SMG_ERR_UNKNOWN_TYPE);
}

static void test_nic_parse(void)
{
	struct smg_vnic nic;
	uint8_t m[6];

	memset(&nic, 0, sizeof(nic));
	CHECK_EQ(smg_vnic_parse_mac("52:54:00:12:34:56", m), 0);
	CHECK(memcmp(m, mac, 6) == 0);
	CHECK_EQ(smg_vnic_parse_mac("53:54:00:12:34:56", m),
		 SMG_ERR_INVAL); /* multicast */
	CHECK_EQ(smg_vnic_parse_mac("00:00:00:00:00:00", m), SMG_ERR_INVAL);
	CHECK_EQ(smg_vnic_parse_mac("52:54:00:12:34", m), SMG_ERR_INVAL);
	CHECK_EQ(smg_vnic_parse_mac("52:54:00:12:34:56:78", m), SMG_ERR_INVAL);
	CHECK_EQ(smg_vnic_parse_mac("52:54:00:12:34:5g", m), SMG_ERR_INVAL);
	/* fuzz_cli_values: sscanf's %2x read a sign or a blank as part of an
	 * octet ("-6" was 0xfa) */
	CHECK_EQ(smg_vnic_parse_mac("52:54:00:12:34:-6", m), SMG_ERR_INVAL);
	CHECK_EQ(smg_vnic_parse_mac("52:54:00:12:34:+6", m), SMG_ERR_INVAL);
	CHECK_EQ(smg_vnic_parse_mac(" 2:54:00:12:34:56", m), SMG_ERR_INVAL);
	CHECK_EQ(smg_vnic_parse_mac("52-54-00-12-34-56", m), SMG_ERR_INVAL);
	CHECK_EQ(smg_vnic_parse_mac("52:54:00:12:34:5F", m), 0);
	CHECK(m[5] == 0x5f);
	CHECK_EQ(smg_vnic_add_addr(&nic, "10.0.0.5/24"), 0);
	CHECK_EQ(smg_vnic_add_addr(&nic, "10.0.0.6"), 0);
	CHECK_EQ(smg_vnic_add_addr(&nic, "fd00::5/64"), 0);
	CHECK_EQ(nic.n_ipv4, 2);
	CHECK_EQ(nic.ipv4_prefix[1], 32);
	CHECK_EQ(nic.n_ipv6, 1);
	CHECK_EQ(nic.ipv6_prefix[0], 64);
	CHECK_EQ(smg_vnic_add_addr(&nic, "10.0.0.7/33"), SMG_ERR_INVAL);
	CHECK_EQ(smg_vnic_add_addr(&nic, "10.0.0.7/"), SMG_ERR_INVAL);
	CHECK_EQ(smg_vnic_add_addr(&nic, "10.0.0.7/0"), SMG_ERR_INVAL);
	CHECK_EQ(smg_vnic_add_addr(&nic, "fd00::1/129"), SMG_ERR_INVAL);
	CHECK_EQ(smg_vnic_add_addr(&nic, "10.0.0"), SMG_ERR_INVAL);
	CHECK_EQ(smg_vnic_add_addr(&nic, "10.0.0.8"), 0);
	CHECK_EQ(smg_vnic_add_addr(&nic, "10.0.0.9"), 0);
	CHECK_EQ(smg_vnic_add_addr(&nic, "10.0.0.10"),
		 SMG_ERR_INVAL); /* SMG_VNIC_ADDRS_MAX */
}

static void test_bad_schedule(void)
{
	struct smg_vnic nic = {.mac = {0x52, 0x54, 0, 0, 0, 1}};
	struct smg_announce_target t = {NULL, "lo", &nic};
	struct smg_announce_sched zero = {0, 50, 100, 550}, big = {5, 900, 100, 550};
	struct smg_announce *a;

	CHECK_EQ(smg_announce_start(&t, 1, &zero, NULL, NULL, &a), SMG_ERR_INVAL);
	CHECK(a == NULL);
	CHECK_EQ(smg_announce_start(&t, 1, &big, NULL, NULL, &a), SMG_ERR_INVAL);
	CHECK_EQ(smg_announce_start(&t, 0, NULL, NULL, NULL, &a), SMG_ERR_INVAL);
}

int main(void)
{
	test_roundtrip();
	test_rarp_bytes();
	test_malformed();
	test_nic_parse();
	test_bad_schedule();
	return check_result("announce");
}
