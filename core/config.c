#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <arpa/inet.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "log.h"
#include "mem.h"

#define CONFIG_MAX_BYTES ((size_t)4 << 20)
#define CONFIG_MAX_DEPTH 64
#define PATH_LEN 200
/* Integers survive a JSON double exactly only up to 2^53. */
#define JSON_INT_MAX 9007199254740992.0
#define DEFAULT_SELF_ENV "AKASH_DEPLOYMENT_SEQUENCE"
#define DEFAULT_ADMIN_PORT 9464

/* ---- durations and JSON helpers ------------------------------------------------------ */

/* Parses "123" or "1.5" (no sign, no exponent) at *p; advances p. */
static bool parse_decimal(const char **p, double *out)
{
    const char *s = *p;
    double value = 0;
    bool digits = false;
    while (isdigit((unsigned char)*s)) {
        value = value * 10 + (*s - '0');
        s++;
        digits = true;
    }
    if (*s == '.' && digits) {
        s++;
        double scale = 0.1;
        bool frac = false;
        while (isdigit((unsigned char)*s)) {
            value += (*s - '0') * scale;
            scale /= 10;
            s++;
            frac = true;
        }
        if (!frac)
            return false;
    }
    if (!digits)
        return false;
    *p = s;
    *out = value;
    return true;
}

/* value * unit_ms rounded, refusing anything that does not fit comfortably in int64. */
static int scale_ms(double value, double unit_ms, int64_t *ms_out)
{
    double ms = value * unit_ms;
    if (!isfinite(ms) || ms < 0 || ms > 1e15)
        return SW_EINVAL;
    *ms_out = (int64_t)llround(ms);
    return 0;
}

int sw_duration_parse(const char *text, int64_t *ms_out)
{
    static const struct {
        const char *suffix;
        double ms;
    } units[] = {{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000}, {"", 1000}};
    if (text == NULL)
        return SW_EINVAL;
    const char *p = text;
    double value;
    if (!parse_decimal(&p, &value))
        return SW_EINVAL;
    for (size_t i = 0; i < SW_ARRAY_LEN(units); i++)
        if (strcmp(p, units[i].suffix) == 0)
            return scale_ms(value, units[i].ms, ms_out);
    return SW_EINVAL;
}

int sw_duration_from_json(const cJSON *item, int64_t *ms_out)
{
    if (cJSON_IsString(item))
        return sw_duration_parse(item->valuestring, ms_out);
    if (cJSON_IsNumber(item))
        return scale_ms(item->valuedouble, 1000, ms_out);
    return SW_EINVAL;
}

static bool is_integral(const cJSON *item)
{
    double v = item->valuedouble;
    return isfinite(v) && floor(v) == v;
}

const char *sw_json_type_name(const cJSON *item)
{
    if (item == NULL)
        return "null";
    if (cJSON_IsString(item))
        return "string";
    if (cJSON_IsNumber(item))
        return is_integral(item) ? "integer" : "number";
    if (cJSON_IsBool(item))
        return "boolean";
    if (cJSON_IsNull(item))
        return "null";
    if (cJSON_IsObject(item))
        return "object";
    if (cJSON_IsArray(item))
        return "array";
    return "invalid";
}

/* Shortest text that reads back as the same double, without an exponent for integers. */
static void format_number(double v, char *buf, size_t size)
{
    if (isfinite(v) && floor(v) == v && fabs(v) < 1e15) {
        snprintf(buf, size, "%.0f", v);
        return;
    }
    for (int precision = 6; precision <= 17; precision++) {
        snprintf(buf, size, "%.*g", precision, v);
        if (strtod(buf, NULL) == v)
            return;
    }
}

/* What a value is, for "got ...": `string "ten"`, `-1`, `true`, `array`. */
static void describe(const cJSON *item, char *buf, size_t size)
{
    if (item == NULL || cJSON_IsNull(item)) {
        snprintf(buf, size, "null");
    } else if (cJSON_IsString(item)) {
        char shown[48];
        size_t n = 0;
        const char *s = item->valuestring;
        for (; *s != '\0' && n < 40; s++)
            shown[n++] = (*s == '"' || (unsigned char)*s < 0x20) ? '?' : *s;
        shown[n] = '\0';
        snprintf(buf, size, "string \"%s%s\"", shown, *s != '\0' ? "..." : "");
    } else if (cJSON_IsNumber(item)) {
        format_number(item->valuedouble, buf, size);
    } else if (cJSON_IsBool(item)) {
        snprintf(buf, size, "%s", cJSON_IsTrue(item) ? "true" : "false");
    } else {
        snprintf(buf, size, "%s", sw_json_type_name(item));
    }
}

/* ---- relaxed parsing ----------------------------------------------------------------- */

/* Copy of text with // and block comments blanked to spaces, newlines kept, so every
 * byte keeps its line and column. Returns NULL with *bad_at set at an unterminated block
 * comment. */
static char *strip_comments(const char *text, size_t len, size_t *bad_at)
{
    char *out = sw_xmalloc(len + 1);
    memcpy(out, text, len);
    out[len] = '\0';
    size_t i = 0;
    if (len >= 3 && memcmp(out, "\xEF\xBB\xBF", 3) == 0) {
        memset(out, ' ', 3);
        i = 3;
    }
    while (i < len) {
        if (out[i] == '"') {
            for (i++; i < len && out[i] != '"'; i++)
                if (out[i] == '\\')
                    i++;
            i++;
        } else if (out[i] == '/' && i + 1 < len && out[i + 1] == '/') {
            while (i < len && out[i] != '\n')
                out[i++] = ' ';
        } else if (out[i] == '/' && i + 1 < len && out[i + 1] == '*') {
            size_t start = i;
            out[i++] = ' ';
            out[i++] = ' ';
            while (i < len && !(out[i] == '*' && i + 1 < len && out[i + 1] == '/')) {
                if (out[i] != '\n')
                    out[i] = ' ';
                i++;
            }
            if (i >= len) {
                free(out);
                *bad_at = start;
                return NULL;
            }
            out[i++] = ' ';
            out[i++] = ' ';
        } else {
            i++;
        }
    }
    return out;
}

static void line_col(const char *text, size_t pos, int *line, int *col)
{
    int l = 1;
    size_t line_start = 0;
    for (size_t i = 0; i < pos; i++) {
        if (text[i] == '\n') {
            l++;
            line_start = i + 1;
        }
    }
    *line = l;
    *col = (int)(pos - line_start) + 1;
}

static int syntax_error(struct sw_error *err, const char *path, const char *text, size_t pos,
                        const char *hint)
{
    int line, col;
    line_col(text, pos, &line, &col);
    return sw_error_set(err, SW_ECONFIG, "%s:%d:%d: invalid JSON: %s", path, line, col, hint);
}

/* A strict JSON syntax check run before cJSON: cJSON reports where it stopped, which is
 * often one token late (after a string's opening quote, or on the last byte at end of
 * input), and says nothing about why. This scanner finds the first offending byte and
 * names the problem; it also enforces the nesting cap. It allocates nothing. */
struct scan {
    const char *s;
    size_t len;
    size_t pos;
    int depth;
    size_t err_pos;
    char hint[96];
};

static bool scan_fail(struct scan *sc, size_t pos, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static bool scan_fail(struct scan *sc, size_t pos, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sc->hint, sizeof(sc->hint), fmt, ap);
    va_end(ap);
    sc->err_pos = pos;
    return false;
}

static void scan_blank(struct scan *sc)
{
    while (sc->pos < sc->len && strchr(" \t\r\n", sc->s[sc->pos]) != NULL && sc->s[sc->pos] != '\0')
        sc->pos++;
}

/* End of input: point just past the last real character, not at trailing blank lines. */
static bool scan_fail_eof(struct scan *sc)
{
    size_t end = sc->len;
    while (end > 0 && strchr(" \t\r\n", sc->s[end - 1]) != NULL && sc->s[end - 1] != '\0')
        end--;
    return scan_fail(sc, end, "unexpected end of input");
}

/* "<expected>, got <token>" (or "unexpected <token>") for the token at pos. */
static bool scan_fail_token(struct scan *sc, const char *expected)
{
    if (sc->pos >= sc->len)
        return scan_fail_eof(sc);
    const char *at = sc->s + sc->pos;
    unsigned char c = (unsigned char)*at;
    char token[64];
    if (isalpha(c)) {
        int n = 0;
        while (sc->pos + (size_t)n < sc->len && n < 24 && isalnum((unsigned char)at[n]))
            n++;
        snprintf(token, sizeof(token), "word '%.*s' (strings need double quotes)", n, at);
    } else if (c == '\'') {
        snprintf(token, sizeof(token), "''' (strings need double quotes)");
    } else if (isprint(c)) {
        snprintf(token, sizeof(token), "'%c'", c);
    } else {
        snprintf(token, sizeof(token), "byte 0x%02x", c);
    }
    if (expected[0] == '\0')
        return scan_fail(sc, sc->pos, "unexpected %s", token);
    return scan_fail(sc, sc->pos, "%s, got %s", expected, token);
}

