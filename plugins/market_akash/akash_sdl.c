/* akash_sdl.c — rendering an SDL template for one unit.
 *
 * Placeholders are {{ name }}; the names are listed in docs/market_akash.md. Values come
 * from the acquire request, the plugin's configuration and the group's profile; each is
 * checked to be a plain YAML scalar (no quotes, colons followed by space, newlines...), so a
 * value can never change the structure of the document it lands in.
 */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "akash.h"

#define SDL_MAX_BYTES ((size_t)1 << 20)

struct buf {
    char *data;
    size_t len;
    size_t cap;
};

static void buf_add(struct buf *b, const char *text, size_t len)
{
    if (b->len + len + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (b->len + len + 1 > cap)
            cap *= 2;
        char *grown = swp_xrealloc(b->data, cap);
        b->data = grown;
        b->cap = cap;
    }
    memcpy(b->data + b->len, text, len);
    b->len += len;
    b->data[b->len] = '\0';
}

static void buf_str(struct buf *b, const char *text)
{
    buf_add(b, text, strlen(text));
}

static bool safe_char(unsigned char ch)
{
    return isalnum(ch) || ch == '.' || ch == '_' || ch == '-' || ch == ':' || ch == '@' ||
           ch == '/' || ch == '+';
}

/* Plain scalars only: letters, digits and . _ - : @ / + (a key like "web-eu-u12", a region,
 * an akash1... address, "1Gi"). */
static bool safe_value(const char *value)
{
    if (value == NULL)
        return false;
    for (const unsigned char *p = (const unsigned char *)value; *p; p++)
        if (!safe_char(*p))
            return false;
    return true;
}

/* "%.6f" without the trailing zeros: 12.5 → "12.5", 1000 → "1000". */
static void format_decimal(double value, char *out, size_t size)
{
    snprintf(out, size, "%.6f", value);
    char *dot = strchr(out, '.');
    if (dot == NULL)
        return;
    char *end = out + strlen(out) - 1;
    while (end > dot && *end == '0')
        *end-- = '\0';
    if (end == dot)
        *end = '\0';
}

static int add_checked(struct buf *b, const char *name, const char *value, struct swp_error *err)
{
    if (!safe_value(value))
        return akash_set_error(err, SWP_ECONFIG,
                               "SDL template: the value of {{%s}} is not a plain scalar "
                               "(allowed: letters, digits and . _ - : @ / +)",
                               name);
    buf_str(b, value);
    return 0;
}

/* A scalar member of the profile, as text. */
static int profile_value(const cJSON *profile, const char *field, const char *placeholder,
                         struct buf *b, struct swp_error *err)
{
    const cJSON *item =
        cJSON_IsObject(profile) ? cJSON_GetObjectItemCaseSensitive(profile, field) : NULL;
    if (item == NULL || cJSON_IsNull(item))
        return akash_set_error(err, SWP_ECONFIG,
                               "SDL template uses {{%s}} but the group's profile has no \"%s\"",
                               placeholder, field);
    char text[64];
    if (cJSON_IsNumber(item)) {
        format_decimal(item->valuedouble, text, sizeof(text));
        buf_str(b, text);
        return 0;
    }
    if (cJSON_IsBool(item)) {
        buf_str(b, cJSON_IsTrue(item) ? "true" : "false");
        return 0;
    }
    if (cJSON_IsString(item))
        return add_checked(b, placeholder, item->valuestring, err);
    return akash_set_error(err, SWP_ECONFIG,
                           "SDL template uses {{%s}} but profile.%s is %s, not a scalar",
                           placeholder, field, akash_json_type(item));
}

