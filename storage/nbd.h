/* NBD internals: one session over a byte stream (socket or buffer). */
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

struct nbd_sess {
	struct smg_vdisk *disk;
	struct nbd_io *io;
	bool no_zeroes;
	uint8_t *buf;
	size_t cap;
};

/* Handshake, options, transmission until DISC or an error; frees s->buf. */
int nbd_session_run(struct nbd_sess *s);

#endif