/* The 4 hex digits of a \u escape at pos (pointing at the backslash), or -1. */
static long scan_hex4(const struct scan *sc, size_t pos)
{
    if (pos + 6 > sc->len || sc->s[pos] != '\\' || sc->s[pos + 1] != 'u')
        return -1;
    long value = 0;
    for (size_t k = pos + 2; k < pos + 6; k++) {
        char h = sc->s[k];
        if (!isxdigit((unsigned char)h))
            return -1;
        value = value * 16 + (isdigit((unsigned char)h) ? h - '0' : (tolower(h) - 'a' + 10));
    }
    return value;
}

static bool scan_string(struct scan *sc)
{
    size_t open = sc->pos++;
    while (sc->pos < sc->len) {
        unsigned char c = (unsigned char)sc->s[sc->pos];
        if (c == '"') {
            sc->pos++;
            return true;
        }
        if (c < 0x20)
            return scan_fail(sc, sc->pos,
                             c == '\n' ? "unterminated string" : "control character in string");
        if (c == '\\') {
            char e = sc->pos + 1 < sc->len ? sc->s[sc->pos + 1] : '\0';
            if (e == 'u') {
                /* cJSON refuses unpaired UTF-16 surrogates; say so here, with a position. */
                long unit = scan_hex4(sc, sc->pos);
                if (unit < 0 || (unit >= 0xDC00 && unit <= 0xDFFF))
                    return scan_fail(sc, sc->pos, "invalid \\u escape in string");
                if (unit >= 0xD800 && unit <= 0xDBFF) {
                    long low = scan_hex4(sc, sc->pos + 6);
                    if (low < 0xDC00 || low > 0xDFFF)
                        return scan_fail(sc, sc->pos, "unpaired UTF-16 surrogate in string");
                    sc->pos += 6;
                }
                sc->pos += 6;
                continue;
            }
            if (e == '\0' || strchr("\"\\/bfnrt", e) == NULL)
                return scan_fail(sc, sc->pos, "invalid escape in string");
            sc->pos += 2;
            continue;
        }
        sc->pos++;
    }
    return scan_fail(sc, open, "unterminated string");
}

static bool scan_digits(struct scan *sc)
{
    size_t start = sc->pos;
    while (sc->pos < sc->len && isdigit((unsigned char)sc->s[sc->pos]))
        sc->pos++;
    return sc->pos > start;
}

static bool scan_number(struct scan *sc)
{
    size_t start = sc->pos;
    if (sc->s[sc->pos] == '-')
        sc->pos++;
    size_t int_start = sc->pos;
    if (!scan_digits(sc))
        return scan_fail(sc, start, "invalid number");
    if (sc->s[int_start] == '0' && sc->pos - int_start > 1)
        return scan_fail(sc, start, "invalid number (leading zero)");
    if (sc->pos < sc->len && sc->s[sc->pos] == '.') {
        sc->pos++;
        if (!scan_digits(sc))
            return scan_fail(sc, start, "invalid number");
    }
    if (sc->pos < sc->len && (sc->s[sc->pos] == 'e' || sc->s[sc->pos] == 'E')) {
        sc->pos++;
        if (sc->pos < sc->len && (sc->s[sc->pos] == '+' || sc->s[sc->pos] == '-'))
            sc->pos++;
        if (!scan_digits(sc))
            return scan_fail(sc, start, "invalid number");
    }
    return true;
}

static bool scan_value(struct scan *sc);

/* Objects and arrays share the walk; keys only differ in needing a string and a ':'. */
static bool scan_container(struct scan *sc, char close)
{
    bool object = close == '}';
    if (++sc->depth > CONFIG_MAX_DEPTH)
        return scan_fail(sc, sc->pos, "nested deeper than %d levels", CONFIG_MAX_DEPTH);
    sc->pos++;
    scan_blank(sc);
    if (sc->pos < sc->len && sc->s[sc->pos] == close) {
        sc->pos++;
        sc->depth--;
        return true;
    }
    for (;;) {
        scan_blank(sc);
        if (object) {
            if (sc->pos >= sc->len || sc->s[sc->pos] != '"') {
                if (sc->pos < sc->len && sc->s[sc->pos] == '}')
                    return scan_fail(sc, sc->pos, "trailing comma before '}'");
                return scan_fail_token(sc, "expected a \"key\"");
            }
            if (!scan_string(sc))
                return false;
            scan_blank(sc);
            if (sc->pos >= sc->len || sc->s[sc->pos] != ':')
                return scan_fail_token(sc, "expected ':' after the key");
            sc->pos++;
            scan_blank(sc);
        } else if (sc->pos < sc->len && sc->s[sc->pos] == ']') {
            return scan_fail(sc, sc->pos, "trailing comma before ']'");
        }
        if (!scan_value(sc))
            return false;
        scan_blank(sc);
        if (sc->pos < sc->len && sc->s[sc->pos] == ',') {
            sc->pos++;
            continue;
        }
        if (sc->pos < sc->len && sc->s[sc->pos] == close) {
            sc->pos++;
            sc->depth--;
            return true;
        }
        return scan_fail_token(sc, object ? "expected ',' or '}'" : "expected ',' or ']'");
    }
}

static bool scan_value(struct scan *sc)
{
    scan_blank(sc);
    if (sc->pos >= sc->len)
        return scan_fail_eof(sc);
    char c = sc->s[sc->pos];
    if (c == '{')
        return scan_container(sc, '}');
    if (c == '[')
        return scan_container(sc, ']');
    if (c == '"')
        return scan_string(sc);
    if (c == '-' || isdigit((unsigned char)c))
        return scan_number(sc);
    static const char *const literals[] = {"true", "false", "null"};
    for (size_t i = 0; i < SW_ARRAY_LEN(literals); i++) {
        size_t n = strlen(literals[i]);
        if (sc->len - sc->pos >= n && memcmp(sc->s + sc->pos, literals[i], n) == 0 &&
            (sc->pos + n == sc->len || !isalnum((unsigned char)sc->s[sc->pos + n]))) {
            sc->pos += n;
            return true;
        }
    }
    return scan_fail_token(sc, "");
}

static bool scan_document(struct scan *sc)
{
    if (!scan_value(sc))
        return false;
    scan_blank(sc);
    if (sc->pos < sc->len)
        return scan_fail(sc, sc->pos, "unexpected text after the JSON value");
    return true;
}

cJSON *sw_json_parse_relaxed(const char *text, size_t len, const char *path, struct sw_error *err)
{
    if (path == NULL)
        path = "(json)";
    if (len > CONFIG_MAX_BYTES) {
        sw_error_set(err, SW_ECONFIG, "%s: larger than %zu MiB", path, CONFIG_MAX_BYTES >> 20);
        return NULL;
    }
    size_t bad_at = 0;
    char *clean = strip_comments(text, len, &bad_at);
    if (clean == NULL) {
        syntax_error(err, path, text, bad_at, "unterminated /* comment");
        return NULL;
    }
    cJSON *root = NULL;
    struct scan sc = {.s = clean, .len = len};
    if (!scan_document(&sc)) {
        syntax_error(err, path, clean, sc.err_pos, sc.hint);
        goto out;
    }
    const char *end = NULL;
    root = cJSON_ParseWithLengthOpts(clean, len, &end, false);
    if (root == NULL) {
        /* The scanner accepts only what cJSON accepts; this is an allocation failure. */
        size_t pos = end != NULL && end >= clean ? (size_t)(end - clean) : 0;
        syntax_error(err, path, clean, pos, "cJSON could not parse the document");
    }
out:
    free(clean);
    return root;
}

/* ---- validation helpers -------------------------------------------------------------- */

struct loader {
    const char *file;
    const char *dir;
    struct sw_error *err;
};

