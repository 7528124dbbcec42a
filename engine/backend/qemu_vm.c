/* The qemu VM definition: "key = value" lines, '#' comments, like a sim
 * config. Each host owns one per VM (STATE_DIR/qemu/NAME.vm, docs/qemu.md);
 * the migration plan carries a description in the same syntax with only
 * the guest-visible keys, which a destination parses as untrusted bytes
 * and matches against its own definition. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/base.h"
#include "engine/backend/qemu_internal.h"

#define DEFAULT_QEMU	"/usr/bin/qemu-system-x86_64"
#define DEFAULT_MACHINE "pc"
#define DEFAULT_ACCEL	"kvm"
#define DEFAULT_MODEL	"e1000"
#define DESCRIBE_MAX	4096u

struct pctx {
	enum smg_qemu_def_mode mode;
	struct smg_lines in; /* the text, its line, the error */
};

static bool charset_ok(const char *s, const char *extra)
{
	for (; *s != '\0'; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || strchr(extra, *s) != NULL))
			return false;
	return true;
}

bool smg_qemu_name_ok(const char *s)
{
	return smg_name_ok(s, SMG_DOMAIN_NAME_MAX);
}

static bool token_ok(const char *s, size_t cap)
{
	size_t n = strlen(s);

	return n > 0 && n < cap && s[0] != '-' && charset_ok(s, "._-");
}

/* Absolute, no "..", and nothing QEMU's option parser would split on (a
 * comma) or a shell-free argv could still trip over (blanks, quotes). */
static bool path_ok(const char *s)
{
	return s[0] == '/' && strlen(s) < SMG_QEMU_VALUE_MAX && strstr(s, "..") == NULL &&
	       charset_ok(s, "/._-+@:");
}

/* "10.0.0.5[/24]" or "fd00::5[/64]" into the NIC. */
static int parse_addr(char *v, bool v6, struct smg_qemu_nic *n)
{
	unsigned *cnt = v6 ? &n->id.n_ipv6 : &n->id.n_ipv4;
	uint64_t pfx = v6 ? 128 : 32;
	char *slash = strchr(v, '/');

	if (*cnt == SMG_DOMAIN_IPS_MAX)
		return -1;
	if (slash != NULL) {
		*slash = '\0';
		if (smg_parse_uint(slash + 1, v6 ? 128 : 32, &pfx) != 0 || pfx == 0)
			return -1;
	}
	if (inet_pton(v6 ? AF_INET6 : AF_INET, v,
		      v6 ? (void *)n->id.ipv6[*cnt] : (void *)n->id.ipv4[*cnt]) != 1)
		return -1;
	(v6 ? n->prefix6 : n->prefix4)[*cnt] = (uint8_t)pfx;
	(*cnt)++;
	return 0;
}

static bool plan_key_ok(const char *k)
{
	return strcmp(k, "mac") == 0 || strcmp(k, "ipv4") == 0 || strcmp(k, "ipv6") == 0;
}

