/* libFuzzer harness: the value parsers of command-line options (an
 * argument is operator or script input: no NUL, any other byte). The
 * first byte picks one, the rest is the argument:
 *   0 smg_cli_parse_addr2  --to, resolve's address (HOST[:PORT], [V6]:PORT)
 *   1 smg_cli_parse_time   ticket --not-before/--not-after (+1h, @T, ISO)
 *   2 smg_parse_size       sizes (--bandwidth, disk sizes)
 *   3 smg_pcr_mask_parse   --pcrs 0-7,10
 *   4 smg_vnic_parse_mac   net --mac
 *   5 smg_audit_key_parse  an audit/operator public key (base64)
 *   6 smg_vnic_add_addr    net --ip ADDR[/LEN]
 * Oracles: what parses is what it says (a MAC is the canonical text it
 * came from; a size, a PCR mask and an address read back the same from
 * their plain form; a host is non-empty and fits). */
#include <arpa/inet.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "attest/attest.h"
#include "audit/audit.h"
#include "base/base.h"
#include "cli/migrate.h"
#include "engine/engine.h"

#define ARG_MAX 512

static void mac(const char *s)
{
	uint8_t m[SMG_MAC_LEN];
	char back[24];

	if (smg_vnic_parse_mac(s, m) != SMG_OK)
		return;
	snprintf(back, sizeof(back), "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2],
		 m[3], m[4], m[5]);
	if (strcasecmp(back, s) != 0)
		abort();
}

static void size(const char *s)
{
	uint64_t v, w;
	char back[32];

	if (smg_parse_size(s, &v) != SMG_OK)
		return;
	snprintf(back, sizeof(back), "%llu", (unsigned long long)v);
	if (smg_parse_size(back, &w) != SMG_OK || w != v)
		abort();
}

static void pcrs(const char *s)
{
	uint32_t m, again;
	char back[128] = "";
	size_t n = 0;

	if (smg_pcr_mask_parse(s, &m) != SMG_OK)
		return;
	if (m == 0 || (m >> SMG_PCR_COUNT) != 0)
		abort();
	for (unsigned i = 0; i < SMG_PCR_COUNT; i++)
		if (m & (1u << i))
			n += (size_t)snprintf(back + n, sizeof(back) - n, "%s%u",
					      n ? "," : "", i);
	if (smg_pcr_mask_parse(back, &again) != SMG_OK || again != m)
		abort();
}

static void addr(const char *s)
{
	struct smg_vnic a = {0}, b = {0};
	char text[INET6_ADDRSTRLEN + 8];
	bool v6;

	if (smg_vnic_add_addr(&a, s) != SMG_OK)
		return;
	if (a.n_ipv4 + a.n_ipv6 != 1)
		abort();
	v6 = a.n_ipv6 == 1;
	if (inet_ntop(v6 ? AF_INET6 : AF_INET, v6 ? (void *)a.ipv6[0] : (void *)a.ipv4[0],
		      text, INET6_ADDRSTRLEN) == NULL)
		abort();
	snprintf(text + strlen(text), 8, "/%u", v6 ? a.ipv6_prefix[0] : a.ipv4_prefix[0]);
	if (smg_vnic_add_addr(&b, text) != SMG_OK || memcmp(&a, &b, sizeof(a)) != 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size_)
{
	char s[ARG_MAX + 1], host[SMG_CLI_HOST_MAX];
	uint8_t key[SMG_AUDIT_KEY_LEN];
	uint16_t port;
	uint64_t t;
	bool given;

	if (size_ < 1 || size_ - 1 > ARG_MAX || memchr(data + 1, 0, size_ - 1) != NULL)
		return 0;
	memcpy(s, data + 1, size_ - 1);
	s[size_ - 1] = '\0';
	switch (data[0] % 7) {
	case 0:
		if (smg_cli_parse_addr2(s, host, sizeof(host), &port, &given) == SMG_OK &&
		    (host[0] == '\0' || strlen(host) >= sizeof(host)))
			abort();
		break;
	case 1:
		smg_cli_parse_time(s, 1764547200, &t); /* 2025-12-01 */
		break;
	case 2:
		size(s);
		break;
	case 3:
		pcrs(s);
		break;
	case 4:
		mac(s);
		break;
	case 5:
		smg_audit_key_parse(s, key);
		break;
	case 6:
		addr(s);
		break;
	}
	return 0;
}
