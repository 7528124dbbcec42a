/* TPM access, quotes, TPM-resident ECDH keys, policy and the guest vTPM. */
#ifndef SMG_ATTEST_H
#define SMG_ATTEST_H

#endif