/* nic = mac=..,tap=..,bridge=..,model=..,ipv4=..,ipv6=.. */
static int parse_nic(struct pctx *p, char *v, struct smg_qemu_nic *n)
{
	bool have_mac = false;
	char *save = NULL;

	memset(n, 0, sizeof(*n));
	snprintf(n->model, sizeof(n->model), "%s", DEFAULT_MODEL);
	for (char *t = strtok_r(v, ",", &save); t != NULL;
	     t = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(t, '=');
		if (eq == NULL)
			return smg_lines_err(&p->in, "nic: '%.32s' is not key=value", t);
		*eq = '\0';
		char *k = smg_trim(t), *val = smg_trim(eq + 1);
		if (p->mode == SMG_QEMU_DEF_PLAN && !plan_key_ok(k)) {
			smg_lines_err(&p->in,
				      "nic: the sender names '%.16s' (a host resource): "
				      "refused",
				      k);
			return SMG_ERR_POLICY;
		}
		if (strcmp(k, "mac") == 0) {
			if (smg_mac_parse_nic(val, n->id.mac) != 0)
				return smg_lines_err(&p->in, "nic: bad mac");
			have_mac = true;
		} else if (strcmp(k, "ipv4") == 0 || strcmp(k, "ipv6") == 0) {
			if (parse_addr(val, k[3] == '6', n) != 0)
				return smg_lines_err(&p->in, "nic: bad or too many %s",
						     k);
		} else if (strcmp(k, "tap") == 0 || strcmp(k, "bridge") == 0) {
			char *dst = k[0] == 't' ? n->tap : n->bridge;
			if (!token_ok(val, SMG_QEMU_IFNAME_MAX))
				return smg_lines_err(&p->in, "nic: bad interface name");
			snprintf(dst, SMG_QEMU_IFNAME_MAX, "%s", val);
		} else if (strcmp(k, "model") == 0) {
			if (!token_ok(val, sizeof(n->model)))
				return smg_lines_err(&p->in, "nic: bad model");
			snprintf(n->model, sizeof(n->model), "%s", val);
		} else {
			return smg_lines_err(&p->in, "nic: unknown key '%.16s'", k);
		}
	}
	if (!have_mac)
		return smg_lines_err(&p->in, "nic: needs mac=");
	if (p->mode == SMG_QEMU_DEF_LOCAL && (n->tap[0] == '\0' || n->bridge[0] == '\0'))
		return smg_lines_err(&p->in, "nic: needs tap= and bridge=");
	return SMG_OK;
}

/* disk = export=NAME,nbd=SOCKET[,shared=yes] */
static int parse_disk(struct pctx *p, char *v, struct smg_qemu_disk *d)
{
	char *save = NULL;

	memset(d, 0, sizeof(*d));
	for (char *t = strtok_r(v, ",", &save); t != NULL;
	     t = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(t, '=');
		if (eq == NULL)
			return smg_lines_err(&p->in, "disk: '%.32s' is not key=value", t);
		*eq = '\0';
		char *k = smg_trim(t), *val = smg_trim(eq + 1);
		if (strcmp(k, "export") == 0) {
			if (!token_ok(val, sizeof(d->export_name)) || val[0] == '.')
				return smg_lines_err(&p->in, "disk: bad export name");
			snprintf(d->export_name, sizeof(d->export_name), "%s", val);
		} else if (strcmp(k, "nbd") == 0) {
			if (!path_ok(val) || strlen(val) >= sizeof(d->nbd))
				return smg_lines_err(
				    &p->in,
				    "disk: nbd= must be an absolute socket path "
				    "under %u bytes",
				    SMG_QEMU_SUN_MAX);
			snprintf(d->nbd, sizeof(d->nbd), "%s", val);
		} else if (strcmp(k, "shared") == 0) {
			if (strcmp(val, "yes") != 0 && strcmp(val, "no") != 0)
				return smg_lines_err(&p->in, "disk: shared=yes|no");
			d->shared = val[0] == 'y';
		} else {
			return smg_lines_err(&p->in, "disk: unknown key '%.16s'", k);
		}
	}
	if (d->export_name[0] == '\0' || d->nbd[0] == '\0')
		return smg_lines_err(&p->in, "disk: needs export= and nbd=");
	return SMG_OK;
}

static int parse_labels(struct pctx *p, char *v, struct smg_qemu_vm *vm)
{
	char *save = NULL;

	for (char *t = strtok_r(v, " \t", &save); t != NULL;
	     t = strtok_r(NULL, " \t", &save)) {
		char *eq = strchr(t, '=');
		if (vm->n_labels == SMG_DOMAIN_LABELS_MAX || eq == NULL || eq == t ||
		    strlen(t) >= SMG_DOMAIN_LABEL_MAX || !charset_ok(t, "._-="))
			return smg_lines_err(&p->in,
					     "placement: at most %u key=value labels of "
					     "[A-Za-z0-9._-]",
					     SMG_DOMAIN_LABELS_MAX);
		snprintf(vm->labels[vm->n_labels++], SMG_DOMAIN_LABEL_MAX, "%s", t);
	}
	return SMG_OK;
}