static int fail(const struct loader *ld, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(const struct loader *ld, const char *path, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (path[0] == '\0')
        return sw_error_set(ld->err, SW_ECONFIG, "%s: %s", ld->file, msg);
    return sw_error_set(ld->err, SW_ECONFIG, "%s:%s: %s", ld->file, path, msg);
}

static int fail_type(const struct loader *ld, const char *path, const char *expected,
                     const cJSON *item)
{
    char got[80];
    describe(item, got, sizeof(got));
    return fail(ld, path, "expected %s, got %s", expected, got);
}

/* Appends text to the path in out (PATH_LEN bytes), cutting it short if it must: a long
 * path only shortens the message, it never overflows. */
static void path_append(char *out, const char *text)
{
    size_t used = strlen(out), add = strlen(text);
    if (used + add >= PATH_LEN)
        add = PATH_LEN - 1 - used;
    memcpy(out + used, text, add);
    out[used + add] = '\0';
}

static void path_key(char *out, const char *parent, const char *key)
{
    out[0] = '\0';
    path_append(out, parent);
    if (parent[0] != '\0')
        path_append(out, ".");
    path_append(out, key);
}

static void path_index(char *out, const char *parent, size_t index)
{
    char suffix[32];
    snprintf(suffix, sizeof(suffix), "[%zu]", index);
    out[0] = '\0';
    path_append(out, parent);
    path_append(out, suffix);
}

static char *resolve_path(const char *dir, const char *path)
{
    if (path[0] == '/')
        return sw_xstrdup(path);
    size_t dir_len = strlen(dir);
    if (dir_len > 0 && dir[dir_len - 1] == '/')
        return sw_xasprintf("%s%s", dir, path);
    return sw_xasprintf("%s/%s", dir, path);
}

/* Reads a whole file. Returns 0, -errno, or SW_ETOOBIG past max bytes. */
static int read_whole_file(const char *path, size_t max, char **text_out, size_t *len_out)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return -errno;
    size_t cap = 16384, len = 0;
    char *buf = sw_xmalloc(cap + 1);
    int rc = 0;
    for (;;) {
        if (len == cap) {
            if (cap > max)
                break;
            cap *= 2;
            buf = sw_xrealloc(buf, cap + 1);
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0) {
            if (ferror(f))
                rc = errno != 0 ? -errno : SW_EIO;
            break;
        }
    }
    fclose(f);
    if (rc == 0 && len > max)
        rc = SW_ETOOBIG;
    if (rc < 0) {
        free(buf);
        return rc;
    }
    buf[len] = '\0';
    *text_out = buf;
    *len_out = len;
    return 0;
}

static bool matches_name(const char *s, size_t max_len)
{
    size_t n = strlen(s);
    if (n == 0 || n > max_len)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '_' && s[i] != '-')
            return false;
    return true;
}

/* Rejects duplicate keys, and unknown keys when known is not NULL. */
static int check_keys(const struct loader *ld, const cJSON *obj, const char *path,
                      const char *const *known)
{
    const cJSON *item;
    cJSON_ArrayForEach(item, obj)
    {
        for (const cJSON *prev = obj->child; prev != item; prev = prev->next)
            if (strcmp(prev->string, item->string) == 0)
                return fail(ld, path, "duplicate key '%s'", item->string);
        if (known == NULL)
            continue;
        bool found = false;
        for (size_t i = 0; known[i] != NULL && !found; i++)
            found = strcmp(known[i], item->string) == 0;
        if (found)
            continue;
        char list[200];
        size_t used = 0;
        list[0] = '\0';
        for (size_t i = 0; known[i] != NULL && used < sizeof(list); i++)
            used +=
                (size_t)snprintf(list + used, sizeof(list) - used, "%s%s", i ? ", " : "", known[i]);
        return fail(ld, path, "unknown key '%s' (known: %s)", item->string, list);
    }
    return 0;
}

static const char *const secret_keys[] = {"api_key", "token", "secret", "password", "tsig_secret"};

/* Secrets in the file end up in backups, repositories and process listings; refuse them
 * anywhere in the tree, plugin sections included. */
static int check_secrets(const struct loader *ld, const cJSON *node, const char *path)
{
    const cJSON *item;
    size_t index = 0;
    cJSON_ArrayForEach(item, node)
    {
        char child[PATH_LEN];
        if (cJSON_IsObject(node)) {
            path_key(child, path, item->string);
            for (size_t i = 0; i < SW_ARRAY_LEN(secret_keys); i++)
                if (strcasecmp(item->string, secret_keys[i]) == 0)
                    return fail(ld, child,
                                "secrets do not belong in the config file; put the secret in "
                                "an environment variable and name it with \"%s_env\"",
                                item->string);
        } else {
            path_index(child, path, index);
        }
        index++;
        if (cJSON_IsObject(item) || cJSON_IsArray(item)) {
            int rc = check_secrets(ld, item, child);
            if (rc < 0)
                return rc;
        }
    }
    return 0;
}

/* Each getter leaves *out untouched when the key is absent (the caller set the default). */

static int get_object(const struct loader *ld, const cJSON *obj, const char *path, const char *key,
                      const cJSON **out)
{
    char child[PATH_LEN];
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (item == NULL)
        return 0;
    path_key(child, path, key);
    if (!cJSON_IsObject(item))
        return fail_type(ld, child, "object", item);
    *out = item;
    return 0;
}

static int get_string(const struct loader *ld, const cJSON *obj, const char *path, const char *key,
                      bool required, const char **out)
{
    char child[PATH_LEN];
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);
    path_key(child, path, key);
    if (item == NULL)
        return required ? fail(ld, child, "required") : 0;
    if (!cJSON_IsString(item) || item->valuestring[0] == '\0')
        return fail_type(ld, child, "non-empty string", item);
    *out = item->valuestring;
    return 0;
}

static int get_path(const struct loader *ld, const cJSON *obj, const char *path, const char *key,
                    char **out)
{
    const char *value = NULL;
    int rc = get_string(ld, obj, path, key, false, &value);
    if (rc < 0 || value == NULL)
        return rc;
    free(*out);
    *out = resolve_path(ld->dir, value);
    return 0;
}

static int get_int64(const struct loader *ld, const cJSON *obj, const char *path, const char *key,
                     double min, double max, const char *expected, int64_t *out)
{
    char child[PATH_LEN];
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (item == NULL)
        return 0;
    path_key(child, path, key);
    if (!cJSON_IsNumber(item) || !is_integral(item) || item->valuedouble < min ||
        item->valuedouble > max)
        return fail_type(ld, child, expected, item);
    *out = (int64_t)item->valuedouble;
    return 0;
}

static int get_int(const struct loader *ld, const cJSON *obj, const char *path, const char *key,
                   int min, const char *expected, int *out)
{
    int64_t value = *out;
    int rc = get_int64(ld, obj, path, key, min, INT_MAX, expected, &value);
    *out = (int)value;
    return rc;
}

static int get_number(const struct loader *ld, const cJSON *obj, const char *path, const char *key,
                      const char *expected, double *out)
{
    char child[PATH_LEN];
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (item == NULL)
        return 0;
    path_key(child, path, key);
    if (!cJSON_IsNumber(item) || !isfinite(item->valuedouble) || item->valuedouble < 0)
        return fail_type(ld, child, expected, item);
    *out = item->valuedouble;
    return 0;
}

/* A duration of at least min_ms; expected_min names the bound in messages. */
static int get_duration(const struct loader *ld, const cJSON *obj, const char *path,
                        const char *key, int64_t min_ms, const char *expected_min, int64_t *out)
{
    char child[PATH_LEN];
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (item == NULL)
        return 0;
    path_key(child, path, key);
    int64_t ms = 0;
    if (sw_duration_from_json(item, &ms) < 0)
        return fail_type(ld, child, "duration like \"10s\"", item);
    if (ms < min_ms)
        return fail_type(ld, child, expected_min, item);
    *out = ms;
    return 0;
}

/* A non-empty array of non-empty strings copied into *out (count in *count). */
static int get_string_list(const struct loader *ld, const cJSON *obj, const char *path,
                           const char *key, bool resolve, bool unique, char ***out, size_t *count)
{
    char child[PATH_LEN];
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (item == NULL)
        return 0;
    path_key(child, path, key);
    if (!cJSON_IsArray(item))
        return fail_type(ld, child, "array of strings", item);
    size_t n = (size_t)cJSON_GetArraySize(item);
    if (n == 0)
        return 0;
    *out = sw_xcalloc(n, sizeof(char *));
    const cJSON *elem;
    size_t i = 0;
    cJSON_ArrayForEach(elem, item)
    {
        char elem_path[PATH_LEN];
        path_index(elem_path, child, i);
        if (!cJSON_IsString(elem) || elem->valuestring[0] == '\0')
            return fail_type(ld, elem_path, "non-empty string", elem);
        for (size_t j = 0; unique && j < i; j++)
            if (strcmp((*out)[j], elem->valuestring) == 0)
                return fail(ld, elem_path, "duplicate \"%s\"", elem->valuestring);
        (*out)[i++] =
            resolve ? resolve_path(ld->dir, elem->valuestring) : sw_xstrdup(elem->valuestring);
        *count = i;
    }
    return 0;
}

static char *json_text(const cJSON *item)
{
    char *text = cJSON_PrintUnformatted(item);
    char *owned = sw_xstrdup(text != NULL ? text : "{}");
    cJSON_free(text);
    return owned;
}

