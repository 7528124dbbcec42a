/* Host definitions: what this host offers incoming VMs, owned by its
 * operator (docs/hostdef.md). A migration plan is a request; the receiver
 * builds the VM from the definition that matches it, never from a path,
 * device, address or size the sender chose. Line oriented like the policy
 * file; every error names its line. Backend-generic: the sim, xen and qemu
 * backends and the disk service all read the same file. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/base.h"

#define TOKENS_MAX 24

struct hd_parser {
	struct smg_hostdef *d;
	struct smg_hostdef_vm *vm; /* current block */
	struct smg_lines in;	   /* the text, its line, the error */
};

/* Absolute, no "..", no control characters or spaces: it is handed to
 * hypervisor tools verbatim. */
static bool path_ok(const char *s)
{
	if (s[0] != '/' || strlen(s) >= SMG_HOSTDEF_PATH_MAX ||
	    strstr(s, "/../") != NULL ||
	    (strlen(s) >= 3 && strcmp(s + strlen(s) - 3, "/..") == 0))
		return false;
	for (; *s; s++)
		if ((unsigned char)*s <= ' ' || *s == 0x7f || *s == '"' || *s == '\\' ||
		    *s == ',')
			return false;
	return true;
}

int smg_mac_parse(const char *s, uint8_t mac[6])
{
	char low[18];

	/* Exactly "xx:xx:xx:xx:xx:xx", either case (sscanf's %2x took a sign
	 * or a blank too: "52:54:00:12:34:-6" was fa, fuzz_cli_values). */
	if (strlen(s) != 17)
		return SMG_ERR_INVAL;
	for (int i = 0; i < 17; i++) {
		if (i % 3 == 2 && s[i] != ':')
			return SMG_ERR_INVAL;
		low[i] = (char)tolower((unsigned char)s[i]);
	}
	for (int i = 0; i < 6; i++)
		if (smg_hex_decode(low + 3 * i, 2, &mac[i], 1) != SMG_OK)
			return SMG_ERR_INVAL;
	return SMG_OK;
}

int smg_mac_parse_nic(const char *s, uint8_t mac[6])
{
	uint8_t v[6];

	if (s == NULL || smg_mac_parse(s, v) != SMG_OK)
		return SMG_ERR_INVAL;
	/* A multicast MAC (or all zeros) can never be a NIC's source address. */
	if ((v[0] & 1) || (v[0] | v[1] | v[2] | v[3] | v[4] | v[5]) == 0)
		return SMG_ERR_INVAL;
	memcpy(mac, v, 6);
	return SMG_OK;
}

static int parse_bits(const char *s, unsigned max, uint8_t *out)
{
	uint64_t v;

	if (smg_parse_uint(s, max, &v) != SMG_OK)
		return -1;
	*out = (uint8_t)v;
	return 0;
}

/* "10.0.0.0/24", "fd00::/64", "10.0.0.5" (a /32) */
static int parse_prefix(const char *v, struct smg_hostdef_prefix *p)
{
	char buf[64];
	char *slash;

	if (strlen(v) >= sizeof(buf))
		return -1;
	snprintf(buf, sizeof(buf), "%s", v);
	memset(p, 0, sizeof(*p));
	if ((slash = strchr(buf, '/')) != NULL)
		*slash = '\0';
	if (inet_pton(AF_INET, buf, p->addr) == 1)
		p->family = 4;
	else if (inet_pton(AF_INET6, buf, p->addr) == 1)
		p->family = 6;
	else
		return -1;
	p->len = p->family == 4 ? 32 : 128;
	if (slash != NULL && parse_bits(slash + 1, p->len, &p->len) != 0)
		return -1;
	return 0;
}

static bool bits_match(const uint8_t *a, const uint8_t *b, unsigned bits)
{
	unsigned full = bits / 8, rest = bits % 8;

	if (memcmp(a, b, full) != 0)
		return false;
	if (rest == 0)
		return true;
	uint8_t mask = (uint8_t)(0xff << (8 - rest));
	return (a[full] & mask) == (b[full] & mask);
}

