/* error.h — steward's error codes and the error struct every constructor fills.
 * Codes equal the plugin ABI's SWP_E* values so they cross the boundary unchanged.
 */
#ifndef SW_ERROR_H
#define SW_ERROR_H

#include "steward/swp_types.h"

#define SW_OK SWP_OK
#define SW_ENOMEM SWP_ENOMEM
#define SW_EINVAL SWP_EINVAL
#define SW_ENOENT SWP_ENOENT
#define SW_EEXIST SWP_EEXIST
#define SW_EAGAIN SWP_EAGAIN
#define SW_ENOTSUP SWP_ENOTSUP
#define SW_ETIMEDOUT SWP_ETIMEDOUT
#define SW_ECANCELED SWP_ECANCELED
#define SW_EIO SWP_EIO
#define SW_EABI SWP_EABI
#define SW_EBUDGET SWP_EBUDGET
#define SW_EPOLICY SWP_EPOLICY
#define SW_EMARKET SWP_EMARKET
#define SW_ESTORE SWP_ESTORE
#define SW_ECONFIG SWP_ECONFIG
#define SW_EHTTP SWP_EHTTP
#define SW_EFUNDS SWP_EFUNDS
#define SW_ETOOBIG SWP_ETOOBIG

/* Same layout as struct swp_error, so one can be passed where the other is expected. */
struct sw_error {
    int code;
    char msg[256];
};

/* Static text for a code; never NULL. */
const char *sw_strerror(int code);

/* Fill err (which may be NULL) and return code, so callers can write
 * `return sw_error_set(err, SW_EINVAL, "...")`. Never format a secret into it. */
int sw_error_set(struct sw_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Reset to code 0 and an empty message. */
void sw_error_clear(struct sw_error *err);

#endif /* SW_ERROR_H */
