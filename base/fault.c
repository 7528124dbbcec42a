/* Fault-injection points: see fault.h for the spec language. The spec is
 * read once from SMG_FI; a point that fires logs one line naming itself so
 * a test can tell which point ended the process. */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/base.h"
#include "base/fault.h"

enum fi_action { FI_OFF = 0, FI_ERR, FI_KILL, FI_EXIT, FI_STALL };

struct fi_point {
	enum fi_action action;
	unsigned stall_ms;
	unsigned hit; /* fire on this hit (1-based) */
	atomic_uint hits;
};

static const char *const fi_names[SMG_FI_MAX_] = {
    [SMG_FI_HANDSHAKE] = "handshake",
    [SMG_FI_ROUND0] = "round0",
    [SMG_FI_ROUND] = "round",
    [SMG_FI_STOP_COPY] = "stop_copy",
    [SMG_FI_BEFORE_READY] = "before_ready",
    [SMG_FI_AFTER_READY] = "after_ready",
    [SMG_FI_AFTER_COMMIT] = "after_commit",
    [SMG_FI_AFTER_DONE] = "after_done",
    [SMG_FI_ANNOUNCE] = "announce",
};

static struct fi_point fi_points[SMG_FI_MAX_];
static atomic_bool fi_armed;
static pthread_once_t fi_once = PTHREAD_ONCE_INIT;

const char *smg_fi_name(enum smg_fi point)
{
	return (unsigned)point < SMG_FI_MAX_ ? fi_names[point] : "unknown";
}

int smg_fi_lookup(const char *name)
{
	for (int i = 0; i < SMG_FI_MAX_; i++)
		if (strcmp(fi_names[i], name) == 0)
			return i;
	return -1;
}

static int parse_uint(const char *s, unsigned max, unsigned *out)
{
	char *end;
	unsigned long v;

	if (*s < '0' || *s > '9')
		return SMG_ERR_INVAL;
	v = strtoul(s, &end, 10);
	if (*end != '\0' || v > max)
		return SMG_ERR_INVAL;
	*out = (unsigned)v;
	return SMG_OK;
}

/* "point=action[:ms][@hit]" into pts. */
static int parse_item(char *item, struct fi_point *pts)
{
	char *eq = strchr(item, '='), *at, *colon;
	struct fi_point p = {.hit = 1};
	int idx;

	if (eq == NULL)
		return SMG_ERR_INVAL;
	*eq = '\0';
	if ((idx = smg_fi_lookup(item)) < 0)
		return SMG_ERR_INVAL;
	if ((at = strchr(eq + 1, '@')) != NULL) {
		*at = '\0';
		if (parse_uint(at + 1, 1000000, &p.hit) != 0 || p.hit == 0)
			return SMG_ERR_INVAL;
	}
	if ((colon = strchr(eq + 1, ':')) != NULL)
		*colon = '\0';
	if (strcmp(eq + 1, "err") == 0)
		p.action = FI_ERR;
	else if (strcmp(eq + 1, "kill") == 0)
		p.action = FI_KILL;
	else if (strcmp(eq + 1, "exit") == 0)
		p.action = FI_EXIT;
	else if (strcmp(eq + 1, "stall") == 0 && colon != NULL &&
		 parse_uint(colon + 1, 3600 * 1000, &p.stall_ms) == 0)
		p.action = FI_STALL;
	else
		return SMG_ERR_INVAL;
	if (colon != NULL && p.action != FI_STALL)
		return SMG_ERR_INVAL;
	pts[idx].action = p.action;
	pts[idx].stall_ms = p.stall_ms;
	pts[idx].hit = p.hit;
	return SMG_OK;
}

static int install(const char *spec)
{
	struct fi_point pts[SMG_FI_MAX_];
	char buf[SMG_FI_SPEC_MAX], *item, *save = NULL;
	bool any = false;
	int r;

	memset(pts, 0, sizeof(pts));
	if (strlen(spec) >= sizeof(buf))
		return SMG_ERR_INVAL;
	memcpy(buf, spec, strlen(spec) + 1);
	for (item = strtok_r(buf, ",", &save); item != NULL;
	     item = strtok_r(NULL, ",", &save)) {
		if ((r = parse_item(item, pts)) != 0)
			return r;
		any = true;
	}
	for (int i = 0; i < SMG_FI_MAX_; i++) {
		fi_points[i].action = pts[i].action;
		fi_points[i].stall_ms = pts[i].stall_ms;
		fi_points[i].hit = pts[i].hit;
		atomic_store(&fi_points[i].hits, 0);
	}
	atomic_store(&fi_armed, any);
	return SMG_OK;
}

static void init_from_env(void)
{
	const char *spec = getenv("SMG_FI");

	if (spec == NULL || *spec == '\0')
		return;
	if (install(spec) != 0) {
		/* A typo must not silently run a test without its fault. */
		smg_err("fault: bad SMG_FI spec '%.200s' (want "
			"point=err|kill|exit|stall:MS[@N])",
			spec);
		_exit(SMG_FI_EXIT_CODE);
	}
}

int smg_fi_set(const char *spec)
{
	pthread_once(&fi_once, init_from_env);
	return install(spec);
}

int smg_fi_check(enum smg_fi point)
{
	struct fi_point *p;
	struct timespec ts;

	pthread_once(&fi_once, init_from_env);
	if (!atomic_load_explicit(&fi_armed, memory_order_relaxed) ||
	    (unsigned)point >= SMG_FI_MAX_)
		return SMG_OK;
	p = &fi_points[point];
	if (p->action == FI_OFF || atomic_fetch_add(&p->hits, 1) + 1 != p->hit)
		return SMG_OK;
	smg_warn("fault: point %s fired", fi_names[point]);
	switch (p->action) {
	case FI_ERR:
		return SMG_ERR_FAULT;
	case FI_KILL:
		raise(SIGKILL);
		_exit(SMG_FI_EXIT_CODE); /* not reached */
	case FI_EXIT:
		_exit(SMG_FI_EXIT_CODE);
	case FI_STALL:
		ts.tv_sec = p->stall_ms / 1000;
		ts.tv_nsec = (long)(p->stall_ms % 1000) * 1000000L;
		while (nanosleep(&ts, &ts) != 0)
			;
		return SMG_OK;
	case FI_OFF:
		break;
	}
	return SMG_OK;
}