bool smg_hostdef_nic_mac_ok(const struct smg_hostdef_nic *n, const uint8_t mac[6])
{
	return n->has_mac && bits_match(n->mac, mac, n->mac_bits);
}

bool smg_hostdef_nic_ip_ok(const struct smg_hostdef_nic *n, int family,
			   const uint8_t *addr)
{
	for (unsigned i = 0; i < n->n_prefix; i++)
		if (n->prefix[i].family == family &&
		    bits_match(n->prefix[i].addr, addr, n->prefix[i].len))
			return true;
	return false;
}

static bool bridge_known(const struct smg_hostdef *d, const char *b)
{
	for (unsigned i = 0; i < d->n_bridges; i++)
		if (strcmp(d->bridges[i], b) == 0)
			return true;
	return false;
}

/* nic bridge=B mac=MAC[/BITS] ip=CIDR ... */
static int parse_nic(struct hd_parser *ps, char **tok, int ntok)
{
	struct smg_hostdef_vm *vm = ps->vm;
	struct smg_hostdef_nic *n;

	if (vm->n_nics >= SMG_HOSTDEF_NICS_MAX)
		return smg_lines_err(&ps->in, "more than %d nic lines",
				     SMG_HOSTDEF_NICS_MAX);
	n = &vm->nics[vm->n_nics];
	memset(n, 0, sizeof(*n));
	for (int i = 1; i < ntok; i++) {
		char *eq = strchr(tok[i], '=');
		if (eq == NULL)
			return smg_lines_err(&ps->in, "nic: '%.64s' is not key=value",
					     tok[i]);
		*eq = '\0';
		const char *k = tok[i], *v = eq + 1;
		if (!strcmp(k, "bridge")) {
			if (!smg_name_ok(v, SMG_HOSTDEF_IFNAME_MAX) ||
			    !bridge_known(ps->d, v))
				return smg_lines_err(
				    &ps->in, "nic: bridge '%.32s' is not a 'bridge' line",
				    v);
			snprintf(n->bridge, sizeof(n->bridge), "%s", v);
		} else if (!strcmp(k, "mac")) {
			char m[24];
			const char *slash = strchr(v, '/');
			snprintf(m, sizeof(m), "%.*s", slash ? (int)(slash - v) : 23, v);
			n->mac_bits = 48;
			if (smg_mac_parse(m, n->mac) != 0 ||
			    (slash != NULL &&
			     parse_bits(slash + 1, 48, &n->mac_bits) != 0))
				return smg_lines_err(&ps->in,
						     "nic: mac=XX:XX:XX:XX:XX:XX[/BITS]");
			if (n->mac_bits < 24 || (n->mac[0] & 1))
				return smg_lines_err(
				    &ps->in, "nic: a unicast MAC range of at least 24 "
					     "fixed bits");
			n->has_mac = true;
		} else if (!strcmp(k, "ip")) {
			if (n->n_prefix >= SMG_HOSTDEF_PREFIXES_MAX)
				return smg_lines_err(&ps->in, "nic: at most %d ip=",
						     SMG_HOSTDEF_PREFIXES_MAX);
			if (parse_prefix(v, &n->prefix[n->n_prefix]) != 0)
				return smg_lines_err(
				    &ps->in, "nic: ip=ADDR[/LEN], not '%.64s'", v);
			n->n_prefix++;
		} else {
			return smg_lines_err(&ps->in, "nic: unknown key '%.32s'", k);
		}
	}
	if (n->bridge[0] == '\0' || !n->has_mac)
		return smg_lines_err(&ps->in, "nic: needs bridge= and mac=");
	vm->n_nics++;
	return SMG_OK;
}

static int parse_size_tok(struct hd_parser *ps, const char *what, const char *v,
			  uint64_t max, uint64_t *out)
{
	uint64_t u;

	if (smg_parse_size(v, &u) != 0 || u == 0 || u > max)
		return smg_lines_err(&ps->in, "%s: a size like 4G, not '%.32s'", what, v);
	*out = u;
	return SMG_OK;
}

static int parse_count(struct hd_parser *ps, const char *what, const char *v,
		       uint64_t max, unsigned *out)
{
	uint64_t u;

	if (smg_parse_size(v, &u) != 0 || u > max)
		return smg_lines_err(&ps->in, "%s: 0..%llu, not '%.32s'", what,
				     (unsigned long long)max, v);
	*out = (unsigned)u;
	return SMG_OK;
}