/* Keys that name something on this host: never taken from a sender. */
static const char *const local_only[] = {
    "qemu", "kernel", "initrd", "cmdline", "firmware", "ram", "serial", "accel", "disk"};

static int set_path(struct pctx *p, const char *k, const char *v, char *dst)
{
	if (!path_ok(v))
		return smg_lines_err(
		    &p->in, "%s: an absolute path without '..', blanks or commas", k);
	snprintf(dst, SMG_QEMU_VALUE_MAX, "%s", v);
	return SMG_OK;
}

static int parse_scalar(struct pctx *p, const char *k, char *v, struct smg_qemu_vm *vm)
{
	uint64_t u;

	if (strcmp(k, "name") == 0) {
		if (!smg_qemu_name_ok(v))
			return smg_lines_err(&p->in, "name: 1-63 of [A-Za-z0-9._-]");
		snprintf(vm->name, sizeof(vm->name), "%s", v);
	} else if (strcmp(k, "memory") == 0) {
		if (smg_parse_size(v, &u) != 0 || u < SMG_QEMU_MEM_MIN ||
		    u > SMG_QEMU_MEM_MAX || u % (2u << 20) != 0)
			return smg_lines_err(
			    &p->in, "memory: a multiple of 2M between 16M and 1T");
		vm->mem_bytes = u;
	} else if (strcmp(k, "vcpus") == 0) {
		if (smg_parse_uint(v, SMG_QEMU_VCPUS_MAX, &u) != 0 || u == 0)
			return smg_lines_err(&p->in, "vcpus: 1..%u", SMG_QEMU_VCPUS_MAX);
		vm->vcpus = (unsigned)u;
	} else if (strcmp(k, "machine") == 0 || strcmp(k, "accel") == 0) {
		char *dst = k[0] == 'm' ? vm->machine : vm->accel;
		if (!token_ok(v, SMG_QEMU_TOKEN_MAX))
			return smg_lines_err(&p->in, "%s: [A-Za-z0-9._-]", k);
		snprintf(dst, SMG_QEMU_TOKEN_MAX, "%s", v);
	} else if (strcmp(k, "vtpm") == 0) {
		if (strcmp(v, "yes") != 0 && strcmp(v, "no") != 0)
			return smg_lines_err(&p->in, "vtpm: yes or no");
		vm->vtpm = v[0] == 'y';
	} else if (strcmp(k, "cmdline") == 0) {
		/* One argv element; QEMU never splits -append. */
		if (strlen(v) >= SMG_QEMU_VALUE_MAX || strchr(v, '\n') != NULL)
			return smg_lines_err(&p->in, "cmdline: too long");
		snprintf(vm->cmdline, sizeof(vm->cmdline), "%s", v);
	} else if (strcmp(k, "qemu") == 0 || strcmp(k, "kernel") == 0 ||
		   strcmp(k, "initrd") == 0 || strcmp(k, "firmware") == 0 ||
		   strcmp(k, "ram") == 0 || strcmp(k, "serial") == 0) {
		char *dst = strcmp(k, "qemu") == 0	 ? vm->qemu
			    : strcmp(k, "kernel") == 0	 ? vm->kernel
			    : strcmp(k, "initrd") == 0	 ? vm->initrd
			    : strcmp(k, "firmware") == 0 ? vm->firmware
			    : strcmp(k, "ram") == 0	 ? vm->ram
							 : vm->serial;
		return set_path(p, k, v, dst);
	} else {
		return smg_lines_err(&p->in, "unknown key '%.32s'", k);
	}
	return SMG_OK;
}

