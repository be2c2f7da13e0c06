/* log.h — one logger for the process: text for a terminal or JSON lines, with every
 * registered secret redacted before a line is written. Timestamps come from the current
 * clock (virtual in simulation) once one is installed.
 * Context: loop thread only.
 */
#ifndef SW_LOG_H
#define SW_LOG_H

#include <stdint.h>
#include <stdarg.h>
#include <stdio.h>

#include "steward/swp_types.h"

#define SW_LOG_DEBUG SWP_LOG_DEBUG
#define SW_LOG_INFO SWP_LOG_INFO
#define SW_LOG_WARN SWP_LOG_WARN
#define SW_LOG_ERROR SWP_LOG_ERROR

enum sw_log_format {
    SW_LOG_FORMAT_TEXT = 0,
    SW_LOG_FORMAT_JSON = 1,
};

/* out is borrowed and must outlive logging; NULL means stderr. */
void sw_log_configure(FILE *out, int format, int min_level);
int sw_log_min_level(void);
/* Parse "debug"/"info"/"warn"/"error"; -1 if unknown. */
int sw_log_level_parse(const char *name);

/* now_ms(ud) supplies timestamps; NULL restores the wall clock (used before a clock
 * exists). */
void sw_log_set_time_source(int64_t (*now_ms)(void *ud), void *ud);

/* Register a secret value (copied) to redact from every line; values shorter than
 * 4 bytes are ignored to avoid shredding ordinary text. */
void sw_log_add_secret(const char *value);
void sw_log_clear_secrets(void);
/* Copy of text with every registered secret replaced by "[REDACTED]"; owned by the
 * caller. */
char *sw_log_redact(const char *text);

void sw_log(int level, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void sw_logv(int level, const char *component, const char *fmt, va_list ap);

#endif /* SW_LOG_H */
