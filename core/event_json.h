/* event_json.h — the JSON text of a plugin event, as the runtime journals it and hands it
 * to policies, built without a cJSON tree when the plugin's data is already in the form
 * cJSON prints (one event per acquire: a tree, a parse and a print were ~60,000
 * instructions of it).
 * Context: any thread; no state.
 */
#ifndef SW_EVENT_JSON_H
#define SW_EVENT_JSON_H

#include <stdbool.h>
#include <stddef.h>

/* {"type":..,"market_id":..,"reason":..} (the last two only when non-NULL) followed by the
 * fields of data_json when it is a JSON object; a data field whose name equals, ignoring
 * ASCII case, a field already there is dropped; anything else in data_json is ignored.
 * The text is byte for byte what cJSON_PrintUnformatted of that object prints (see
 * sw__event_json_build_tree). type must not be NULL. Returns the text, owned (free()). */
char *sw_event_json_build(const char *type, const char *market_id, const char *reason,
                          const char *data_json);

/* True only when cJSON_ParseWithLength(text, len) certainly gives an object: a strict
 * JSON object with at most whitespace after it (no \u0000, no lone surrogates, no number
 * over 32 characters, at most 64 levels deep). False says nothing: parse to know. */
bool sw_event_json_is_object(const char *text, size_t len);

/* The reference for sw_event_json_build, through a cJSON tree (what it falls back to).
 * Exposed for the tests. Returns the text, owned (free()). */
char *sw__event_json_build_tree(const char *type, const char *market_id, const char *reason,
                                const char *data_json);

/* True when sw_event_json_build copies data_json's fields rather than going through the
 * tree. Exposed for the tests. */
bool sw__event_json_copies(const char *data_json);

#endif /* SW_EVENT_JSON_H */
