/* Sim domain config: one "key = value" per line, '#' comments. The text
 * travels in the migration plan, so the parser treats it as untrusted. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/base.h"
#include "simhost/simhost.h"

/* nic = mac=..,ipv4=..,ipv6=.. (ipv4/ipv6 may repeat) */
static int parse_nic(char *v, struct smg_nic *nic, struct smg_lines *in)
{
	bool have_mac = false;
	char *save = NULL;

	memset(nic, 0, sizeof(*nic));
	for (char *tok = strtok_r(v, ",", &save); tok != NULL;
	     tok = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(tok, '=');
		if (eq == NULL)
			return smg_lines_err(in, "nic: '%s' is not key=value", tok);
		*eq = '\0';
		char *k = smg_trim(tok), *val = smg_trim(eq + 1);
		if (strcmp(k, "mac") == 0) {
			if (smg_mac_parse_nic(val, nic->mac) != 0)
				return smg_lines_err(in, "nic: bad mac '%s'", val);
			have_mac = true;
		} else if (strcmp(k, "ipv4") == 0) {
			if (nic->n_ipv4 == SMG_DOMAIN_IPS_MAX)
				return smg_lines_err(in, "nic: too many ipv4");
			if (inet_pton(AF_INET, val, nic->ipv4[nic->n_ipv4]) != 1)
				return smg_lines_err(in, "nic: bad ipv4 '%s'", val);
			nic->n_ipv4++;
		} else if (strcmp(k, "ipv6") == 0) {
			if (nic->n_ipv6 == SMG_DOMAIN_IPS_MAX)
				return smg_lines_err(in, "nic: too many ipv6");
			if (inet_pton(AF_INET6, val, nic->ipv6[nic->n_ipv6]) != 1)
				return smg_lines_err(in, "nic: bad ipv6 '%s'", val);
			nic->n_ipv6++;
		} else {
			return smg_lines_err(in, "nic: unknown key '%s'", k);
		}
	}
	if (!have_mac)
		return smg_lines_err(in, "nic: needs mac=");
	return SMG_OK;
}

static int parse_workload(const char *v, enum smg_sim_workload *w)
{
	static const char *const names[] = {"idle", "uniform", "hotspot", "trace"};

	for (size_t i = 0; i < SMG_ARRAY_LEN(names); i++)
		if (strcmp(v, names[i]) == 0) {
			*w = (enum smg_sim_workload)i;
			return 0;
		}
	return -1;
}

/* key=value, both parts of [A-Za-z0-9._-]. */
static bool label_ok(const char *s)
{
	const char *eq = strchr(s, '=');
	char key[SMG_DOMAIN_LABEL_MAX];

	if (eq == NULL || eq == s || strlen(s) >= SMG_DOMAIN_LABEL_MAX)
		return false;
	snprintf(key, sizeof(key), "%.*s", (int)(eq - s), s);
	return smg_name_ok(key, SMG_DOMAIN_NAME_MAX) &&
	       smg_name_ok(eq + 1, SMG_DOMAIN_NAME_MAX);
}

static int parse_placement(char *v, struct smg_sim_config *c, struct smg_lines *in)
{
	char *save = NULL;

	for (char *t = strtok_r(v, " \t", &save); t != NULL;
	     t = strtok_r(NULL, " \t", &save)) {
		if (c->n_labels == SMG_DOMAIN_LABELS_MAX)
			return smg_lines_err(in, "placement: at most %u labels",
					     SMG_DOMAIN_LABELS_MAX);
		if (!label_ok(t))
			return smg_lines_err(
			    in, "placement: labels are key=value of [A-Za-z0-9._-]");
		snprintf(c->labels[c->n_labels++], SMG_DOMAIN_LABEL_MAX, "%s", t);
	}
	if (c->n_labels == 0)
		return smg_lines_err(in, "placement: at least one key=value");
	return SMG_OK;
}

