/* MSR Cambridge trace parsing (the committed generated trace has known
 * properties; malformed lines are rejected) and the workload generator
 * replaying it and the synthetic kinds against a real disk. */
#include <time.h>

#include "check.h"
#include "util.h"

struct bad_case {
	const char *name;
	const char *text;
};

static const struct bad_case bad[] = {
    {"empty", ""},
    {"header only", "Timestamp,Hostname,DiskNumber,Type,Offset,Size,ResponseTime\n"},
    {"six fields", "1,hm,0,Read,0,4096\n"},
    {"eight fields", "1,hm,0,Read,0,4096,1,9\n"},
    {"bad type", "1,hm,0,Erase,0,4096,1\n"},
    {"size zero", "1,hm,0,Read,0,0,1\n"},
    {"size huge", "1,hm,0,Read,0,999999999999,1\n"},
    {"offset overflow", "1,hm,0,Read,99999999999999999999,4096,1\n"},
    {"offset wraps", "1,hm,0,Read,18446744073709551615,4096,1\n"},
    {"negative", "1,hm,0,Read,-4096,4096,1\n"},
    {"hex", "1,hm,0,Read,0x10,4096,1\n"},
    {"second line bad", "1,hm,0,Read,0,4096,1\n2,hm,0,Read,,4096,1\n"},
};

static void test_parse(void)
{
	struct smg_trace *t = NULL;
	const char *good =
	    "Timestamp,Hostname,DiskNumber,Type,Offset,Size,ResponseTime\r\n"
	    "128166372000000000,hm,0,Read,4096,512,10\r\n"
	    "\r\n"
	    "128166372000050000,hm,1,write,0,65536,20";
	char path[512], *src = getenv("SMG_SRC");
	size_t i, reads = 0, hot = 0;

	CHECK_EQ(smg_trace_parse((const uint8_t *)good, strlen(good), &t), 0);
	if (t != NULL) {
		CHECK_EQ(t->n, 2);
		CHECK(!t->ops[0].write && t->ops[1].write);
		CHECK_EQ(t->ops[0].offset, 4096);
		CHECK_EQ(t->ops[1].len, 65536);
		CHECK_EQ(t->ops[1].t_us, 5000);
		smg_trace_free(t);
	}
	for (i = 0; i < SMG_ARRAY_LEN(bad); i++) {
		t = (struct smg_trace *)1;
		if (smg_trace_parse((const uint8_t *)bad[i].text, strlen(bad[i].text),
				    &t) == 0)
			fprintf(stderr, "accepted: %s\n", bad[i].name);
		CHECK(t == NULL);
		smg_trace_free(t);
	}
	{
		char longline[1024];

		memset(longline, '1', sizeof(longline));
		CHECK_EQ(smg_trace_parse((uint8_t *)longline, sizeof(longline), &t),
			 SMG_ERR_TOO_LONG);
	}
	CHECK(smg_trace_load("/nonexistent/trace.csv", &t) != 0);
	/* The committed trace and the properties gen_msr.sh promises. */
	snprintf(path, sizeof(path), "%s/bench/traces/msr_hot.csv", src ? src : ".");
	CHECK_EQ(smg_trace_load(path, &t), 0);
	if (t == NULL)
		return;
	CHECK_EQ(t->n, 2000);
	for (i = 0; i < t->n; i++) {
		reads += !t->ops[i].write;
		hot += t->ops[i].offset >= (1ull << 30) &&
		       t->ops[i].offset + t->ops[i].len <= (1ull << 30) + (64ull << 20);
		CHECK(t->ops[i].offset % 4096 == 0);
	}
	CHECK_EQ(reads, 1400);
	CHECK(hot >= 1600);
	CHECK_EQ(t->ops[t->n - 1].t_us, 1999000);
	smg_trace_free(t);
}

static void run_kind(struct smg_vdisk *d, enum smg_wl_kind kind,
		     const struct smg_trace *t)
{
	struct smg_wl_opts o = {.kind = kind, .threads = 2, .trace = t, .seed = 1};
	struct smg_wl_result r;
	struct smg_wl *w = NULL;
	int i;

	CHECK_EQ(smg_wl_start(d, &o, &w), 0);
	if (w == NULL)
		return;
	/* Progress, not a fixed sleep: on a loaded machine the workload's
	 * threads may not run for a while. Let it run at least 150 ms, then
	 * wait (up to a minute) until it has done enough I/O for the mix checks
	 * below to mean something. */
	nanosleep(&(struct timespec){0, 150000000}, NULL);
	for (i = 0; i < 600; i++) {
		smg_wl_result(w, &r);
		if (r.reads + r.writes >= 64 || r.errors > 0)
			break;
		nanosleep(&(struct timespec){0, 100000000}, NULL);
	}
	smg_wl_stop(w);
	CHECK_EQ(r.errors, 0);
	CHECK(r.reads + r.writes > 0);
	if (kind == SMG_WL_READ_HOT)
		CHECK_EQ(r.writes, 0);
	if (kind == SMG_WL_WRITE_HEAVY)
		CHECK(r.writes > r.reads);
	if (r.reads > 0)
		CHECK(r.read_p99_ms >= r.read_p50_ms);
}

static void test_workload(void)
{
	static const uint64_t ranges[] = {0, 8 << 20};
	char *dir = util_tmpdir(), path[256], tpath[512], *src = getenv("SMG_SRC");
	struct smg_vdisk_opts o = {0};
	struct smg_vdisk *d = NULL;
	struct smg_trace *t = NULL;

	snprintf(path, sizeof(path), "%s/wl.img", dir);
	CHECK_EQ(util_make_image(path, 64 << 20, ranges, 1), 0);
	o.path = path;
	CHECK_EQ(smg_vdisk_open(&o, &d), 0);
	snprintf(tpath, sizeof(tpath), "%s/bench/traces/msr_hot.csv", src ? src : ".");
	CHECK_EQ(smg_trace_load(tpath, &t), 0);
	if (d != NULL && t != NULL) {
		struct smg_wl_opts bad_o = {.kind = SMG_WL_TRACE};
		struct smg_wl *w;

		CHECK_EQ(smg_wl_start(d, &bad_o, &w), SMG_ERR_INVAL);
		run_kind(d, SMG_WL_READ_HOT, NULL);
		run_kind(d, SMG_WL_WRITE_HEAVY, NULL);
		run_kind(d, SMG_WL_MIXED, NULL);
		run_kind(d, SMG_WL_TRACE, t);
	}
	smg_trace_free(t);
	smg_vdisk_close(d);
	util_rmdir(dir);
	free(dir);
}

int main(void)
{
	smg_log_set_level(SMG_LOG_ERROR);
	test_parse();
	test_workload();
	return check_result("storage_trace");
}