/* limit vm|total|peer memory=SIZE disk=SIZE vcpus=N disks=N nics=N sessions=N */
static int parse_limit(struct hd_parser *ps, char **tok, int ntok)
{
	struct smg_hostdef_limits *l;
	int r = SMG_OK;

	if (ntok < 3)
		return smg_lines_err(&ps->in, "usage: limit vm|total|peer key=value ...");
	if (!strcmp(tok[1], "vm"))
		l = &ps->d->vm;
	else if (!strcmp(tok[1], "total"))
		l = &ps->d->total;
	else if (!strcmp(tok[1], "peer"))
		l = &ps->d->peer;
	else
		return smg_lines_err(&ps->in, "limit: vm, total or peer, not '%.32s'",
				     tok[1]);
	for (int i = 2; i < ntok && r == SMG_OK; i++) {
		char *eq = strchr(tok[i], '=');
		if (eq == NULL)
			return smg_lines_err(&ps->in, "limit: '%.64s' is not key=value",
					     tok[i]);
		*eq = '\0';
		const char *k = tok[i], *v = eq + 1;
		if (!strcmp(k, "memory"))
			r = parse_size_tok(ps, "memory", v, SMG_HOSTDEF_SIZE_MAX,
					   &l->memory);
		else if (!strcmp(k, "disk"))
			r = parse_size_tok(ps, "disk", v, SMG_HOSTDEF_SIZE_MAX, &l->disk);
		else if (!strcmp(k, "vcpus"))
			r = parse_count(ps, "vcpus", v, SMG_HOSTDEF_VCPUS_MAX, &l->vcpus);
		else if (!strcmp(k, "disks"))
			r = parse_count(ps, "disks", v, SMG_HOSTDEF_COUNT_MAX, &l->disks);
		else if (!strcmp(k, "nics"))
			r = parse_count(ps, "nics", v, SMG_HOSTDEF_COUNT_MAX, &l->nics);
		else if (!strcmp(k, "sessions"))
			r = parse_count(ps, "sessions", v, SMG_HOSTDEF_COUNT_MAX,
					&l->sessions);
		else
			return smg_lines_err(&ps->in, "limit: unknown key '%.32s'", k);
	}
	return r;
}

static int vm_path(struct hd_parser *ps, char **tok, int ntok, char *out)
{
	if (ntok != 2 || !path_ok(tok[1]))
		return smg_lines_err(
		    &ps->in,
		    "%s: one absolute path without spaces, commas, quotes or "
		    "'..'",
		    tok[0]);
	snprintf(out, SMG_HOSTDEF_PATH_MAX, "%s", tok[1]);
	return SMG_OK;
}

static int parse_types(struct hd_parser *ps, char **tok, int ntok)
{
	static const char *const names[] = {"pv", "pvh", "hvm"};

	ps->vm->types = 0;
	for (int i = 1; i < ntok; i++) {
		unsigned t;
		for (t = 0; t < SMG_ARRAY_LEN(names); t++)
			if (!strcmp(tok[i], names[t]))
				break;
		if (t == SMG_ARRAY_LEN(names))
			return smg_lines_err(&ps->in, "type: pv, pvh or hvm, not '%.16s'",
					     tok[i]);
		ps->vm->types |= 1u << t;
	}
	return ntok > 1 ? SMG_OK
			: smg_lines_err(&ps->in, "type: at least one of pv, pvh, hvm");
}

