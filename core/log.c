#include "log.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mem.h"

#define REDACTED "[REDACTED]"

static struct {
    FILE *out;
    int format;
    int min_level;
    int64_t (*now_ms)(void *ud);
    void *now_ud;
    char **secrets;
    size_t secret_count;
} logger = {NULL, SW_LOG_FORMAT_TEXT, SW_LOG_INFO, NULL, NULL, NULL, 0};

static const char *level_names[] = {"debug", "info", "warn", "error"};

void sw_log_configure(FILE *out, int format, int min_level)
{
    logger.out = out;
    logger.format = format;
    logger.min_level = min_level;
}

int sw_log_min_level(void)
{
    return logger.min_level;
}

int sw_log_level_parse(const char *name)
{
    for (int i = 0; i < 4; i++)
        if (name != NULL && strcmp(name, level_names[i]) == 0)
            return i;
    return -1;
}

void sw_log_set_time_source(int64_t (*now_ms)(void *ud), void *ud)
{
    logger.now_ms = now_ms;
    logger.now_ud = ud;
}

void sw_log_add_secret(const char *value)
{
    if (value == NULL || strlen(value) < 4)
        return;
    for (size_t i = 0; i < logger.secret_count; i++)
        if (strcmp(logger.secrets[i], value) == 0)
            return;
    logger.secrets = sw_xrealloc(logger.secrets, (logger.secret_count + 1) * sizeof(char *));
    logger.secrets[logger.secret_count++] = sw_xstrdup(value);
}

void sw_log_clear_secrets(void)
{
    for (size_t i = 0; i < logger.secret_count; i++)
        free(logger.secrets[i]);
    free(logger.secrets);
    logger.secrets = NULL;
    logger.secret_count = 0;
}

static char *replace_all(char *text, const char *needle)
{
    size_t needle_len = strlen(needle);
    char *hit = strstr(text, needle);
    if (hit == NULL)
        return text;
    size_t cap = strlen(text) + 1;
    char *out = sw_xmalloc(cap + 16);
    size_t len = 0;
    const char *cursor = text;
    while (hit != NULL) {
        size_t keep = (size_t)(hit - cursor);
        size_t need = len + keep + sizeof(REDACTED) + strlen(hit + needle_len) + 1;
        if (need > cap) {
            cap = need * 2;
            out = sw_xrealloc(out, cap);
        }
        memcpy(out + len, cursor, keep);
        len += keep;
        memcpy(out + len, REDACTED, sizeof(REDACTED) - 1);
        len += sizeof(REDACTED) - 1;
        cursor = hit + needle_len;
        hit = strstr(cursor, needle);
    }
    size_t rest = strlen(cursor);
    if (len + rest + 1 > cap)
        out = sw_xrealloc(out, len + rest + 1);
    memcpy(out + len, cursor, rest + 1);
    free(text);
    return out;
}

char *sw_log_redact(const char *text)
{
    char *copy = sw_xstrdup(text != NULL ? text : "");
    for (size_t i = 0; i < logger.secret_count; i++)
        copy = replace_all(copy, logger.secrets[i]);
    return copy;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* "2026-11-22T06:16:17.279Z". The part up to the seconds is kept from the previous line:
 * lines come in bursts, and gmtime_r + strftime were most of a line's cost. */
static void format_time(char *buf, size_t len)
{
    static int64_t cached_secs = INT64_MIN;
    static char cached[32];
    static size_t cached_len;
    int64_t ms = logger.now_ms != NULL ? logger.now_ms(logger.now_ud) : wall_ms();
    int64_t secs = ms / 1000;
    int millis = (int)(ms % 1000);
    if (millis < 0) { /* before the epoch: floor, as gmtime_r wants */
        millis += 1000;
        secs--;
    }
    if (secs != cached_secs) {
        time_t t = (time_t)secs;
        struct tm tm;
        gmtime_r(&t, &tm);
        cached_len = strftime(cached, sizeof(cached), "%Y-%m-%dT%H:%M:%S", &tm);
        cached_secs = secs;
    }
    if (len < cached_len + 6) {
        buf[0] = '\0';
        return;
    }
    memcpy(buf, cached, cached_len);
    char *p = buf + cached_len;
    p[0] = '.';
    p[1] = (char)('0' + millis / 100);
    p[2] = (char)('0' + millis / 10 % 10);
    p[3] = (char)('0' + millis % 10);
    p[4] = 'Z';
    p[5] = '\0';
}

static void write_json_string(FILE *out, const char *s)
{
    fputc('"', out);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"': fputs("\\\"", out); break;
        case '\\': fputs("\\\\", out); break;
        case '\n': fputs("\\n", out); break;
        case '\r': fputs("\\r", out); break;
        case '\t': fputs("\\t", out); break;
        default:
            if (*p < 0x20)
                fprintf(out, "\\u%04x", *p);
            else
                fputc(*p, out);
        }
    }
    fputc('"', out);
}

void sw_logv(int level, const char *component, const char *fmt, va_list ap)
{
    if (level < logger.min_level)
        return;
    if (level < SW_LOG_DEBUG || level > SW_LOG_ERROR)
        level = SW_LOG_ERROR;
    FILE *out = logger.out != NULL ? logger.out : stderr;
    char stamp[40];
    format_time(stamp, sizeof(stamp));

    char line[2048];
    vsnprintf(line, sizeof(line), fmt, ap);
    /* A copy only when a secret is in the line (sw_log_redact copies every time). */
    char *redacted = NULL;
    for (size_t i = 0; i < logger.secret_count && redacted == NULL; i++)
        if (strstr(line, logger.secrets[i]) != NULL)
            redacted = sw_log_redact(line);
    const char *clean = redacted != NULL ? redacted : line;
    if (logger.format == SW_LOG_FORMAT_JSON) {
        fprintf(out, "{\"ts\":\"%s\",\"level\":\"%s\",\"component\":", stamp,
                level_names[level]);
        write_json_string(out, component != NULL ? component : "steward");
        fputs(",\"msg\":", out);
        write_json_string(out, clean);
        fputs("}\n", out);
    } else {
        static const char *tags[] = {"DEBUG", "INFO ", "WARN ", "ERROR"};
        const char *name = component != NULL ? component : "steward";
        /* One write of the assembled line rather than fprintf's format parsing. */
        size_t stamp_len = strlen(stamp), name_len = strlen(name), msg_len = strlen(clean);
        char text[2400];
        size_t need = stamp_len + 1 + 5 + 2 + name_len + 2 + msg_len + 1;
        if (need <= sizeof(text)) {
            char *p = text;
            memcpy(p, stamp, stamp_len);
            p += stamp_len;
            *p++ = ' ';
            memcpy(p, tags[level], 5);
            p += 5;
            memcpy(p, " [", 2);
            p += 2;
            memcpy(p, name, name_len);
            p += name_len;
            memcpy(p, "] ", 2);
            p += 2;
            memcpy(p, clean, msg_len);
            p += msg_len;
            *p++ = '\n';
            fwrite(text, 1, (size_t)(p - text), out);
        } else {
            fprintf(out, "%s %s [%s] %s\n", stamp, tags[level], name, clean);
        }
    }
    fflush(out);
    free(redacted);
}

void sw_log(int level, const char *component, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sw_logv(level, component, fmt, ap);
    va_end(ap);
}
