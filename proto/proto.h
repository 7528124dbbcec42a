/* The wire protocol's public face: version, frame type registry and limits.
 * The control messages live in secmig.proto (generated at build time). */
#ifndef SMG_PROTO_H
#define SMG_PROTO_H

#define SMG_PROTO_VERSION 1u

#endif