static int vm_keyword(struct hd_parser *ps, char **tok, int ntok)
{
	struct smg_hostdef_vm *vm = ps->vm;
	const char *k = tok[0];

	if (!strcmp(k, "from")) {
		for (int i = 1; i < ntok; i++) {
			if (vm->n_from >= SMG_HOSTDEF_FROM_MAX)
				return smg_lines_err(&ps->in, "from: at most %d peers",
						     SMG_HOSTDEF_FROM_MAX);
			if (!smg_name_ok(tok[i], SMG_HOSTDEF_NAME_MAX))
				return smg_lines_err(
				    &ps->in, "from: peer names of [A-Za-z0-9._-]");
			snprintf(vm->from[vm->n_from++], SMG_HOSTDEF_NAME_MAX, "%s",
				 tok[i]);
		}
		return ntok > 1 ? SMG_OK
				: smg_lines_err(&ps->in, "from: at least one peer");
	}
	if (ntok == 2 && !strcmp(k, "memory"))
		return parse_size_tok(ps, k, tok[1], SMG_HOSTDEF_SIZE_MAX,
				      &vm->max.memory);
	if (ntok == 2 && !strcmp(k, "vcpus"))
		return parse_count(ps, k, tok[1], SMG_HOSTDEF_VCPUS_MAX, &vm->max.vcpus);
	if (ntok == 2 && !strcmp(k, "disks"))
		return parse_count(ps, k, tok[1], SMG_HOSTDEF_COUNT_MAX, &vm->max.disks);
	if (ntok == 2 && !strcmp(k, "disk-size"))
		return parse_size_tok(ps, k, tok[1], SMG_HOSTDEF_SIZE_MAX, &vm->max.disk);
	if (!strcmp(k, "nic"))
		return parse_nic(ps, tok, ntok);
	if (!strcmp(k, "kernel"))
		return vm_path(ps, tok, ntok, vm->kernel);
	if (!strcmp(k, "ramdisk"))
		return vm_path(ps, tok, ntok, vm->ramdisk);
	if (!strcmp(k, "firmware"))
		return vm_path(ps, tok, ntok, vm->firmware);
	if (!strcmp(k, "cmdline")) {
		size_t off = 0;
		vm->cmdline[0] = '\0';
		for (int i = 1; i < ntok; i++) {
			int n = snprintf(vm->cmdline + off, sizeof(vm->cmdline) - off,
					 "%s%s", i > 1 ? " " : "", tok[i]);
			if (n < 0 || (size_t)n >= sizeof(vm->cmdline) - off ||
			    strpbrk(tok[i], "\"\\") != NULL)
				return smg_lines_err(
				    &ps->in, "cmdline: at most %d bytes, no quotes",
				    SMG_HOSTDEF_PATH_MAX - 1);
			off += (size_t)n;
		}
		return SMG_OK;
	}
	if (!strcmp(k, "type"))
		return parse_types(ps, tok, ntok);
	if (ntok == 2 && !strcmp(k, "vtpm")) {
		if (strcmp(tok[1], "yes") && strcmp(tok[1], "no"))
			return smg_lines_err(&ps->in, "vtpm: yes or no");
		vm->vtpm = tok[1][0] == 'y';
		return SMG_OK;
	}
	return smg_lines_err(&ps->in, "unknown or malformed line '%.32s' in a vm block",
			     k);
}

static int new_vm(struct hd_parser *ps, char **tok, int ntok)
{
	struct smg_hostdef *d = ps->d;
	struct smg_hostdef_vm *vm;

	if (ntok != 2 || strlen(tok[1]) == 0 || strlen(tok[1]) >= SMG_HOSTDEF_NAME_MAX)
		return smg_lines_err(&ps->in,
				     "usage: vm PATTERN (a domain name or a glob)");
	for (const char *c = tok[1]; *c; c++)
		if (!isalnum((unsigned char)*c) && strchr("._-*?", *c) == NULL)
			return smg_lines_err(&ps->in,
					     "vm: a pattern of [A-Za-z0-9._-*?]");
	if (d->n_vms >= SMG_HOSTDEF_VMS_MAX)
		return smg_lines_err(&ps->in, "more than %d vm blocks",
				     SMG_HOSTDEF_VMS_MAX);
	if ((d->n_vms & (d->n_vms - 1)) == 0) { /* grow at powers of two */
		size_t cap = d->n_vms ? 2 * (size_t)d->n_vms : 1;
		vm = realloc(d->vms, cap * sizeof(*vm));
		if (vm == NULL)
			return SMG_ERR_NOMEM;
		d->vms = vm;
	}
	vm = &d->vms[d->n_vms++];
	memset(vm, 0, sizeof(*vm));
	snprintf(vm->pattern, sizeof(vm->pattern), "%s", tok[1]);
	vm->types = SMG_HOSTDEF_TYPE_PVH | SMG_HOSTDEF_TYPE_HVM;
	ps->vm = vm;
	return SMG_OK;
}