static int parse_line(struct pctx *p, char *k, char *v, struct smg_qemu_vm *vm,
		      unsigned *plan_disks)
{
	uint64_t u;

	if (p->mode == SMG_QEMU_DEF_PLAN)
		for (size_t i = 0; i < SMG_ARRAY_LEN(local_only); i++)
			if (strcmp(k, local_only[i]) == 0) {
				smg_lines_err(&p->in,
					      "the sender's description names '%s' (a "
					      "host resource): refused",
					      k);
				return SMG_ERR_POLICY;
			}
	if (strcmp(k, "nic") == 0) {
		if (vm->n_nics == SMG_DOMAIN_NICS_MAX)
			return smg_lines_err(&p->in, "at most %u NICs",
					     SMG_DOMAIN_NICS_MAX);
		return parse_nic(p, v, &vm->nics[vm->n_nics++]);
	}
	if (strcmp(k, "disk") == 0) {
		if (vm->n_disks == SMG_DOMAIN_DISKS_MAX)
			return smg_lines_err(&p->in, "at most %u disks",
					     SMG_DOMAIN_DISKS_MAX);
		return parse_disk(p, v, &vm->disks[vm->n_disks++]);
	}
	if (strcmp(k, "placement") == 0)
		return parse_labels(p, v, vm);
	if (strcmp(k, "disks") == 0) {
		/* PLAN only: how many disks travel (the engine's plan has them). */
		if (p->mode != SMG_QEMU_DEF_PLAN ||
		    smg_parse_uint(v, SMG_DOMAIN_DISKS_MAX, &u) != 0)
			return smg_lines_err(&p->in, "disks: 0..%u in a description",
					     SMG_DOMAIN_DISKS_MAX);
		*plan_disks = (unsigned)u;
		return SMG_OK;
	}
	return parse_scalar(p, k, v, vm);
}

static void set_defaults(struct smg_qemu_vm *vm)
{
	memset(vm, 0, sizeof(*vm));
	vm->vcpus = 1;
	snprintf(vm->machine, sizeof(vm->machine), "%s", DEFAULT_MACHINE);
	snprintf(vm->accel, sizeof(vm->accel), "%s", DEFAULT_ACCEL);
	snprintf(vm->qemu, sizeof(vm->qemu), "%s", DEFAULT_QEMU);
}

static int check_complete(struct pctx *p, struct smg_qemu_vm *vm, unsigned plan_disks)
{
	p->in.line = 0;
	if (vm->name[0] == '\0')
		return smg_lines_err(&p->in, "name is required");
	if (vm->mem_bytes == 0)
		return smg_lines_err(&p->in, "memory is required");
	if (p->mode == SMG_QEMU_DEF_PLAN) {
		/* a description lists migrated disks by count: mark them */
		vm->n_disks = plan_disks;
		return SMG_OK;
	}
	if (vm->ram[0] == '\0')
		return smg_lines_err(&p->in, "ram is required (the shared RAM file)");
	/* A disk that travels is disk k of the domain in the disk service,
	 * named NAME.k on every host (docs/storage.md). */
	for (unsigned i = 0, k = 0; i < vm->n_disks; i++) {
		char want[SMG_QEMU_EXPORT_MAX];

		if (vm->disks[i].shared)
			continue;
		snprintf(want, sizeof(want), "%s.%u", vm->name, k++);
		if (strcmp(vm->disks[i].export_name, want) != 0)
			return smg_lines_err(
			    &p->in,
			    "disk: the disk service names this disk %s (or say "
			    "shared=yes)",
			    want);
	}
	if (vm->kernel[0] == '\0' && (vm->initrd[0] != '\0' || vm->cmdline[0] != '\0'))
		return smg_lines_err(&p->in, "initrd and cmdline need kernel");
	return SMG_OK;
}

int smg_qemu_vm_parse(const char *text, size_t len, enum smg_qemu_def_mode mode,
		      struct smg_qemu_vm *vm, char *err, size_t errlen)
{
	struct pctx p = {.mode = mode};
	char line[SMG_QEMU_LINE_MAX + 1], *k, *v;
	unsigned plan_disks = 0;
	int n, r;

