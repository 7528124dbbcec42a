/* NBD internals: one session over a byte stream (socket or buffer), with
 * its exports found through a lookup (one disk, or the service's table). */
#ifndef SMG_STORAGE_NBD_H
#define SMG_STORAGE_NBD_H

#include <pthread.h>

#include "storage/storage.h"

struct nbd_io {
	/* exactly n bytes or an error (SMG_ERR_EOF at end of stream) */
	int (*recv)(void *self, void *p, size_t n);
	int (*send)(void *self, const void *p, size_t n);
	void *self;
};

struct nbd_lookup {
	/* The export named name[0..n) with a reference taken; NULL if unknown
	 * ("" is the default export, SMG_NBD_EXPORT_NAME). */
	struct smg_vdisk *(*get)(void *self, const char *name, size_t n, void **ref);
	void (*put)(void *self, void *ref);
	/* Up to max export names, for NBD_OPT_LIST. */
	size_t (*names)(void *self, char (*out)[SMG_DSVC_NAME_MAX + 1], size_t max);
	void *self;
};

struct nbd_sess {
	struct nbd_lookup *lk;
	struct nbd_io *io;
	struct smg_vdisk *disk; /* chosen by GO / EXPORT_NAME */
	void *ref;
	bool no_zeroes;
	uint8_t *buf;
	size_t cap;
};

/* Handshake, options, transmission until DISC or an error; frees s->buf and
 * puts the export's reference back. */
int nbd_session_run(struct nbd_sess *s);

#endif