static int top_keyword(struct hd_parser *ps, char **tok, int ntok)
{
	struct smg_hostdef *d = ps->d;
	const char *k = tok[0];

	if (!strcmp(k, "storage")) {
		if (ntok != 2 || !path_ok(tok[1]))
			return smg_lines_err(&ps->in,
					     "storage: one absolute directory path");
		snprintf(d->storage, sizeof(d->storage), "%s", tok[1]);
		return SMG_OK;
	}
	if (!strcmp(k, "bridge")) {
		for (int i = 1; i < ntok; i++) {
			if (d->n_bridges >= SMG_HOSTDEF_BRIDGES_MAX)
				return smg_lines_err(&ps->in, "at most %d bridges",
						     SMG_HOSTDEF_BRIDGES_MAX);
			if (!smg_name_ok(tok[i], SMG_HOSTDEF_IFNAME_MAX))
				return smg_lines_err(&ps->in,
						     "bridge: an interface name (1-15 of "
						     "[A-Za-z0-9._-])");
			snprintf(d->bridges[d->n_bridges++], SMG_HOSTDEF_IFNAME_MAX, "%s",
				 tok[i]);
		}
		return ntok > 1 ? SMG_OK
				: smg_lines_err(&ps->in, "bridge: at least one name");
	}
	if (!strcmp(k, "limit"))
		return parse_limit(ps, tok, ntok);
	return smg_lines_err(&ps->in, "unknown or misplaced keyword '%.32s'", k);
}

static void defaults(struct smg_hostdef *d)
{
	d->vm = (struct smg_hostdef_limits){.memory = SMG_HOSTDEF_VM_MEMORY_DEFAULT,
					    .disk = SMG_HOSTDEF_VM_DISK_DEFAULT,
					    .vcpus = SMG_HOSTDEF_VM_VCPUS_DEFAULT,
					    .disks = SMG_HOSTDEF_VM_DISKS_DEFAULT,
					    .nics = SMG_HOSTDEF_NICS_MAX,
					    .sessions = 1};
	d->total = (struct smg_hostdef_limits){.memory = SMG_HOSTDEF_TOTAL_MEMORY_DEFAULT,
					       .disk = SMG_HOSTDEF_TOTAL_DISK_DEFAULT,
					       .vcpus = SMG_HOSTDEF_VCPUS_MAX,
					       .disks = SMG_HOSTDEF_COUNT_MAX,
					       .nics = SMG_HOSTDEF_COUNT_MAX,
					       .sessions = SMG_HOSTDEF_SESSIONS_DEFAULT};
	d->peer = d->total;
}

static int check_line(struct hd_parser *ps, char *line)
{
	char *tok[TOKENS_MAX];
	int ntok;

	for (char *c = line; *c; c++)
		if ((unsigned char)*c < ' ' && *c != '\t')
			return smg_lines_err(&ps->in, "control character");
	if ((ntok = smg_words_split(line, " \t", tok, TOKENS_MAX)) < 0)
		return smg_lines_err(&ps->in, "more than %d words", TOKENS_MAX);
	if (ntok == 0)
		return SMG_OK;
	if (!strcmp(tok[0], "vm"))
		return new_vm(ps, tok, ntok);
	if (ps->vm != NULL)
		return vm_keyword(ps, tok, ntok);
	return top_keyword(ps, tok, ntok);
}

int smg_hostdef_parse(const char *text, size_t len, const char *name,
		      struct smg_hostdef **out, char *err, size_t err_len)
{
	struct hd_parser ps = {0};
	char line[SMG_HOSTDEF_LINE_MAX + 1];
	int n, r = SMG_OK;

