#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *sw_strerror(int code)
{
    switch (code) {
    case SW_OK: return "success";
    case SW_ENOMEM: return "out of memory";
    case SW_EINVAL: return "invalid argument";
    case SW_ENOENT: return "not found";
    case SW_EEXIST: return "already exists";
    case SW_EAGAIN: return "try again";
    case SW_ENOTSUP: return "not supported";
    case SW_ETIMEDOUT: return "timed out";
    case SW_ECANCELED: return "canceled";
    case SW_EIO: return "I/O error";
    case SW_EABI: return "plugin ABI mismatch";
    case SW_EBUDGET: return "refused by a guard limit";
    case SW_EPOLICY: return "policy error";
    case SW_EMARKET: return "marketplace error";
    case SW_ESTORE: return "journal (SQLite) error";
    case SW_ECONFIG: return "configuration error";
    case SW_EHTTP: return "HTTP transport error";
    case SW_EFUNDS: return "insufficient funds";
    case SW_ETOOBIG: return "reply too large";
    default: return "unknown error";
    }
}

int sw_error_set(struct sw_error *err, int code, const char *fmt, ...)
{
    if (err == NULL)
        return code;
    err->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
    return code;
}

void sw_error_clear(struct sw_error *err)
{
    if (err == NULL)
        return;
    err->code = 0;
    err->msg[0] = '\0';
}
