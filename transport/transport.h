/* Secure channel: TCP sessions, handshake, secretstream framing, the io_uring
 * pipeline and data channels. */
#ifndef SMG_TRANSPORT_H
#define SMG_TRANSPORT_H

#endif