/* "32MiB", "512KiB", "1GiB", "1048576" or "1048576B"; a JSON integer is bytes. */
static int parse_memory(const cJSON *item, size_t *out)
{
    static const struct {
        const char *suffix;
        double scale;
    } units[] = {{"", 1}, {"B", 1}, {"KiB", 1024}, {"MiB", 1048576}, {"GiB", 1073741824}};
    double bytes = -1;
    if (cJSON_IsNumber(item) && is_integral(item)) {
        bytes = item->valuedouble;
    } else if (cJSON_IsString(item)) {
        const char *p = item->valuestring;
        double value;
        if (!parse_decimal(&p, &value))
            return SW_EINVAL;
        for (size_t i = 0; i < SW_ARRAY_LEN(units) && bytes < 0; i++)
            if (strcmp(p, units[i].suffix) == 0)
                bytes = floor(value * units[i].scale);
    }
    /* Up to 1 TiB: beyond that the number is a typo, not a budget. */
    if (!(bytes >= 1 && bytes <= 1099511627776.0))
        return SW_EINVAL;
    *out = (size_t)bytes;
    return 0;
}

/* ---- sections ------------------------------------------------------------------------ */

static int load_log(const struct loader *ld, const cJSON *root, struct sw_config *c)
{
    static const char *const keys[] = {"format", "level", NULL};
    const cJSON *log = NULL;
    int rc = get_object(ld, root, "", "log", &log);
    if (rc < 0 || log == NULL)
        return rc;
    if ((rc = check_keys(ld, log, "log", keys)) < 0)
        return rc;
    const cJSON *format = cJSON_GetObjectItemCaseSensitive(log, "format");
    if (format != NULL) {
        if (cJSON_IsString(format) && strcmp(format->valuestring, "text") == 0)
            c->log_format = SW_LOG_FORMAT_TEXT;
        else if (cJSON_IsString(format) && strcmp(format->valuestring, "json") == 0)
            c->log_format = SW_LOG_FORMAT_JSON;
        else
            return fail_type(ld, "log.format", "\"text\" or \"json\"", format);
    }
    const cJSON *level = cJSON_GetObjectItemCaseSensitive(log, "level");
    if (level != NULL) {
        int parsed = cJSON_IsString(level) ? sw_log_level_parse(level->valuestring) : -1;
        if (parsed < 0)
            return fail_type(ld, "log.level", "\"debug\", \"info\", \"warn\" or \"error\"", level);
        c->log_level = parsed;
    }
    return 0;
}

static int load_self(const struct loader *ld, const cJSON *root, struct sw_config *c)
{
    static const char *const keys[] = {"market_id", "market_id_env", NULL};
    const cJSON *self = NULL;
    const char *market_id = NULL, *env = DEFAULT_SELF_ENV;
    int rc = get_object(ld, root, "", "self", &self);
    if (rc < 0)
        return rc;
    if (self != NULL) {
        if ((rc = check_keys(ld, self, "self", keys)) < 0 ||
            (rc = get_string(ld, self, "self", "market_id", false, &market_id)) < 0 ||
            (rc = get_string(ld, self, "self", "market_id_env", false, &env)) < 0)
            return rc;
        if (market_id != NULL && cJSON_GetObjectItemCaseSensitive(self, "market_id_env"))
            return fail(ld, "self", "expected either market_id or market_id_env, not both");
    }
    if (market_id == NULL) {
        market_id = getenv(env);
        if (market_id != NULL && market_id[0] == '\0')
            market_id = NULL;
    }
    c->self_market_id = sw_xstrdup(market_id);
    return 0;
}

static int load_plugins(const struct loader *ld, const cJSON *root, struct sw_config *c)
{
    const cJSON *plugins = NULL;
    int rc = get_object(ld, root, "", "plugins", &plugins);
    if (rc < 0 || plugins == NULL)
        return rc;
    if ((rc = check_keys(ld, plugins, "plugins", NULL)) < 0)
        return rc;
    size_t n = (size_t)cJSON_GetArraySize(plugins);
    if (n == 0)
        return 0;
    c->plugins = sw_xcalloc(n, sizeof(*c->plugins));
    const cJSON *item;
    cJSON_ArrayForEach(item, plugins)
    {
        char path[PATH_LEN];
        path_key(path, "plugins", item->string);
        if (!cJSON_IsObject(item))
            return fail_type(ld, path, "object", item);
        struct sw_plugin_config *p = &c->plugins[c->plugin_count++];
        p->name = sw_xstrdup(item->string);
        p->config_json = json_text(item);
    }
    return 0;
}

static int load_metrics(const struct loader *ld, const cJSON *root, struct sw_config *c)
{
    static const char *const keys[] = {"plugin", "query", "every", NULL};
    const cJSON *metrics = NULL;
    int rc = get_object(ld, root, "", "metrics", &metrics);
    if (rc < 0 || metrics == NULL)
        return rc;
    if ((rc = check_keys(ld, metrics, "metrics", NULL)) < 0)
        return rc;
    size_t n = (size_t)cJSON_GetArraySize(metrics);
    if (n == 0)
        return 0;
    c->metrics = sw_xcalloc(n, sizeof(*c->metrics));
    const cJSON *item;
    cJSON_ArrayForEach(item, metrics)
    {
        char path[PATH_LEN];
        path_key(path, "metrics", item->string);
        if (!cJSON_IsObject(item))
            return fail_type(ld, path, "object", item);
        if ((rc = check_keys(ld, item, path, keys)) < 0)
            return rc;
        struct sw_metric_config *m = &c->metrics[c->metric_count++];
        m->name = sw_xstrdup(item->string);
        const char *plugin = NULL, *query = NULL;
        if ((rc = get_string(ld, item, path, "plugin", true, &plugin)) < 0 ||
            (rc = get_string(ld, item, path, "query", true, &query)) < 0 ||
            (rc = get_duration(ld, item, path, "every", 0, "", &m->every_ms)) < 0)
            return rc;
        m->plugin = sw_xstrdup(plugin);
        m->query = sw_xstrdup(query);
    }
    return 0;
}

/* guard.provider_backoff: see struct sw_provider_backoff_config. */
static int load_provider_backoff(const struct loader *ld, const cJSON *guard,
                                 struct sw_provider_backoff_config *b)
{
    static const char *const keys[] = {"closures_per_lease_hour", "min_lease_hours", "backoff",
                                       "max_backoff", NULL};
    const char *path = "guard.provider_backoff";
    const cJSON *obj = NULL;
    int rc = get_object(ld, guard, "guard", "provider_backoff", &obj);
    if (rc < 0 || obj == NULL)
        return rc;
    if ((rc = check_keys(ld, obj, path, keys)) < 0 ||
        (rc = get_number(ld, obj, path, "closures_per_lease_hour", "number >= 0",
                         &b->closures_per_lease_hour)) < 0 ||
        (rc = get_number(ld, obj, path, "min_lease_hours", "number >= 0", &b->min_lease_hours)) <
            0 ||
        (rc = get_duration(ld, obj, path, "backoff", 1, "duration > 0", &b->backoff_ms)) < 0)
        return rc;
    /* A first back-off longer than the default cap lifts the cap with it. */
    if (b->max_backoff_ms < b->backoff_ms)
        b->max_backoff_ms = b->backoff_ms;
    return get_duration(ld, obj, path, "max_backoff", b->backoff_ms, "duration >= backoff",
                        &b->max_backoff_ms);
}

static int load_guard(const struct loader *ld, const cJSON *root, struct sw_config *c)
{
    static const char *const keys[] = {"budget_usd_hour",        "max_leases",
                                       "max_actions_per_window", "action_window",
                                       "unhealthy_after",        "provider_backoff",
                                       NULL};
    struct sw_guard_config *g = &c->guard;
    g->action_window_ms = 60000;
    g->unhealthy_after = 3;
    g->provider_backoff = (struct sw_provider_backoff_config){
        .closures_per_lease_hour = 0.2,
        .min_lease_hours = 1,
        .backoff_ms = 10 * 60000,
        .max_backoff_ms = 4 * 3600000,
    };
    const cJSON *guard = NULL;
    int rc = get_object(ld, root, "", "guard", &guard);
    if (rc < 0 || guard == NULL)
        return rc;
    if ((rc = check_keys(ld, guard, "guard", keys)) < 0 ||
        (rc = get_number(ld, guard, "guard", "budget_usd_hour", "number >= 0",
                         &g->budget_usd_hour)) < 0 ||
        (rc = get_int(ld, guard, "guard", "max_leases", 0, "integer >= 0", &g->max_leases)) < 0 ||
        (rc = get_int(ld, guard, "guard", "max_actions_per_window", 0, "integer >= 0",
                      &g->max_actions)) < 0 ||
        (rc = get_duration(ld, guard, "guard", "action_window", 1, "duration > 0",
                           &g->action_window_ms)) < 0 ||
        (rc = get_int(ld, guard, "guard", "unhealthy_after", 1, "integer >= 1",
                      &g->unhealthy_after)) < 0 ||
        (rc = load_provider_backoff(ld, guard, &g->provider_backoff)) < 0)
        return rc;
    return 0;
}