static int render_one(const char *name, const struct akash_sdl_vars *v, const cJSON *profile,
                      struct buf *b, struct swp_error *err)
{
    char text[64];
    if (strcmp(name, "region") == 0)
        return add_checked(b, name, v->region, err);
    if (strcmp(name, "group") == 0)
        return add_checked(b, name, v->group ? v->group : "", err);
    if (strcmp(name, "key") == 0)
        return add_checked(b, name, v->key ? v->key : "", err);
    if (strcmp(name, "tag") == 0 || strcmp(name, "instance_id") == 0)
        return add_checked(b, name, v->tag ? v->tag : "", err);
    if (strcmp(name, "max_price_uact") == 0) {
        format_decimal(v->max_price_uact, text, sizeof(text));
        buf_str(b, text);
        return 0;
    }
    if (strcmp(name, "auditors") == 0) {
        buf_str(b, "[");
        for (size_t i = 0; i < v->auditor_count; i++) {
            if (!safe_value(v->auditors[i]))
                return akash_set_error(err, SWP_ECONFIG, "auditors[%zu]: not a plain address", i);
            buf_str(b, i ? ", \"" : "\"");
            buf_str(b, v->auditors[i]);
            buf_str(b, "\"");
        }
        buf_str(b, "]");
        return 0;
    }
    if (strcmp(name, "count") == 0) {
        const cJSON *count =
            cJSON_IsObject(profile) ? cJSON_GetObjectItemCaseSensitive(profile, "count") : NULL;
        double value = 1;
        if (count != NULL) {
            if (!cJSON_IsNumber(count) || count->valuedouble < 1 ||
                count->valuedouble != floor(count->valuedouble) || count->valuedouble > 1000)
                return akash_set_error(err, SWP_ECONFIG,
                                       "profile.count: expected an integer from 1 to 1000");
            value = count->valuedouble;
        }
        snprintf(text, sizeof(text), "%.0f", value);
        buf_str(b, text);
        return 0;
    }
    if (strcmp(name, "cpu") == 0 || strcmp(name, "memory") == 0 || strcmp(name, "storage") == 0)
        return profile_value(profile, name, name, b, err);
    if (strncmp(name, "profile.", 8) == 0 && name[8] != '\0')
        return profile_value(profile, name + 8, name, b, err);
    return akash_set_error(err, SWP_ECONFIG, "SDL template: unknown placeholder {{%s}}", name);
}

char *akash_sdl_render(const char *tmpl, const struct akash_sdl_vars *v, struct swp_error *err)
{
    if (tmpl == NULL) {
        akash_set_error(err, SWP_ECONFIG, "no SDL template");
        return NULL;
    }
    if (strlen(tmpl) > SDL_MAX_BYTES) {
        akash_set_error(err, SWP_ECONFIG, "SDL template larger than %zu bytes", SDL_MAX_BYTES);
        return NULL;
    }
    cJSON *profile = NULL;
    if (v->profile_json != NULL) {
        profile = cJSON_Parse(v->profile_json);
        if (profile != NULL && !cJSON_IsObject(profile)) {
            cJSON_Delete(profile);
            profile = NULL;
        }
    }
    struct buf b = {0};
    const char *p = tmpl;
    int rc = 0;
    while (rc == 0) {
        const char *open = strstr(p, "{{");
        if (open == NULL) {
            buf_str(&b, p);
            break;
        }
        buf_add(&b, p, (size_t)(open - p));
        const char *close = strstr(open + 2, "}}");
        const char *newline = strchr(open + 2, '\n');
        if (close == NULL || (newline != NULL && newline < close)) {
            rc = akash_set_error(err, SWP_ECONFIG, "SDL template: unterminated \"{{\" at byte %zu",
                                 (size_t)(open - tmpl));
            break;
        }
        const char *start = open + 2;
        const char *end = close;
        while (start < end && (*start == ' ' || *start == '\t'))
            start++;
        while (end > start && (end[-1] == ' ' || end[-1] == '\t'))
            end--;
        char name[64];
        size_t len = (size_t)(end - start);
        if (len == 0 || len >= sizeof(name)) {
            rc = akash_set_error(err, SWP_ECONFIG, "SDL template: bad placeholder at byte %zu",
                                 (size_t)(open - tmpl));
            break;
        }
        memcpy(name, start, len);
        name[len] = '\0';
        rc = render_one(name, v, profile, &b, err);
        p = close + 2;
    }
    cJSON_Delete(profile);
    if (rc < 0) {
        free(b.data);
        return NULL;
    }
    /* The key and owner in plain sight for whoever reads the deployment's SDL later; the
     * template's own env entries (STEWARD_UNIT_KEY, STEWARD_TAG) are what reaches the
     * manifest and the containers. */
    if (b.len > 0 && b.data[b.len - 1] != '\n')
        buf_str(&b, "\n");
    char *footer = swp_xasprintf("# steward-unit-key: %s\n# steward-tag: %s\n",
                                 v->key ? v->key : "", v->tag ? v->tag : "");
    buf_str(&b, footer);
    free(footer);
    return b.data;
}

char *akash_marker_find(const char *text, const char *name)
{
    size_t name_len = strlen(name);
    for (const char *p = text ? strstr(text, name) : NULL; p != NULL; p = strstr(p + 1, name)) {
        if (p > text && (isalnum((unsigned char)p[-1]) || p[-1] == '_'))
            continue;
        if (p[name_len] != '=')
            continue;
        const char *value = p + name_len + 1;
        size_t len = 0;
        while (value[len] && safe_char((unsigned char)value[len]) && value[len] != '+')
            len++;
        if (len == 0 || len > 200)
            continue;
        char *out = swp_xcalloc(1, len + 1);
        memcpy(out, value, len);
        return out;
    }
    return NULL;
}
