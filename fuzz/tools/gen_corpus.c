/* Writes the seed corpora under fuzz/corpus/ from real protocol messages.
 * Build and run by hand (see fuzz/README.md):
 *   cc -I. -Ibuild-asan/proto fuzz/tools/gen_corpus.c build-asan/libsecmig.a \
 *      $(pkg-config --libs libsodium liburing libprotobuf-c) -o /tmp/gen && /tmp/gen
 * fuzz/corpus */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "secmig.pb-c.h"
#include "transport/internal.h"

static const char *root;

static void put(const char *dir, const char *name, const void *p, size_t n)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", root, dir);
	mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/%s/%s", root, dir, name);
	if ((f = fopen(path, "wb")) == NULL)
		return;
	fwrite(p, 1, n, f);
	fclose(f);
}

static size_t pack(const ProtobufCMessage *m, uint8_t *out)
{
	return protobuf_c_message_pack(m, out);
}

static void handshake_seeds(void)
{
	uint8_t b[4096], f[8192], eph[32], nonce[32], sig[64], mac[32], ev[40];
	Smg__Hello h = SMG__HELLO__INIT;
	Smg__Auth a = SMG__AUTH__INIT;
	Smg__Join j = SMG__JOIN__INIT;
	size_t n, fl, off = 0;

	randombytes_buf(eph, 32);
	randombytes_buf(nonce, 32);
	h.version_min = SMG_PROTO_VERSION_MIN;
	h.version_max = SMG_PROTO_VERSION;
	h.capabilities = SMG_CAP_KNOWN;
	h.channels = 2;
	h.ephemeral.data = eph;
	h.ephemeral.len = 32;
	h.nonce.data = nonce;
	h.nonce.len = 32;
	h.name = "src-host.example";
	h.ext.data = ev;
	h.ext.len = sizeof(ev);
	h.initiator = true;
	n = pack(&h.base, b);
	put("hello", "client", b, n);
	smg_hs_frame_put(f + off, sizeof(f) - off, SMG_FT_HELLO, &h.base, &fl);
	off += fl;
	h.ext.len = 0;
	h.initiator = false;
	n = pack(&h.base, b);
	put("hello", "server", b, n);
	randombytes_buf(sig, 64);
	randombytes_buf(mac, 32);
	a.signature.data = sig;
	a.signature.len = 64;
	a.confirm.data = mac;
	a.confirm.len = 32;
	n = pack(&a.base, b);
	put("auth", "plain", b, n);
	smg_hs_frame_put(f + off, sizeof(f) - off, SMG_FT_AUTH, &a.base, &fl);
	off += fl;
	a.evidence.data = ev;
	a.evidence.len = sizeof(ev);
	n = pack(&a.base, b);
	put("auth", "evidence", b, n);
	j.session_id.data = eph;
	j.session_id.len = 32;
	j.index = 1;
	j.mac.data = mac;
	j.mac.len = 32;
	n = pack(&j.base, b);
	put("join", "one", b, n);
	smg_hs_frame_put(f + off, sizeof(f) - off, SMG_FT_JOIN, &j.base, &fl);
	off += fl;
	put("hsframe", "hello-auth-join", f, off);
}