static int parse_line(char *k, char *v, struct smg_sim_config *c, struct smg_lines *in)
{
	uint64_t u;

	if (strcmp(k, "name") == 0) {
		if (!smg_name_ok(v, SMG_DOMAIN_NAME_MAX))
			return smg_lines_err(in, "name: 1-63 of [A-Za-z0-9._-]");
		snprintf(c->name, sizeof(c->name), "%s", v);
	} else if (strcmp(k, "memory") == 0) {
		if (smg_parse_size(v, &u) != 0 || u < SMG_SIM_MEM_MIN ||
		    u > SMG_SIM_MEM_MAX || u % SMG_SIM_PAGE_SIZE != 0)
			return smg_lines_err(
			    in, "memory: a multiple of 4K between 1M and 64G");
		c->mem_bytes = u;
	} else if (strcmp(k, "vcpus") == 0) {
		if (smg_parse_uint(v, SMG_SIM_VCPUS_MAX, &u) != 0 || u == 0)
			return smg_lines_err(in, "vcpus: 1..%u", SMG_SIM_VCPUS_MAX);
		c->vcpus = (unsigned)u;
	} else if (strcmp(k, "workload") == 0) {
		if (parse_workload(v, &c->workload) != 0)
			return smg_lines_err(in,
					     "workload: idle, uniform, hotspot or trace");
	} else if (strcmp(k, "dirty_rate") == 0) {
		if (smg_parse_size(v, &u) != 0 || u > (64ull << 30))
			return smg_lines_err(in, "dirty_rate: bytes/s, e.g. 50M");
		c->dirty_rate = u;
	} else if (strcmp(k, "hot_writes") == 0 || strcmp(k, "hot_pages") == 0 ||
		   strcmp(k, "zero_pct") == 0) {
		if (smg_parse_uint(v, 100, &u) != 0)
			return smg_lines_err(in, "%s: a percentage 0..100", k);
		if (k[0] == 'z' && u > 99)
			return smg_lines_err(in, "zero_pct: at most 99");
		*(k[0] == 'z'	? &c->zero_pct
		  : k[4] == 'w' ? &c->hot_writes
				: &c->hot_pages) = (unsigned)u;
	} else if (strcmp(k, "seed") == 0) {
		if (smg_parse_uint(v, UINT64_MAX, &u) != 0)
			return smg_lines_err(in, "seed: a number");
		c->seed = u;
	} else if (strcmp(k, "trace") == 0) {
		if (strlen(v) == 0 || strlen(v) >= sizeof(c->trace_path))
			return smg_lines_err(in, "trace: a path");
		snprintf(c->trace_path, sizeof(c->trace_path), "%s", v);
	} else if (strcmp(k, "disk") == 0) {
		if (c->n_disks == SMG_DOMAIN_DISKS_MAX)
			return smg_lines_err(in, "disk: at most %u",
					     SMG_DOMAIN_DISKS_MAX);
		if (strlen(v) == 0 || strlen(v) >= SMG_DOMAIN_PATH_MAX)
			return smg_lines_err(in, "disk: a path");
		snprintf(c->disks[c->n_disks++].path, SMG_DOMAIN_PATH_MAX, "%s", v);
	} else if (strcmp(k, "placement") == 0) {
		return parse_placement(v, c, in);
	} else if (strcmp(k, "vtpm") == 0) {
		if (strcmp(v, "yes") != 0 && strcmp(v, "no") != 0)
			return smg_lines_err(in, "vtpm: yes or no");
		c->vtpm = v[0] == 'y';
	} else if (strcmp(k, "nic") == 0) {
		if (c->n_nics == SMG_DOMAIN_NICS_MAX)
			return smg_lines_err(in, "nic: at most %u", SMG_DOMAIN_NICS_MAX);
		return parse_nic(v, &c->nics[c->n_nics++], in);
	} else {
		return smg_lines_err(in, "unknown key '%s'", k);
	}
	return SMG_OK;
}

