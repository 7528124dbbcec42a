/* Where a migration goes and who must answer there: addresses, the peers
 * file's addr= option, the pinned destination, and the identity files. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/base.h"
#include "cli/cli.h"
#include "cli/migrate.h"

int smg_cli_parse_addr2(const char *s, char *host, size_t hlen, uint16_t *port,
			bool *explicit_port)
{
	const char *colon, *h = s;
	size_t n;

	*port = SMG_DEFAULT_PORT;
	if (explicit_port != NULL)
		*explicit_port = false;
	if (s[0] == '[') {
		const char *e = strchr(s, ']');
		if (e == NULL)
			return SMG_ERR_INVAL;
		h = s + 1;
		n = (size_t)(e - h);
		colon = e[1] == ':' ? e + 1 : NULL;
		if (e[1] != '\0' && colon == NULL)
			return SMG_ERR_INVAL;
	} else {
		colon = strrchr(s, ':');
		if (colon != NULL && strchr(s, ':') != colon)
			colon = NULL; /* a bare IPv6 address */
		n = colon != NULL ? (size_t)(colon - s) : strlen(s);
	}
	if (n == 0 || n >= hlen)
		return SMG_ERR_INVAL;
	memcpy(host, h, n);
	host[n] = '\0';
	if (colon != NULL) {
		char *end;
		unsigned long p = strtoul(colon + 1, &end, 10);
		if (colon[1] < '0' || colon[1] > '9' || *end != '\0' || p > 65535)
			return SMG_ERR_INVAL;
		*port = (uint16_t)p;
		if (explicit_port != NULL)
			*explicit_port = true;
	}
	return SMG_OK;
}

int smg_cli_parse_addr(const char *s, char *host, size_t hlen, uint16_t *port)
{
	return smg_cli_parse_addr2(s, host, hlen, port, NULL);
}

int smg_cli_peer_addr(const char *options, char *host, size_t hlen, uint16_t *port,
		      bool *explicit_port)
{
	char tok[SMG_CLI_HOST_MAX + 16];
	const char *p = options;

	while (*p != '\0') {
		size_t n;

		while (*p == ' ' || *p == '\t')
			p++;
		n = strcspn(p, " \t");
		if (n > 5 && strncmp(p, "addr=", 5) == 0) {
			if (n - 5 >= sizeof(tok))
				return SMG_ERR_CONFIG;
			memcpy(tok, p + 5, n - 5);
			tok[n - 5] = '\0';
			return smg_cli_parse_addr2(tok, host, hlen, port,
						   explicit_port) == SMG_OK
				   ? SMG_OK
				   : SMG_ERR_CONFIG;
		}
		p += n;
	}
	return SMG_ERR_NOT_FOUND;
}

int smg_cli_dest_resolve(const struct smg_peers *peers, const char *to, const char *peer,
			 struct smg_cli_dest *out)
{
	char host[SMG_CLI_HOST_MAX];
	const struct smg_peer *p;
	bool port_given, addr_port;
	uint16_t port, aport;
	int r;

	memset(out, 0, sizeof(*out));
	if (smg_cli_parse_addr2(to, host, sizeof(host), &port, &port_given) != SMG_OK) {
		fprintf(stderr, "secmig: --to: HOST[:PORT] or NAME[:PORT], not '%s'\n",
			to);
		return SMG_ERR_INVAL;
	}
	if (peer == NULL) {
		/* --to NAME: the destination is the enrolled host of that name */
		if ((p = smg_peers_find(peers, host)) == NULL) {
			fprintf(
			    stderr,
			    "secmig: '%s' is not an enrolled peer: name the destination "
			    "with --to NAME (a peers-file entry, optionally with "
			    "addr=HOST:PORT) or --to HOST[:PORT] --peer NAME, so that "
			    "only that host's key is accepted\n",
			    host);
			return SMG_ERR_INVAL;
		}
	} else if ((p = smg_peers_find(peers, peer)) == NULL) {
		fprintf(stderr, "secmig: --peer '%s' is not in the peers file\n", peer);
		return SMG_ERR_UNKNOWN_PEER;
	}
	snprintf(out->peer, sizeof(out->peer), "%s", p->name);
	snprintf(out->host, sizeof(out->host), "%s", host);
	out->port = port;
	if (peer == NULL) {
		r = smg_cli_peer_addr(p->options, out->host, sizeof(out->host), &aport,
				      &addr_port);
		if (r == SMG_ERR_CONFIG) {
			fprintf(stderr,
				"secmig: peers file line %u: bad addr= for '%s'\n",
				p->line, p->name);
			return r;
		}
		if (r == SMG_OK && !port_given)
			out->port = aport;
	}
	snprintf(out->addr, sizeof(out->addr),
		 strchr(out->host, ':') ? "[%s]:%u" : "%s:%u", out->host, out->port);
	return SMG_OK;
}

const char *smg_cli_state_dir(const char *opt)
{
	const char *env = getenv("SECMIG_STATE_DIR");

	return opt != NULL ? opt : env != NULL ? env : SMG_CLI_DEFAULT_DIR;
}

int smg_cli_ident_load(struct smg_cli_ident *ci, const char *dir, const char *key,
		       const char *peers, const char *name)
{
	char kp[512], pp[512];
	int r;

	memset(ci, 0, sizeof(*ci));
	snprintf(kp, sizeof(kp), "%s/host.key", dir);
	snprintf(pp, sizeof(pp), "%s/peers", dir);
	if ((r = smg_identity_load(key != NULL ? key : kp, &ci->id)) != SMG_OK) {
		fprintf(stderr,
			"secmig: identity %s: %s (create one with 'secmig keygen')\n",
			key != NULL ? key : kp, smg_strerror(r));
		return r;
	}
	if ((r = smg_peers_load(peers != NULL ? peers : pp, &ci->peers)) != SMG_OK) {
		fprintf(stderr, "secmig: peers file %s: %s\n", peers != NULL ? peers : pp,
			smg_strerror(r));
		smg_identity_free(ci->id);
		ci->id = NULL;
		return r;
	}
	if (name != NULL)
		snprintf(ci->name, sizeof(ci->name), "%s", name);
	else if (gethostname(ci->name, sizeof(ci->name)) != 0)
		ci->name[0] = '\0';
	ci->name[sizeof(ci->name) - 1] = '\0';
	ci->so.identity = ci->id;
	ci->so.peers = ci->peers;
	ci->so.name = name;
	return SMG_OK;
}

void smg_cli_ident_free(struct smg_cli_ident *ci)
{
	smg_peers_free(ci->peers);
	smg_identity_free(ci->id);
	memset(ci, 0, sizeof(*ci));
}