static int load_sdl(const struct loader *ld, const cJSON *item, const char *path,
                    struct sw_group_config *g)
{
    char *file = NULL;
    int rc = get_path(ld, item, path, "sdl", &file);
    if (rc < 0 || file == NULL)
        return rc;
    char child[PATH_LEN];
    path_key(child, path, "sdl");
    size_t len = 0;
    rc = read_whole_file(file, CONFIG_MAX_BYTES, &g->sdl_template, &len);
    if (rc == SW_ETOOBIG)
        rc = fail(ld, child, "%s is larger than %zu MiB", file, CONFIG_MAX_BYTES >> 20);
    else if (rc < 0)
        rc = fail(ld, child, "cannot read %s: %s", file, strerror(-rc));
    free(file);
    return rc;
}

/* Placement pinning: the "providers" list plus the value of "provider_env". A variable
 * that is named but unset is an error, not "any provider": workers silently placed away
 * from their master would train over the internet. */
static int load_providers(const struct loader *ld, const cJSON *item, const char *path,
                          struct sw_group_config *g)
{
    const char *env = NULL;
    int rc = get_string_list(ld, item, path, "providers", false, true, &g->providers,
                             &g->provider_count);
    if (rc < 0 || (rc = get_string(ld, item, path, "provider_env", false, &env)) < 0)
        return rc;
    if (env == NULL)
        return 0;
    char child[PATH_LEN];
    path_key(child, path, "provider_env");
    const char *value = getenv(env);
    if (value == NULL || value[0] == '\0')
        return fail(ld, child, "environment variable %s is not set (Akash sets AKASH_PROVIDER "
                    "inside a deployment; export it to run elsewhere)", env);
    for (size_t i = 0; i < g->provider_count; i++)
        if (strcmp(g->providers[i], value) == 0)
            return 0;
    g->providers = sw_xrealloc(g->providers, (g->provider_count + 1) * sizeof(char *));
    g->providers[g->provider_count++] = sw_xstrdup(value);
    return 0;
}

/* groups.<g>.spread: see struct sw_group_config. */
static int load_spread(const struct loader *ld, const cJSON *item, const char *path,
                       struct sw_group_config *g)
{
    static const char *const keys[] = {"max_share_per_provider", "min_providers", NULL};
    const cJSON *spread = NULL;
    int rc = get_object(ld, item, path, "spread", &spread);
    if (rc < 0 || spread == NULL)
        return rc;
    char child[PATH_LEN];
    path_key(child, path, "spread");
    if ((rc = check_keys(ld, spread, child, keys)) < 0 ||
        (rc = get_int(ld, spread, child, "min_providers", 1, "integer >= 1",
                      &g->spread_min_providers)) < 0)
        return rc;
    const cJSON *share = cJSON_GetObjectItemCaseSensitive(spread, "max_share_per_provider");
    if (share == NULL)
        return 0;
    char share_path[PATH_LEN];
    path_key(share_path, child, "max_share_per_provider");
    if (!cJSON_IsNumber(share) || !(share->valuedouble > 0) || share->valuedouble > 1)
        return fail_type(ld, share_path, "number in (0, 1]", share);
    g->spread_max_share = share->valuedouble;
    return 0;
}

static int load_group(const struct loader *ld, const cJSON *item, struct sw_group_config *g)
{
    static const char *const keys[] = {"min",
                                       "max",
                                       "regions",
                                       "scale_up_cooldown",
                                       "scale_down_cooldown",
                                       "max_price_usd_hour",
                                       "profile",
                                       "sdl",
                                       "acquire_deadline",
                                       "providers",
                                       "provider_env",
                                       "spread",
                                       NULL};
    char path[PATH_LEN];
    path_key(path, "groups", item->string);
    g->name = sw_xstrdup(item->string);
    g->acquire_deadline_ms = 8 * 60000;
    if (!matches_name(item->string, 64))
        return fail(ld, path, "group name must match [A-Za-z0-9_-]{1,64}");
    if (!cJSON_IsObject(item))
        return fail_type(ld, path, "object", item);
    int rc = check_keys(ld, item, path, keys);
    if (rc < 0 || (rc = get_int(ld, item, path, "min", 0, "integer >= 0", &g->min)) < 0)
        return rc;
    char child[PATH_LEN];
    path_key(child, path, "max");
    const cJSON *max = cJSON_GetObjectItemCaseSensitive(item, "max");
    if (max == NULL)
        return fail(ld, child, "required");
    char expected[48];
    snprintf(expected, sizeof(expected), "integer >= min (%d)", g->min);
    if ((rc = get_int(ld, item, path, "max", g->min, expected, &g->max)) < 0)
        return rc;
    const cJSON *profile = NULL;
    if ((rc = get_string_list(ld, item, path, "regions", false, true, &g->regions,
                              &g->region_count)) < 0 ||
        (rc = get_duration(ld, item, path, "scale_up_cooldown", 0, "", &g->scale_up_cooldown_ms)) <
            0 ||
        (rc = get_duration(ld, item, path, "scale_down_cooldown", 0, "",
                           &g->scale_down_cooldown_ms)) < 0 ||
        (rc = get_number(ld, item, path, "max_price_usd_hour", "number >= 0",
                         &g->max_price_usd_hour)) < 0 ||
        (rc = get_object(ld, item, path, "profile", &profile)) < 0 ||
        (rc = load_sdl(ld, item, path, g)) < 0 ||
        (rc = get_duration(ld, item, path, "acquire_deadline", 1, "duration > 0",
                           &g->acquire_deadline_ms)) < 0 ||
        (rc = load_providers(ld, item, path, g)) < 0 ||
        (rc = load_spread(ld, item, path, g)) < 0)
        return rc;
    if (profile != NULL)
        g->profile_json = json_text(profile);
    return 0;
}

static int load_groups(const struct loader *ld, const cJSON *root, struct sw_config *c)
{
    const cJSON *groups = NULL;
    int rc = get_object(ld, root, "", "groups", &groups);
    if (rc < 0)
        return rc;
    size_t n = groups != NULL ? (size_t)cJSON_GetArraySize(groups) : 0;
    if (n == 0)
        return fail(ld, "groups", "expected at least one group");
    if ((rc = check_keys(ld, groups, "groups", NULL)) < 0)
        return rc;
    c->groups = sw_xcalloc(n, sizeof(*c->groups));
    const cJSON *item;
    cJSON_ArrayForEach(item, groups)
    {
        if ((rc = load_group(ld, item, &c->groups[c->group_count++])) < 0)
            return rc;
    }
    return 0;
}

static int load_limits(const struct loader *ld, const cJSON *item, const char *path,
                       struct sw_policy_config *p)
{
    static const char *const keys[] = {"instructions", "memory", "time", NULL};
    const cJSON *limits = NULL;
    int rc = get_object(ld, item, path, "limits", &limits);
    if (rc < 0 || limits == NULL)
        return rc;
    char lpath[PATH_LEN];
    path_key(lpath, path, "limits");
    if ((rc = check_keys(ld, limits, lpath, keys)) < 0 ||
        (rc = get_int64(ld, limits, lpath, "instructions", 1, JSON_INT_MAX, "integer > 0",
                        &p->max_instructions)) < 0 ||
        (rc = get_duration(ld, limits, lpath, "time", 1, "duration > 0", &p->time_limit_ms)) < 0)
        return rc;
    const cJSON *memory = cJSON_GetObjectItemCaseSensitive(limits, "memory");
    if (memory != NULL && parse_memory(memory, &p->memory_limit) < 0) {
        char child[PATH_LEN];
        path_key(child, lpath, "memory");
        return fail_type(ld, child, "memory size like \"32MiB\"", memory);
    }
    return 0;
}