	set_defaults(vm);
	smg_lines_init(&p.in, text, len, NULL, err, errlen);
	if (len > SMG_DOMAIN_CONFIG_MAX)
		return smg_lines_err(&p.in, "longer than %u bytes",
				     SMG_DOMAIN_CONFIG_MAX);
	while ((n = smg_lines_next(&p.in, line, SMG_QEMU_LINE_MAX)) > 0) {
		char *s = smg_trim(line);

		if (*s == '\0')
			continue;
		if (smg_key_value(s, &k, &v) != SMG_OK)
			return smg_lines_err(&p.in, "expected key = value");
		if ((r = parse_line(&p, k, v, vm, &plan_disks)) != SMG_OK)
			return r;
	}
	if (n < 0)
		return n == SMG_ERR_TOO_LONG
			   ? smg_lines_err(&p.in, "line longer than %u bytes",
					   SMG_QEMU_LINE_MAX)
			   : smg_lines_err(&p.in, "NUL byte");
	return check_complete(&p, vm, plan_disks);
}

int smg_qemu_path(const char *state_dir, const char *name, const char *suffix, char *out,
		  size_t cap)
{
	int n;

	if (!smg_qemu_name_ok(name))
		return SMG_ERR_INVAL;
	n = snprintf(out, cap, "%s/%s/%s%s%s", state_dir, SMG_QEMU_SUBDIR, name,
		     suffix[0] != '\0' ? "." : "", suffix);
	return n < 0 || (size_t)n >= cap ? SMG_ERR_TOO_LONG : SMG_OK;
}

int smg_qemu_vm_load(const char *state_dir, const char *name, struct smg_qemu_vm *vm)
{
	char path[SMG_QEMU_VALUE_MAX + 64], err[256], *buf = NULL;
	struct stat st;
	ssize_t n;
	int fd, r;

	if ((r = smg_qemu_path(state_dir, name, "vm", path, sizeof(path))) != SMG_OK)
		return r;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0) {
		smg_err("qemu: no definition of '%s' on this host (%s): %s", name, path,
			strerror(errno));
		return errno == ENOENT ? SMG_ERR_NOT_FOUND : smg_err_sys(errno);
	}
	/* The definition decides what this host runs: only its owner writes it. */
	if (fstat(fd, &st) != 0 || (st.st_mode & 022) != 0 ||
	    (st.st_uid != 0 && st.st_uid != getuid())) {
		smg_err("qemu: %s is writable by others or not ours; chmod go-w", path);
		close(fd);
		return SMG_ERR_PERM;
	}
	if ((buf = malloc(SMG_DOMAIN_CONFIG_MAX + 1)) == NULL) {
		close(fd);
		return SMG_ERR_NOMEM;
	}
	n = read(fd, buf, SMG_DOMAIN_CONFIG_MAX + 1);
	close(fd);
	if (n < 0 || (size_t)n > SMG_DOMAIN_CONFIG_MAX) {
		free(buf);
		smg_err("qemu: %s: unreadable or longer than %u bytes", path,
			SMG_DOMAIN_CONFIG_MAX);
		return SMG_ERR_CONFIG;
	}
	r = smg_qemu_vm_parse(buf, (size_t)n, SMG_QEMU_DEF_LOCAL, vm, err, sizeof(err));
	free(buf);
	if (r != SMG_OK)
		smg_err("qemu: %s: %s", path, err);
	else if (strcmp(vm->name, name) != 0) {
		smg_err("qemu: %s defines '%s', not '%s'", path, vm->name, name);
		r = SMG_ERR_CONFIG;
	}
	return r;
}