static void control_seeds(void)
{
	uint8_t b[4096];
	Smg__Plan p = SMG__PLAN__INIT;
	Smg__DiskSpec d = SMG__DISK_SPEC__INIT, *dp = &d;
	Smg__NicSpec nic = SMG__NIC_SPEC__INIT, *np = &nic;
	Smg__RoundEnd re = SMG__ROUND_END__INIT;
	Smg__Abort ab = SMG__ABORT__INIT;
	Smg__Manifest mf = SMG__MANIFEST__INIT;
	uint8_t mac6[6] = {0, 0x16, 0x3e, 1, 2, 3}, root32[32] = {7};
	ProtobufCBinaryData roots[2] = {{32, root32}, {32, root32}};
	size_t n;

	p.migration_id = "m-0001";
	p.domain_name = "vm1";
	p.memory_bytes = 1 << 30;
	p.page_size = 4096;
	p.vcpus = 2;
	d.name = "xvda";
	d.size = 1 << 30;
	d.chunk_size = 1 << 20;
	d.format = "raw";
	p.n_disks = 1;
	p.disks = &dp;
	nic.mac.data = mac6;
	nic.mac.len = 6;
	nic.bridge = "br0";
	p.n_nics = 1;
	p.nics = &np;
	p.backend = "sim";
	b[0] = SMG_FT_PLAN;
	n = pack(&p.base, b + 1);
	put("control", "plan", b, n + 1);
	b[0] = SMG_FT_PRECHECK;
	put("control", "precheck", b, n + 1);
	{
		Smg__PrecheckItem it[2] = {SMG__PRECHECK_ITEM__INIT,
					   SMG__PRECHECK_ITEM__INIT};
		Smg__PrecheckItem *ip[2] = {&it[0], &it[1]};
		Smg__PrecheckResult res = SMG__PRECHECK_RESULT__INIT;
		it[0].name = "policy";
		it[0].ok = true;
		it[1].name = "capacity";
		it[1].code = SMG__ABORT_REASON__ABORT_RESOURCES;
		it[1].detail = "capacity: 48 MiB of memory requested, 32 MiB free";
		res.n_checks = 2;
		res.checks = ip;
		res.load_ms = 40;
		b[0] = SMG_FT_PRECHECK_RESULT;
		n = pack(&res.base, b + 1);
		put("control", "precheck_result", b, n + 1);
	}
	re.round = 3;
	re.pages_sent = 1000;
	b[0] = SMG_FT_ROUND_END;
	n = pack(&re.base, b + 1);
	put("control", "round_end", b, n + 1);
	ab.reason = SMG__ABORT_REASON__ABORT_INTEGRITY;
	ab.detail = "memory root mismatch";
	ab.error = SMG_ERR_INTEGRITY;
	b[0] = SMG_FT_ABORT;
	n = pack(&ab.base, b + 1);
	put("control", "abort", b, n + 1);
	mf.migration_id = "m-0001";
	mf.memory_root.data = root32;
	mf.memory_root.len = 32;
	mf.n_disk_roots = 2;
	mf.disk_roots = roots;
	b[0] = SMG_FT_MANIFEST;
	n = pack(&mf.base, b + 1);
	put("control", "manifest", b, n + 1);
}

static void bulk_seeds(void)
{
	static uint8_t b[1 + 8 + 2 * (8 + 4096)];

	static const uint64_t two[2] = {42, 43};

	b[0] = 1; /* zero pages */
	smg_pages_put_hdr(b + 1, 1, 2);
	smg_store_be64(b + 9, 42);
	smg_store_be64(b + 17, 43);
	put("bulk", "zero2", b, 1 + 8 + 16);
	b[0] = 0; /* pages, 4 KiB: data, then the pfns */
	memset(smg_pages_data(b + 1, 4096, 0), 0x11, 2 * 4096);
	smg_pages_put_pfns(b + 1, 1, 4096, two, 2);
	put("bulk", "pages2", b, sizeof(b));
}

static void frame_seeds(void)
{
	static uint8_t out[65536], buf[FRAME_WIRE_MAX];
	uint8_t key[SS_KEY], hdr[SS_HEADER];
	static const uint64_t five = 5;
	struct frame_tx tx = {0};
	size_t off = 1, w, n; /* out[0]: fuzz_frame's mode byte, 1 = raw wire */
	Smg__RoundStart rs = SMG__ROUND_START__INIT;

	out[0] = 1;
	smg_frame_fuzz_key(key, hdr);
	smg_frame_tx_key(&tx, key, hdr);
	tx.rekey_bytes = 1 << 30;
	rs.round = 1;
	rs.pages = 10;
	n = pack(&rs.base, buf + FRAME_PAYLOAD_OFF);
	smg_frame_seal(&tx, buf, SMG_FT_ROUND_START, n, false, &w);
	memcpy(out + off, buf, w);
	off += w;
	memset(smg_pages_data(buf + FRAME_PAYLOAD_OFF, 4096, 0), 0xab, 4096);
	smg_pages_put_pfns(buf + FRAME_PAYLOAD_OFF, 1, 4096, &five, 1);
	smg_frame_seal(&tx, buf, SMG_FT_PAGES, 16 + 4096, false, &w);
	memcpy(out + off, buf, w);
	off += w;
	memset(buf + FRAME_PAYLOAD_OFF, 0, 84); /* the frame layer reads no payload */
	smg_frame_seal(&tx, buf, SMG_FT_DISK_CHUNK, 84, false, &w);
	memcpy(out + off, buf, w);
	off += w;
	put("frame", "three", out, off);
	smg_frame_seal(&tx, buf, SMG_FT_CLOSE, 0, true, &w);
	memcpy(out + off, buf, w);
	off += w;
	put("frame", "three-final", out, off);
}

static void peers_seeds(void)
{
	static const char t[] =
	    "# enrolled peers\nsrc AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA= tpm=abc\n"
	    "dst.example  BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBA=\n\n";

	put("peers", "two", t, strlen(t));
}

int main(int argc, char **argv)
{
	if (argc != 2 || sodium_init() < 0)
		return 2;
	root = argv[1];
	mkdir(root, 0755);
	handshake_seeds();
	control_seeds();
	bulk_seeds();
	frame_seeds();
	peers_seeds();
	return 0;
}