static int load_policy(const struct loader *ld, const cJSON *item, const char *path,
                       struct sw_policy_config *p)
{
    static const char *const keys[] = {"name", "file", "interval", "params", "limits", NULL};
    p->interval_ms = 10000;
    p->max_instructions = 0; /* lua_sandbox: no instruction budget unless limits.instructions */
    p->memory_limit = (size_t)32 << 20;
    p->time_limit_ms = 1000;
    if (!cJSON_IsObject(item))
        return fail_type(ld, path, "object", item);
    const char *name = NULL;
    int rc = check_keys(ld, item, path, keys);
    if (rc < 0 || (rc = get_string(ld, item, path, "name", true, &name)) < 0)
        return rc;
    char child[PATH_LEN];
    path_key(child, path, "name");
    if (!matches_name(name, 64))
        return fail_type(ld, child, "string matching [A-Za-z0-9_-]{1,64}",
                         cJSON_GetObjectItemCaseSensitive(item, "name"));
    p->name = sw_xstrdup(name);
    const char *file = NULL;
    if ((rc = get_string(ld, item, path, "file", true, &file)) < 0)
        return rc;
    p->file = resolve_path(ld->dir, file);
    path_key(child, path, "file");
    struct stat st;
    if (stat(p->file, &st) != 0) {
        if (errno == ENOENT)
            return fail(ld, child, "no such file %s", p->file);
        return fail(ld, child, "cannot read %s: %s", p->file, strerror(errno));
    }
    if (!S_ISREG(st.st_mode))
        return fail(ld, child, "%s is not a regular file", p->file);
    const cJSON *params = NULL;
    if ((rc = get_duration(ld, item, path, "interval", 100, "duration >= 100ms", &p->interval_ms)) <
            0 ||
        (rc = get_object(ld, item, path, "params", &params)) < 0 ||
        (rc = load_limits(ld, item, path, p)) < 0)
        return rc;
    p->params_json = params != NULL ? json_text(params) : sw_xstrdup("{}");
    return 0;
}

static int load_policies(const struct loader *ld, const cJSON *root, struct sw_config *c)
{
    const cJSON *policies = cJSON_GetObjectItemCaseSensitive(root, "policies");
    if (policies == NULL)
        return 0;
    if (!cJSON_IsArray(policies))
        return fail_type(ld, "policies", "array", policies);
    size_t n = (size_t)cJSON_GetArraySize(policies);
    if (n == 0)
        return 0;
    c->policies = sw_xcalloc(n, sizeof(*c->policies));
    const cJSON *item;
    cJSON_ArrayForEach(item, policies)
    {
        char path[PATH_LEN];
        size_t index = c->policy_count;
        path_index(path, "policies", index);
        struct sw_policy_config *p = &c->policies[c->policy_count++];
        int rc = load_policy(ld, item, path, p);
        if (rc < 0)
            return rc;
        for (size_t j = 0; j < index; j++) {
            if (strcmp(c->policies[j].name, p->name) == 0) {
                char child[PATH_LEN];
                path_key(child, path, "name");
                return fail(ld, child, "duplicate policy name '%s' (first at policies[%zu])",
                            p->name, j);
            }
        }
    }
    return 0;
}

/* ---- admin API (admin_api.c) ---------------------------------------------------------- */

/* "127.0.0.1:9464", "[::1]:9464", "localhost:9464" or ":9464" (loopback). The host must be
 * an IP literal or "localhost": the server binds without resolving names. */
static bool parse_listen(const char *text, char **host_out, int *port_out)
{
    const char *colon = strrchr(text, ':');
    if (colon == NULL || colon[1] == '\0')
        return false;
    char *end = NULL;
    long port = strtol(colon + 1, &end, 10);
    if (*end != '\0' || port < 0 || port > 65535 || !isdigit((unsigned char)colon[1]))
        return false;
    size_t host_len = (size_t)(colon - text);
    char *host;
    if (host_len == 0) {
        host = sw_xstrdup("127.0.0.1");
    } else if (text[0] == '[') {
        if (host_len < 3 || text[host_len - 1] != ']')
            return false;
        host = sw_xstrndup(text + 1, host_len - 2);
    } else {
        host = sw_xstrndup(text, host_len);
    }
    unsigned char addr[16];
    if (strcmp(host, "localhost") != 0 && inet_pton(AF_INET, host, addr) != 1 &&
        inet_pton(AF_INET6, host, addr) != 1) {
        free(host);
        return false;
    }
    *host_out = host;
    *port_out = (int)port;
    return true;
}

static bool is_loopback(const char *host)
{
    unsigned char addr[16];
    if (strcmp(host, "localhost") == 0)
        return true;
    if (inet_pton(AF_INET, host, addr) == 1)
        return addr[0] == 127;
    static const unsigned char v6_loopback[16] = {[15] = 1};
    return inet_pton(AF_INET6, host, addr) == 1 && memcmp(addr, v6_loopback, 16) == 0;
}

static int load_admin(const struct loader *ld, const cJSON *root, struct sw_config *c)
{
    static const char *const keys[] = {"listen", "token_env", NULL};
    struct sw_admin_config *a = &c->admin;
    const cJSON *admin = NULL;
    int rc = get_object(ld, root, "", "admin", &admin);
    if (rc < 0 || admin == NULL)
        return rc;
    a->enabled = true;
    a->port = DEFAULT_ADMIN_PORT;
    const char *listen = NULL, *token_env = NULL;
    if ((rc = check_keys(ld, admin, "admin", keys)) < 0 ||
        (rc = get_string(ld, admin, "admin", "listen", false, &listen)) < 0 ||
        (rc = get_string(ld, admin, "admin", "token_env", false, &token_env)) < 0)
        return rc;
    if (listen == NULL)
        a->host = sw_xstrdup("127.0.0.1");
    else if (!parse_listen(listen, &a->host, &a->port))
        return fail_type(ld, "admin.listen", "\"IP:port\" like \"127.0.0.1:9464\"",
                         cJSON_GetObjectItemCaseSensitive(admin, "listen"));
    a->token_env = sw_xstrdup(token_env);
    /* Whoever reaches the API can pause policies and pin counts: off the loopback
     * interface that takes a token. */
    if (token_env == NULL && !is_loopback(a->host))
        return fail(ld, "admin.token_env", "required when admin.listen (%s) is not a loopback "
                    "address", a->host);
    return 0;
}

/* ---- dns (the "dns" section; read by dns_sync.c) -------------------------------------- */

/* A DNS name of labels [A-Za-z0-9_-]{1,63} separated by dots, no empty label, with or
 * without a trailing dot; lowercased into out (size 256) without the trailing dot.
 * first_label_max bounds the first label (the ownership record prefixes it). */
static bool dns_name_ok(const char *text, size_t first_label_max, char *out)
{
    size_t len = strlen(text);
    if (len > 0 && text[len - 1] == '.')
        len--;
    if (len == 0 || len > 253)
        return false;
    size_t label = 0;
    bool first = true;
    for (size_t i = 0; i < len; i++) {
        char ch = text[i];
        if (ch == '.') {
            if (label == 0)
                return false;
            label = 0;
            first = false;
        } else if (isalnum((unsigned char)ch) || ch == '-' || ch == '_') {
            label++;
            if (label > 63 || (first && label > first_label_max))
                return false;
        } else {
            return false;
        }
        out[i] = (char)tolower((unsigned char)ch);
    }
    out[len] = '\0';
    return label > 0;
}

static int load_dns_records(const struct loader *ld, const cJSON *records,
                            struct sw_config *c, struct sw_dns_config *d)
{
    static const char *const keys[] = {"name", "per_region", NULL};
    int rc = check_keys(ld, records, "dns.records", NULL);
    if (rc < 0)
        return rc;
    size_t n = (size_t)cJSON_GetArraySize(records);
    d->records = sw_xcalloc(n ? n : 1, sizeof(*d->records));
    const cJSON *item;
    cJSON_ArrayForEach(item, records)
    {
        char path[PATH_LEN], child[PATH_LEN];
        path_key(path, "dns.records", item->string);
        if (!cJSON_IsObject(item))
            return fail_type(ld, path, "object", item);
        if ((rc = check_keys(ld, item, path, keys)) < 0)
            return rc;
        if (sw_config_group(c, item->string) == NULL)
            return fail(ld, path, "no group named '%s' in \"groups\"", item->string);
        struct sw_dns_record_config *r = &d->records[d->record_count++];
        r->group = sw_xstrdup(item->string);
        r->per_region = true;
        const char *name = NULL;
        if ((rc = get_string(ld, item, path, "name", true, &name)) < 0)
            return rc;
        path_key(child, path, "name");
        char lowered[256];
        /* 54: the ownership record's name prefixes the first label with "sw-cname-". */
        if (!dns_name_ok(name, 54, lowered))
            return fail_type(ld, child, "DNS name (labels of [A-Za-z0-9_-], the first at "
                             "most 54 characters)", cJSON_GetObjectItemCaseSensitive(item, "name"));
        size_t name_len = strlen(name);
        if (name[name_len - 1] == '.') {
            size_t zone_len = strlen(d->zone); /* with its trailing dot */
            size_t low_len = strlen(lowered);
            if (low_len + 1 <= zone_len || strncmp(lowered + low_len + 1 - zone_len, d->zone,
                                                   zone_len - 1) != 0 ||
                lowered[low_len - zone_len] != '.')
                return fail(ld, child, "\"%s\" is not inside the zone \"%s\"", name, d->zone);
            r->name = sw_xasprintf("%s.", lowered);
        } else {
            r->name = sw_xasprintf("%s.%s", lowered, d->zone);
        }
        if (strlen(r->name) > 200)
            return fail(ld, child, "\"%s\" is too long once inside the zone", name);
        for (size_t j = 0; j + 1 < d->record_count; j++)
            if (strcmp(d->records[j].name, r->name) == 0)
                return fail(ld, child, "\"%s\" is already the name of group '%s'", r->name,
                            d->records[j].group);
        const cJSON *per_region = cJSON_GetObjectItemCaseSensitive(item, "per_region");
        if (per_region != NULL) {
            path_key(child, path, "per_region");
            if (!cJSON_IsBool(per_region))
                return fail_type(ld, child, "boolean", per_region);
            r->per_region = cJSON_IsTrue(per_region);
        }
    }
    return 0;
}

