#!/usr/bin/env bash
# Generate msr_hot.csv, a small MSR Cambridge format trace with known
# properties (test/storage/test_trace.c checks them):
#   2000 records, 1 ms apart (FILETIME ticks of 100 ns), starting at a real
#   2007 timestamp like the MSR traces;
#   record i is a Write when i % 10 >= 7 (600 writes, 1400 reads);
#   record i is in the hot window [1 GiB, 1 GiB + 64 MiB) unless i % 5 == 0
#     (1600 hot, 400 spread over the first 2 GiB);
#   sizes 4 KiB * (1 + i % 16), offsets 4 KiB aligned.
set -euo pipefail
cd "$(dirname "$0")"
awk 'BEGIN {
	print "Timestamp,Hostname,DiskNumber,Type,Offset,Size,ResponseTime";
	t0 = 128166372000000000; hot = 1073741824;
	for (i = 0; i < 2000; i++) {
		type = (i % 10 >= 7) ? "Write" : "Read";
		if (i % 5 == 0)
			off = ((i * 104729) % 524272) * 4096;
		else
			off = hot + ((i * 7919) % 16368) * 4096;
		printf "%.0f,hm,0,%s,%.0f,%d,%d\n", t0 + i * 10000, type, off, 4096 * (1 + i % 16), 100 + i % 1000;
	}
}' >msr_hot.csv