static void put(char *buf, size_t cap, size_t *off, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void put(char *buf, size_t cap, size_t *off, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (*off >= cap)
		return;
	va_start(ap, fmt);
	n = vsnprintf(buf + *off, cap - *off, fmt, ap);
	va_end(ap);
	*off = n < 0 ? cap : *off + (size_t)n;
}

static void put_nic(char *buf, size_t cap, size_t *off, const struct smg_qemu_nic *n)
{
	char a[INET6_ADDRSTRLEN];
	const uint8_t *m = n->id.mac;

	put(buf, cap, off, "nic = mac=%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2],
	    m[3], m[4], m[5]);
	for (unsigned i = 0; i < n->id.n_ipv4; i++) {
		inet_ntop(AF_INET, n->id.ipv4[i], a, sizeof(a));
		put(buf, cap, off, ",ipv4=%s/%u", a, n->prefix4[i]);
	}
	for (unsigned i = 0; i < n->id.n_ipv6; i++) {
		inet_ntop(AF_INET6, n->id.ipv6[i], a, sizeof(a));
		put(buf, cap, off, ",ipv6=%s/%u", a, n->prefix6[i]);
	}
	put(buf, cap, off, "\n");
}

int smg_qemu_vm_describe(const struct smg_qemu_vm *vm, char **text, size_t *len)
{
	char *buf;
	size_t off = 0;
	unsigned moving = 0;

	*text = NULL;
	*len = 0;
	if ((buf = malloc(DESCRIBE_MAX)) == NULL)
		return SMG_ERR_NOMEM;
	for (unsigned i = 0; i < vm->n_disks; i++)
		moving += !vm->disks[i].shared;
	put(buf, DESCRIBE_MAX, &off,
	    "name = %s\nmemory = %" PRIu64 "\nvcpus = %u\nmachine = %s\n", vm->name,
	    vm->mem_bytes, vm->vcpus, vm->machine);
	for (unsigned i = 0; i < vm->n_nics; i++)
		put_nic(buf, DESCRIBE_MAX, &off, &vm->nics[i]);
	put(buf, DESCRIBE_MAX, &off, "disks = %u\nvtpm = %s\n", moving,
	    vm->vtpm ? "yes" : "no");
	if (vm->n_labels > 0) {
		put(buf, DESCRIBE_MAX, &off, "placement =");
		for (unsigned i = 0; i < vm->n_labels; i++)
			put(buf, DESCRIBE_MAX, &off, " %s", vm->labels[i]);
		put(buf, DESCRIBE_MAX, &off, "\n");
	}
	if (off >= DESCRIBE_MAX) {
		free(buf);
		return SMG_ERR_TOO_LONG;
	}
	*text = buf;
	*len = off;
	return SMG_OK;
}

static bool same_addrs(const struct smg_qemu_nic *a, const struct smg_qemu_nic *b)
{
	return a->id.n_ipv4 == b->id.n_ipv4 && a->id.n_ipv6 == b->id.n_ipv6 &&
	       memcmp(a->id.ipv4, b->id.ipv4, sizeof(a->id.ipv4[0]) * a->id.n_ipv4) ==
		   0 &&
	       memcmp(a->id.ipv6, b->id.ipv6, sizeof(a->id.ipv6[0]) * a->id.n_ipv6) == 0;
}

int smg_qemu_vm_match(const struct smg_qemu_vm *local, const struct smg_qemu_vm *plan,
		      char *why, size_t whylen)
{
	unsigned moving = 0;
	const char *bad = NULL;

	for (unsigned i = 0; i < local->n_disks; i++)
		moving += !local->disks[i].shared;
	if (strcmp(local->name, plan->name) != 0)
		bad = "name";
	else if (local->mem_bytes != plan->mem_bytes)
		bad = "memory";
	else if (local->vcpus != plan->vcpus)
		bad = "vcpus";
	else if (strcmp(local->machine, plan->machine) != 0)
		bad = "machine type";
	else if (local->vtpm != plan->vtpm)
		bad = "vtpm";
	else if (moving != plan->n_disks)
		bad = "number of migrated disks";
	else if (local->n_nics != plan->n_nics)
		bad = "number of NICs";
	for (unsigned i = 0; bad == NULL && i < local->n_nics; i++)
		if (memcmp(local->nics[i].id.mac, plan->nics[i].id.mac, 6) != 0)
			bad = "a NIC's MAC";
		else if (!same_addrs(&local->nics[i], &plan->nics[i]))
			bad = "a NIC's addresses";
	if (bad == NULL)
		return SMG_OK;
	snprintf(why, whylen, "this host's definition of '%s' differs from the plan: %s",
		 local->name, bad);
	return SMG_ERR_POLICY;
}
