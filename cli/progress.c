/* Progress and outcome output for the migration subcommands. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/base.h"
#include "cli/cli.h"
#include "cli/migrate.h"

int smg_cli_parse_addr(const char *s, char *host, size_t hlen, uint16_t *port)
{
	const char *colon, *h = s;
	size_t n;

	*port = SMG_DEFAULT_PORT;
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
		if (colon[1] == '\0' || *end != '\0' || p > 65535)
			return SMG_ERR_INVAL;
		*port = (uint16_t)p;
	}
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

void smg_cli_out_init(struct smg_cli_out *o, FILE *f, bool json, const char *role)
{
	memset(o, 0, sizeof(*o));
	o->f = f;
	o->json = json;
	o->tty = !json && isatty(fileno(stderr));
	o->role = role;
	o->handshake_ms = -1;
	o->auth = "software";
}

static double mb(double bytes)
{
	return bytes / 1e6;
}

static void progress_line(struct smg_cli_out *o, const struct smg_event *ev)
{
	const struct smg_mig_stats *st = ev->st;
	double pct = st->ram_bytes ? 100.0 * (double)(st->pages_sent + st->zero_pages) *
					 4096.0 / (double)st->ram_bytes
				   : 0;
	double left = st->ram_bytes > st->bytes_sent
			  ? (double)(st->ram_bytes - st->bytes_sent)
			  : (double)ev->dirty_pages * 4096.0;
	double eta = st->bandwidth > 0 ? left / st->bandwidth : 0;
	char line[256];
	int n;

	n = snprintf(
	    line, sizeof(line),
	    "%-8s round %-3u %5.1f%% sent  %7.1f MB/s  dirty %7.1f MB/s  ETA %5.1fs",
	    smg_phase_name(ev->phase), ev->round, pct > 100 ? 100 : pct,
	    mb(st->bandwidth), mb(st->dirty_rate),
	    ev->phase == SMG_PHASE_PRECOPY ? eta : 0.0);
	fprintf(stderr, "\r%s%*s", line,
		o->line_len > (unsigned)n ? (int)(o->line_len - n) : 0, "");
	o->line_len = (unsigned)n;
	fflush(stderr);
}

void smg_cli_event(void *arg, const struct smg_event *ev)
{
	struct smg_cli_out *o = arg;
	const struct smg_mig_stats *st = ev->st;

	if (o->json) {
		switch (ev->kind) {
		case SMG_EV_PHASE:
			fprintf(o->f,
				"{\"event\":\"phase\",\"role\":\"%s\",\"phase\":\"%s\","
				"\"migration_id\":\"%s\",\"t_ms\":%llu%s%s%s}\n",
				o->role, smg_phase_name(ev->phase), st->migration_id,
				(unsigned long long)st->total_ms,
				ev->info ? ",\"detail\":\"" : "",
				ev->info ? ev->info : "", ev->info ? "\"" : "");
			break;
		case SMG_EV_ROUND:
			fprintf(
			    o->f,
			    "{\"event\":\"round\",\"role\":\"%s\",\"phase\":\"%s\","
			    "\"round\":%u,"
			    "\"pages\":%llu,\"dirty_pages\":%llu,\"bandwidth_MBps\":%.1f,"
			    "\"dirty_rate_MBps\":%.1f,\"est_downtime_ms\":%.2f,"
			    "\"throttle\":%u,"
			    "\"bytes_sent\":%llu,\"t_ms\":%llu}\n",
			    o->role, smg_phase_name(ev->phase), ev->round,
			    (unsigned long long)ev->round_pages,
			    (unsigned long long)ev->dirty_pages, mb(st->bandwidth),
			    mb(st->dirty_rate), ev->est_downtime_ms, st->throttle,
			    (unsigned long long)st->bytes_sent,
			    (unsigned long long)st->total_ms);
			break;
		case SMG_EV_INFO:
			fprintf(o->f,
				"{\"event\":\"info\",\"role\":\"%s\",\"phase\":\"%s\","
				"\"detail\":\"%s\","
				"\"throttle\":%u}\n",
				o->role, smg_phase_name(ev->phase),
				ev->info ? ev->info : "", st->throttle);
			break;
		}
		fflush(o->f);
	} else if (o->tty) {
		progress_line(o, ev);
		if (ev->phase == SMG_PHASE_DONE || ev->phase == SMG_PHASE_ABORTED ||
		    ev->phase == SMG_PHASE_IN_DOUBT) {
			fprintf(stderr, "\n");
			o->line_len = 0;
		}
	}
}

void smg_cli_result(struct smg_cli_out *o, const struct smg_mig_stats *st, int code)
{
	char root[2 * SMG_DIGEST_LEN + 1], hs[48];
	const char *outcome = smg_exit_name(code);

	smg_engine_hex(st->memory_root, SMG_DIGEST_LEN, root);
	hs[0] = '\0';
	if (o->handshake_ms >= 0)
		snprintf(hs, sizeof(hs), ",\"handshake_ms\":%.1f", o->handshake_ms);
	if (o->tty && o->line_len > 0)
		fprintf(stderr, "\n");
	if (o->json) {
		fprintf(
		    o->f,
		    "{\"event\":\"result\",\"outcome\":\"%s\",\"downtime_ms\":%llu,"
		    "\"total_ms\":%llu,\"bytes_sent\":%llu,\"ram_bytes\":%llu,\"rounds\":"
		    "%u,"
		    "\"verified\":%s,\"exit_code\":%d,\"migration_id\":\"%s\",\"domain\":"
		    "\"%s\","
		    "\"pages_sent\":%llu,\"zero_pages\":%llu,\"throttle\":%u,"
		    "\"bandwidth_MBps\":%.1f,\"memory_root\":\"%s\",\"auth\":\"%s\"%s%s%"
		    "s%s}\n",
		    code == SMG_EXIT_OK ? "migrated" : outcome,
		    (unsigned long long)st->downtime_ms, (unsigned long long)st->total_ms,
		    (unsigned long long)st->bytes_sent, (unsigned long long)st->ram_bytes,
		    st->rounds, st->verified ? "true" : "false", code, st->migration_id,
		    st->domain, (unsigned long long)st->pages_sent,
		    (unsigned long long)st->zero_pages, st->throttle, mb(st->bandwidth),
		    root, o->auth, hs, st->err ? ",\"error\":\"" : "",
		    st->err ? smg_strerror(st->err) : "", st->err ? "\"" : "");
		fflush(o->f);
		return;
	}
	if (code == SMG_EXIT_OK)
		fprintf(o->f,
			"%s: migrated %s in %llu ms (downtime %llu ms), %u rounds, %.1f "
			"MB sent "
			"for %.1f MB of RAM, %.1f MB/s\n",
			o->role, st->domain, (unsigned long long)st->total_ms,
			(unsigned long long)st->downtime_ms, st->rounds,
			mb((double)st->bytes_sent), mb((double)st->ram_bytes),
			st->total_ms
			    ? mb((double)st->bytes_sent) * 1000.0 / (double)st->total_ms
			    : 0.0);
	else
		fprintf(o->f, "%s: %s: %s (exit %d)\n", o->role, outcome,
			smg_strerror(st->err), code);
}
