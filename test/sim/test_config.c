/* Sim domain config parser: good files, and bad lines named by number. */
#include <string.h>

#include "base/base.h"
#include "check.h"
#include "simhost/simhost.h"

static const struct {
	const char *text;
	const char *err; /* NULL: must parse */
} cases[] = {
    {"name=a\nmemory=16M\n", NULL},
    {"# c\n name = vm-1 \nmemory = 1G\nvcpus=4\nworkload=hotspot\ndirty_rate=50M\n"
     "hot_writes=90\nhot_pages=5\nzero_pct=20\nseed=16\ndisk=/x.img\n"
     "nic = mac=52:54:00:00:00:01,ipv4=10.0.0.2,ipv6=fd00::2,ipv4=10.0.0.3\n",
     NULL},
    {"name=a\n", "missing 'memory'"},
    {"memory=16M\n", "missing 'name'"},
    {"name=a\nmemory=16M\nbogus=1\n", "line 3: unknown key 'bogus'"},
    {"name=a\nmemory=17\n", "line 2: memory"},
    {"name=a\nmemory=16M\nvcpus=0\n", "line 3: vcpus"},
    {"name=a\nmemory=16M\nvcpus=17\n", "line 3: vcpus"},
    {"name=a b\nmemory=16M\n", "line 1: name"},
    {"name=a\nmemory=16M\nworkload=spin\n", "line 3: workload"},
    {"name=a\nmemory=16M\nhot_pages=101\n", "line 3: hot_pages"},
    {"name=a\nmemory=16M\nnic=ipv4=1.2.3.4\n", "line 3: nic: needs mac"},
    {"name=a\nmemory=16M\nnic=mac=zz:54:00:00:00:01\n", "line 3: nic: bad mac"},
    {"name=a\nmemory=16M\nnic=mac=52:54:00:00:00:01,ipv6=::g\n", "line 3: nic: bad ipv6"},
    {"name=a\nmemory=16M\nworkload=trace\n", "trace = PATH"},
    {"name=a\nmemory=99999999999999999999\n", "line 2: memory"},
    {"name=a\nmemory\n", "line 2: expected"},
};

int main(void)
{
	struct smg_sim_config c;
	char err[256];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int r = smg_sim_config_parse(cases[i].text, strlen(cases[i].text), &c,
					     err, sizeof(err));
		if (cases[i].err == NULL) {
			CHECK_EQ(r, 0);
		} else {
			CHECK_EQ(r, SMG_ERR_CONFIG);
			if (strstr(err, cases[i].err) == NULL)
				fprintf(stderr, "case %zu: error '%s' lacks '%s'\n", i,
					err, cases[i].err);
			CHECK(strstr(err, cases[i].err) != NULL);
		}
	}
	CHECK_EQ(smg_sim_config_parse(cases[1].text, strlen(cases[1].text), &c, err, 256),
		 0);
	CHECK_EQ(c.mem_bytes, 1ull << 30);
	CHECK_EQ(c.vcpus, 4);
	CHECK_EQ(c.seed, 16);
	CHECK_EQ(c.n_nics, 1);
	CHECK_EQ(c.nics[0].n_ipv4, 2);
	CHECK_EQ(c.nics[0].n_ipv6, 1);
	CHECK_EQ(c.nics[0].mac[5], 1);
	CHECK_EQ(c.n_disks, 1);
	/* A line longer than the cap and a NUL byte are errors, not crashes. */
	char big[SMG_SIM_LINE_MAX + 20];
	memset(big, 'a', sizeof(big));
	CHECK_EQ(smg_sim_config_parse(big, sizeof(big), &c, err, sizeof(err)),
		 SMG_ERR_CONFIG);
	CHECK_EQ(smg_sim_config_parse("name=a\0b\nmemory=1M\n", 19, &c, err, sizeof(err)),
		 SMG_ERR_CONFIG);
	return check_result("sim_config");
}