int smg_sim_config_parse(const char *text, size_t len, struct smg_sim_config *cfg,
			 char *err, size_t errlen)
{
	char line[SMG_SIM_LINE_MAX + 1], *k, *v;
	struct smg_lines in;
	int n, r;

	memset(cfg, 0, sizeof(*cfg));
	cfg->vcpus = 1;
	cfg->hot_writes = 90;
	cfg->hot_pages = 5;
	cfg->seed = 1;
	smg_lines_init(&in, text, len, NULL, err, errlen);
	if (len > SMG_DOMAIN_CONFIG_MAX)
		return smg_lines_err(&in, "config longer than %u bytes",
				     SMG_DOMAIN_CONFIG_MAX);
	while ((n = smg_lines_next(&in, line, SMG_SIM_LINE_MAX)) > 0) {
		char *s = smg_trim(line);

		if (*s == '\0')
			continue;
		if (smg_key_value(s, &k, &v) != SMG_OK)
			return smg_lines_err(&in, "expected 'key = value'");
		if ((r = parse_line(k, v, cfg, &in)) != SMG_OK)
			return r;
	}
	if (n < 0)
		return n == SMG_ERR_TOO_LONG
			   ? smg_lines_err(&in, "line longer than %u bytes",
					   SMG_SIM_LINE_MAX)
			   : smg_lines_err(&in, "NUL byte");
	in.line = 0; /* whole-config rules */
	if (cfg->name[0] == '\0')
		return smg_lines_err(&in, "missing 'name'");
	if (cfg->mem_bytes == 0)
		return smg_lines_err(&in, "missing 'memory'");
	if (cfg->workload == SMG_SIM_TRACE && cfg->trace_path[0] == '\0')
		return smg_lines_err(&in, "workload = trace needs 'trace = PATH'");
	if (cfg->workload != SMG_SIM_IDLE && cfg->dirty_rate == 0)
		cfg->workload = SMG_SIM_IDLE;
	return SMG_OK;
}

static int read_capped(const char *path, size_t cap, char **text, size_t *len)
{
	char *buf = NULL;
	size_t n = 0;
	ssize_t r;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return smg_err_sys(errno);
	if ((buf = malloc(cap + 1)) == NULL) {
		close(fd);
		return SMG_ERR_NOMEM;
	}
	while (n <= cap && (r = read(fd, buf + n, cap + 1 - n)) > 0)
		n += (size_t)r;
	close(fd);
	if (n > cap) {
		free(buf);
		return SMG_ERR_TOO_LONG;
	}
	buf[n] = '\0';
	*text = buf;
	*len = n;
	return SMG_OK;
}

int smg_sim_config_load(const char *path, char **text, size_t *len,
			struct smg_sim_config *cfg, char *err, size_t errlen)
{
	struct smg_lines in;
	int r;

	*text = NULL;
	*len = 0;
	smg_lines_init(&in, NULL, 0, NULL, err, errlen);
	if ((r = read_capped(path, SMG_DOMAIN_CONFIG_MAX, text, len)) != SMG_OK)
		return smg_lines_err(&in, "%s: %s", path,
				     r == SMG_ERR_SYS ? strerror(smg_err_errno())
						      : smg_strerror(r));
	if ((r = smg_sim_config_parse(*text, *len, cfg, err, errlen)) != SMG_OK) {
		free(*text);
		*text = NULL;
		*len = 0;
	}
	return r;
}

int smg_sim_trace_load(const char *path, uint32_t *out, size_t max, size_t *n, char *err,
		       size_t errlen)
{
	char *text, *save = NULL;
	struct smg_lines in;
	size_t len;
	int r;

	*n = 0;
	smg_lines_init(&in, NULL, 0, NULL, err, errlen);
	if ((r = read_capped(path, max * 12, &text, &len)) != SMG_OK)
		return smg_lines_err(&in, "trace %s: %s", path, smg_strerror(r));
	/* Blank lines are not counted (strtok_r skips them). */
	for (char *l = strtok_r(text, "\n", &save); l != NULL;
	     l = strtok_r(NULL, "\n", &save)) {
		uint64_t v;

		in.line++;
		l = smg_trim(l);
		if (*l == '\0' || *l == '#')
			continue;
		if (smg_parse_uint(l, UINT32_MAX, &v) != 0 || *n == max) {
			free(text);
			return smg_lines_err(
			    &in, "trace: a page number per line, at most %zu", max);
		}
		out[(*n)++] = (uint32_t)v;
	}
	free(text);
	in.line = 0;
	if (*n == 0)
		return smg_lines_err(&in, "trace %s is empty", path);
	return SMG_OK;
}