static int load_dns(const struct loader *ld, const cJSON *root, struct sw_config *c)
{
    static const char *const keys[] = {"plugin", "zone",  "ttl",    "owner_id", "mode",
                                       "drain",  "resync", "records", NULL};
    const cJSON *dns = NULL;
    int rc = get_object(ld, root, "", "dns", &dns);
    if (rc < 0 || dns == NULL)
        return rc;
    if ((rc = check_keys(ld, dns, "dns", keys)) < 0)
        return rc;
    struct sw_dns_config *d = sw_xcalloc(1, sizeof(*d));
    c->dns = d;
    const char *plugin = NULL, *zone = NULL, *owner = c->instance_id, *mode = "sync";
    int64_t ttl = 60;
    if ((rc = get_string(ld, dns, "dns", "plugin", true, &plugin)) < 0 ||
        (rc = get_string(ld, dns, "dns", "zone", true, &zone)) < 0 ||
        (rc = get_int64(ld, dns, "dns", "ttl", 1, 2147483647.0, "integer from 1 to 2^31-1",
                        &ttl)) < 0 ||
        (rc = get_string(ld, dns, "dns", "owner_id", false, &owner)) < 0 ||
        (rc = get_string(ld, dns, "dns", "mode", false, &mode)) < 0)
        return rc;
    d->plugin = sw_xstrdup(plugin);
    char lowered[256];
    if (!dns_name_ok(zone, 63, lowered))
        return fail_type(ld, "dns.zone", "DNS zone name like \"example.com.\"",
                         cJSON_GetObjectItemCaseSensitive(dns, "zone"));
    d->zone = sw_xasprintf("%s.", lowered);
    d->ttl = (uint32_t)ttl;
    /* The owner id goes inside a TXT value as "steward/owner=<id>,": keep it plain. */
    if (!matches_name(owner, 64))
        return fail_type(ld, "dns.owner_id", "string matching [A-Za-z0-9_-]{1,64}",
                         cJSON_GetObjectItemCaseSensitive(dns, "owner_id"));
    d->owner_id = sw_xstrdup(owner);
    if (strcmp(mode, "sync") == 0)
        d->mode = SW_DNS_MODE_SYNC;
    else if (strcmp(mode, "upsert-only") == 0)
        d->mode = SW_DNS_MODE_UPSERT_ONLY;
    else
        return fail_type(ld, "dns.mode", "\"sync\" or \"upsert-only\"",
                         cJSON_GetObjectItemCaseSensitive(dns, "mode"));
    d->drain_ms = 2 * ttl * 1000;
    d->resync_ms = 60000;
    if ((rc = get_duration(ld, dns, "dns", "drain", 0, "", &d->drain_ms)) < 0 ||
        (rc = get_duration(ld, dns, "dns", "resync", 100, "duration >= 100ms",
                           &d->resync_ms)) < 0)
        return rc;
    const cJSON *records = NULL;
    if ((rc = get_object(ld, dns, "dns", "records", &records)) < 0)
        return rc;
    if (records == NULL)
        return fail(ld, "dns.records", "required (an object: group -> {\"name\": ...})");
    return load_dns_records(ld, records, c, d);
}

static void dns_config_free(struct sw_dns_config *d)
{
    if (d == NULL)
        return;
    for (size_t i = 0; i < d->record_count; i++) {
        free(d->records[i].group);
        free(d->records[i].name);
    }
    free(d->records);
    free(d->plugin);
    free(d->zone);
    free(d->owner_id);
    free(d);
}

/* "probes" (geo): {"plugin", "every", "targets", "path", "target_template"}. */
static int load_probes(const struct loader *ld, const cJSON *root, struct sw_config *c)
{
    static const char *const keys[] = {"plugin", "every", "targets", "path", "target_template",
                                       NULL};
    const cJSON *probes = NULL;
    int rc = get_object(ld, root, "", "probes", &probes);
    if (rc < 0 || probes == NULL)
        return rc;
    struct sw_probes_config *p = &c->probes;
    p->every_ms = 15000;
    const char *plugin = NULL, *path = "/", *template = NULL;
    if ((rc = check_keys(ld, probes, "probes", keys)) < 0 ||
        (rc = get_string(ld, probes, "probes", "plugin", true, &plugin)) < 0 ||
        (rc = get_duration(ld, probes, "probes", "every", 100, "duration >= 100ms",
                           &p->every_ms)) < 0 ||
        (rc = get_string_list(ld, probes, "probes", "targets", false, true, &p->targets,
                              &p->target_count)) < 0 ||
        (rc = get_string(ld, probes, "probes", "path", false, &path)) < 0 ||
        (rc = get_string(ld, probes, "probes", "target_template", false, &template)) < 0)
        return rc;
    for (size_t i = 0; i < p->target_count; i++) {
        const char *url = p->targets[i];
        if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0) {
            char child[PATH_LEN];
            path_index(child, "probes.targets", i);
            return fail_type(ld, child, "http:// or https:// URL",
                             cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(probes, "targets"),
                                                (int)i));
        }
    }
    if (path[0] != '/')
        return fail_type(ld, "probes.path", "path starting with '/'",
                         cJSON_GetObjectItemCaseSensitive(probes, "path"));
    if (template != NULL && strstr(template, "://") == NULL)
        return fail_type(ld, "probes.target_template", "URL template like "
                         "\"https://{uri}/health\"",
                         cJSON_GetObjectItemCaseSensitive(probes, "target_template"));
    p->plugin = sw_xstrdup(plugin);
    p->path = sw_xstrdup(path);
    p->target_template = sw_xstrdup(template);
    return 0;
}

/* ---- ha (the "ha" section; read by ha.c) --------------------------------------------- */

static int load_ha(const struct loader *ld, const cJSON *root, struct sw_config *c)
{
    static const char *const keys[] = {"etcd", "ttl", "prefix", "replica", NULL};
    const cJSON *ha = NULL;
    int rc = get_object(ld, root, "", "ha", &ha);
    if (rc < 0 || ha == NULL)
        return rc;
    struct sw_ha_config *h = sw_xcalloc(1, sizeof(*h));
    c->ha = h;
    h->ttl_ms = 5000;
    const char *prefix = NULL, *replica = NULL;
    if ((rc = check_keys(ld, ha, "ha", keys)) < 0 ||
        (rc = get_string_list(ld, ha, "ha", "etcd", false, true, &h->endpoints,
                              &h->endpoint_count)) < 0 ||
        (rc = get_duration(ld, ha, "ha", "ttl", 2000, "duration of at least \"2s\"",
                           &h->ttl_ms)) < 0 ||
        (rc = get_string(ld, ha, "ha", "prefix", false, &prefix)) < 0 ||
        (rc = get_string(ld, ha, "ha", "replica", false, &replica)) < 0)
        return rc;
    if (h->endpoint_count == 0)
        return fail_type(ld, "ha.etcd", "non-empty array of etcd URLs",
                         cJSON_GetObjectItemCaseSensitive(ha, "etcd"));
    for (size_t i = 0; i < h->endpoint_count; i++) {
        if (strncmp(h->endpoints[i], "http://", 7) != 0 &&
            strncmp(h->endpoints[i], "https://", 8) != 0) {
            char path[PATH_LEN];
            snprintf(path, sizeof(path), "ha.etcd[%zu]", i);
            return fail_type(ld, path, "URL like \"http://127.0.0.1:2379\"",
                             cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(ha, "etcd"),
                                                (int)i));
        }
        size_t len = strlen(h->endpoints[i]);
        if (h->endpoints[i][len - 1] == '/')
            h->endpoints[i][len - 1] = '\0';
    }
    /* etcd leases have whole-second TTLs: a fraction would silently round. */
    if (h->ttl_ms % 1000 != 0)
        return fail_type(ld, "ha.ttl", "whole number of seconds like \"5s\"",
                         cJSON_GetObjectItemCaseSensitive(ha, "ttl"));
    if (prefix != NULL && (prefix[0] != '/' || prefix[strlen(prefix) - 1] == '/'))
        return fail_type(ld, "ha.prefix", "key prefix starting with '/' and not ending with it",
                         cJSON_GetObjectItemCaseSensitive(ha, "prefix"));
    if (replica != NULL && !matches_name(replica, 64))
        return fail_type(ld, "ha.replica", "string matching [A-Za-z0-9_-]{1,64}",
                         cJSON_GetObjectItemCaseSensitive(ha, "replica"));
    h->prefix = prefix != NULL ? sw_xstrdup(prefix) : sw_xasprintf("/steward/%s", c->instance_id);
    h->replica = sw_xstrdup(replica);
    return 0;
}