	*out = NULL;
	smg_lines_init(&ps.in, text, len, name != NULL ? name : "defs", err, err_len);
	if (len > SMG_HOSTDEF_FILE_MAX)
		return smg_lines_err(&ps.in, "longer than %d bytes",
				     SMG_HOSTDEF_FILE_MAX);
	if ((ps.d = calloc(1, sizeof(*ps.d))) == NULL)
		return SMG_ERR_NOMEM;
	defaults(ps.d);
	while ((n = smg_lines_next(&ps.in, line, SMG_HOSTDEF_LINE_MAX)) > 0 &&
	       (r = check_line(&ps, line)) == SMG_OK)
		;
	if (n == SMG_ERR_TOO_LONG)
		r = smg_lines_err(&ps.in, "line longer than %d bytes",
				  SMG_HOSTDEF_LINE_MAX);
	else if (n < 0)
		r = smg_lines_err(&ps.in, "NUL byte");
	if (r == SMG_OK && ps.d->storage[0] == '\0') {
		ps.in.line = 0;
		r = smg_lines_err(
		    &ps.in, "missing 'storage DIR' (where incoming disk images go)");
	}
	if (r != SMG_OK) {
		smg_hostdef_free(ps.d);
		return r;
	}
	*out = ps.d;
	return SMG_OK;
}

int smg_file_check_private(int fd, const char *path, char *err, size_t err_len)
{
	struct stat st;

	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, err_len, "%s: not a regular file", path);
		return SMG_ERR_CONFIG;
	}
	/* Someone else could rewrite what this host trusts. */
	if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0 ||
	    (st.st_uid != geteuid() && st.st_uid != 0)) {
		snprintf(err, err_len,
			 "%s: writable by group or others, or owned by another user "
			 "(chmod go-w, chown): refused",
			 path);
		return SMG_ERR_PERM;
	}
	return SMG_OK;
}

int smg_file_read_private(const char *path, size_t cap, char **text, size_t *len,
			  char *err, size_t err_len)
{
	struct stat st;
	char *buf;
	size_t got = 0;
	int fd, r;

	*text = NULL;
	*len = 0;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0) {
		snprintf(err, err_len, "%s: %s", path, strerror(errno));
		return SMG_ERR_CONFIG;
	}
	if ((r = smg_file_check_private(fd, path, err, err_len)) != SMG_OK) {
		close(fd);
		return r;
	}
	if (fstat(fd, &st) != 0 || (uint64_t)st.st_size > cap) {
		snprintf(err, err_len, "%s: longer than %zu bytes", path, cap);
		close(fd);
		return SMG_ERR_CONFIG;
	}
	if ((buf = malloc((size_t)st.st_size + 1)) == NULL) {
		close(fd);
		return SMG_ERR_NOMEM;
	}
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	buf[got] = '\0';
	*text = buf;
	*len = got;
	return SMG_OK;
}

int smg_hostdef_load(const char *path, struct smg_hostdef **out, char *err,
		     size_t err_len)
{
	char *text;
	size_t len;
	int r;

	*out = NULL;
	if ((r = smg_file_read_private(path, SMG_HOSTDEF_FILE_MAX, &text, &len, err,
				       err_len)) != SMG_OK)
		return r;
	r = smg_hostdef_parse(text, len, path, out, err, err_len);
	free(text);
	return r;
}

void smg_hostdef_free(struct smg_hostdef *d)
{
	if (d == NULL)
		return;
	free(d->vms);
	free(d);
}

const struct smg_hostdef_vm *smg_hostdef_find(const struct smg_hostdef *d,
					      const char *domain, const char *peer)
{
	if (d == NULL || domain == NULL)
		return NULL;
	for (unsigned i = 0; i < d->n_vms; i++) {
		const struct smg_hostdef_vm *vm = &d->vms[i];
		bool from = vm->n_from == 0;

		if (fnmatch(vm->pattern, domain, 0) != 0)
			continue;
		for (unsigned j = 0; j < vm->n_from && !from && peer != NULL; j++)
			from = strcmp(vm->from[j], peer) == 0;
		if (from)
			return vm; /* first block naming this domain and peer */
	}
	return NULL;
}

bool smg_peer_is_owner(int fd)
{
	struct ucred uc;
	socklen_t len = sizeof(uc);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &len) != 0 || len != sizeof(uc))
		return false;
	return uc.uid == 0 || uc.uid == geteuid();
}