/* ---- history (the "history" section; read by runtime.c) ------------------------------ */

static int load_history(const struct loader *ld, const cJSON *root, struct sw_config *c)
{
    static const char *const keys[] = {"keep", NULL};
    static const char *const expected = "duration like \"7d\" (at least 1s), 0 or \"forever\"";
    c->history_keep_ms = SW_HISTORY_KEEP_DEFAULT_MS;
    const cJSON *history = NULL;
    int rc = get_object(ld, root, "", "history", &history);
    if (rc < 0 || history == NULL || (rc = check_keys(ld, history, "history", keys)) < 0)
        return rc;
    const cJSON *keep = cJSON_GetObjectItemCaseSensitive(history, "keep");
    if (keep == NULL)
        return 0;
    if (cJSON_IsString(keep) && strcmp(keep->valuestring, "forever") == 0) {
        c->history_keep_ms = 0;
        return 0;
    }
    int64_t ms = 0;
    if (sw_duration_from_json(keep, &ms) < 0 || (ms > 0 && ms < 1000))
        return fail_type(ld, "history.keep", expected, keep);
    c->history_keep_ms = ms;
    return 0;
}

static int load_root(const struct loader *ld, const cJSON *root, struct sw_config *c)
{
    static const char *const keys[] = {"id",       "state",  "seed",     "log",     "plugin_dirs",
                                       "lua_path", "market", "self",     "plugins", "metrics",
                                       "guard",    "groups", "policies", "simulation", "admin",
                                       "dns",      "probes", "ha", "history", NULL};
    if (!cJSON_IsObject(root))
        return fail_type(ld, "", "object at the top level", root);
    int rc = check_secrets(ld, root, "");
    if (rc < 0 || (rc = check_keys(ld, root, "", keys)) < 0)
        return rc;

    const char *id = "steward";
    if ((rc = get_string(ld, root, "", "id", false, &id)) < 0)
        return rc;
    if (!matches_name(id, 64))
        return fail_type(ld, "id", "string matching [A-Za-z0-9_-]{1,64}",
                         cJSON_GetObjectItemCaseSensitive(root, "id"));
    c->instance_id = sw_xstrdup(id);

    c->state_path = resolve_path(ld->dir, "steward.db");
    int64_t seed = 1;
    const char *market = NULL;
    if ((rc = get_path(ld, root, "", "state", &c->state_path)) < 0 ||
        (rc = get_int64(ld, root, "", "seed", 0, JSON_INT_MAX, "integer >= 0", &seed)) < 0 ||
        (rc = load_log(ld, root, c)) < 0 ||
        (rc = get_string_list(ld, root, "", "plugin_dirs", true, false, &c->plugin_dirs,
                              &c->plugin_dir_count)) < 0 ||
        (rc = get_path(ld, root, "", "lua_path", &c->lua_path)) < 0 ||
        (rc = get_string(ld, root, "", "market", true, &market)) < 0)
        return rc;
    c->seed = (uint64_t)seed;
    c->market_plugin = sw_xstrdup(market);
    if ((rc = load_self(ld, root, c)) < 0 || (rc = load_plugins(ld, root, c)) < 0 ||
        (rc = load_metrics(ld, root, c)) < 0 || (rc = load_guard(ld, root, c)) < 0 ||
        (rc = load_groups(ld, root, c)) < 0 || (rc = load_policies(ld, root, c)) < 0 ||
        (rc = load_admin(ld, root, c)) < 0 || (rc = load_dns(ld, root, c)) < 0 ||
        (rc = load_probes(ld, root, c)) < 0 || (rc = load_ha(ld, root, c)) < 0 ||
        (rc = load_history(ld, root, c)) < 0)
        return rc;
    /* Validated by the simulator, which alone reads it: a live run ignores it. */
    const cJSON *simulation = NULL;
    if ((rc = get_object(ld, root, "", "simulation", &simulation)) < 0)
        return rc;
    if (simulation != NULL)
        c->simulation_json = json_text(simulation);
    return 0;
}

/* ---- public -------------------------------------------------------------------------- */

static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (slash == NULL)
        return sw_xstrdup(".");
    if (slash == path)
        return sw_xstrdup("/");
    return sw_xstrndup(path, (size_t)(slash - path));
}

struct sw_config *sw_config_parse(const char *text, size_t len, const char *path,
                                  struct sw_error *err)
{
    if (path == NULL)
        path = "(config)";
    cJSON *root = sw_json_parse_relaxed(text, len, path, err);
    if (root == NULL)
        return NULL;
    struct sw_config *c = sw_xcalloc(1, sizeof(*c));
    c->path = sw_xstrdup(path);
    c->dir = dir_of(path);
    c->log_format = SW_LOG_FORMAT_TEXT;
    c->log_level = SW_LOG_INFO;
    struct loader ld = {path, c->dir, err};
    int rc = load_root(&ld, root, c);
    cJSON_Delete(root);
    if (rc < 0) {
        sw_config_free(c);
        return NULL;
    }
    return c;
}

struct sw_config *sw_config_load(const char *path, struct sw_error *err)
{
    char *text = NULL;
    size_t len = 0;
    int rc = read_whole_file(path, CONFIG_MAX_BYTES, &text, &len);
    if (rc == SW_ETOOBIG) {
        sw_error_set(err, SW_ECONFIG, "%s: larger than %zu MiB", path, CONFIG_MAX_BYTES >> 20);
        return NULL;
    }
    if (rc < 0) {
        sw_error_set(err, SW_EIO, "%s: cannot read: %s", path, strerror(-rc));
        return NULL;
    }
    struct sw_config *c = sw_config_parse(text, len, path, err);
    free(text);
    return c;
}

static void free_strings(char **items, size_t count)
{
    for (size_t i = 0; i < count; i++)
        free(items[i]);
    free(items);
}

void sw_config_free(struct sw_config *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < c->group_count; i++) {
        struct sw_group_config *g = &c->groups[i];
        free(g->name);
        free_strings(g->regions, g->region_count);
        free(g->profile_json);
        free(g->sdl_template);
        free_strings(g->providers, g->provider_count);
    }
    free(c->groups);
    for (size_t i = 0; i < c->policy_count; i++) {
        free(c->policies[i].name);
        free(c->policies[i].file);
        free(c->policies[i].params_json);
    }
    free(c->policies);
    for (size_t i = 0; i < c->plugin_count; i++) {
        free(c->plugins[i].name);
        free(c->plugins[i].config_json);
    }
    free(c->plugins);
    for (size_t i = 0; i < c->metric_count; i++) {
        free(c->metrics[i].name);
        free(c->metrics[i].plugin);
        free(c->metrics[i].query);
    }
    free(c->metrics);
    free(c->probes.plugin);
    free_strings(c->probes.targets, c->probes.target_count);
    free(c->probes.path);
    free(c->probes.target_template);
    if (c->ha != NULL) { /* ha */
        free_strings(c->ha->endpoints, c->ha->endpoint_count);
        free(c->ha->prefix);
        free(c->ha->replica);
        free(c->ha);
    }
    free_strings(c->plugin_dirs, c->plugin_dir_count);
    free(c->path);
    free(c->dir);
    free(c->instance_id);
    free(c->state_path);
    free(c->lua_path);
    free(c->market_plugin);
    free(c->self_market_id);
    free(c->simulation_json);
    free(c->admin.host);
    free(c->admin.token_env);
    dns_config_free(c->dns);
    free(c);
}

const struct sw_group_config *sw_config_group(const struct sw_config *config, const char *name)
{
    for (size_t i = 0; config != NULL && name != NULL && i < config->group_count; i++)
        if (config->groups[i].name != NULL && strcmp(config->groups[i].name, name) == 0)
            return &config->groups[i];
    return NULL;
}

const struct sw_plugin_config *sw_config_plugin(const struct sw_config *config, const char *name)
{
    for (size_t i = 0; config != NULL && name != NULL && i < config->plugin_count; i++)
        if (strcmp(config->plugins[i].name, name) == 0)
            return &config->plugins[i];
    return NULL;
}
