/* model.h — the plain data the decision pipeline passes around: desired state, units of
 * capacity, offers, metric samples and actions. Policy, guard, planner, journal and runtime
 * all speak these types; nothing here does I/O.
 * Ownership: every container owns its items and strings; *_free releases them (NULL ok).
 */
#ifndef SW_MODEL_H
#define SW_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "steward/swp_types.h"

/* ---- desired state: group → region → count ----------------------------------------- */

/* In a struct sw_desired, group and region are interned (sw_name_intern, name_index.h):
 * equal names are equal pointers, and nothing frees them. Arrays of entries handed to
 * sw_desired_assign_sorted may hold any strings. */
struct sw_desired_entry {
    char *group;
    char *region;
    int count;
};

struct sw_desired {
    struct sw_desired_entry *entries; /* kept sorted by (group, region) */
    size_t count;
    size_t cap;
};

void sw_desired_init(struct sw_desired *d);
void sw_desired_clear(struct sw_desired *d); /* frees entries, keeps d usable */
/* Sets (creates or overwrites) one count; a count of 0 keeps the entry (explicit 0). */
void sw_desired_set(struct sw_desired *d, const char *group, const char *region, int count);
/* 0 when absent. */
int sw_desired_get(const struct sw_desired *d, const char *group, const char *region);
bool sw_desired_has(const struct sw_desired *d, const char *group, const char *region);
int sw_desired_group_total(const struct sw_desired *d, const char *group);
void sw_desired_copy(struct sw_desired *dst, const struct sw_desired *src);
/* Makes d hold exactly entries[0..count) (strings copied), which must be sorted by
 * (group, region) without duplicates. Keeps d's strings when the keys are the same as
 * before (no allocation: the steady state of a tick). */
void sw_desired_assign_sorted(struct sw_desired *d, const struct sw_desired_entry *entries,
                              size_t count);
bool sw_desired_equal(const struct sw_desired *a, const struct sw_desired *b);
/* {"group":{"region":n,...},...} in sorted order; owned by the caller. */
char *sw_desired_to_json(const struct sw_desired *d);
/* Parses what sw_desired_to_json wrote; 0 or SW_EINVAL. */
int sw_desired_from_json(struct sw_desired *d, const char *json);

/* ---- units of capacity ---------------------------------------------------------------- */

/* swp_unit_state values plus the core-only RELEASING. */
enum sw_unit_state {
    SW_UNIT_ORDERED = SWP_UNIT_ORDERED,
    SW_UNIT_CREATED = SWP_UNIT_CREATED,
    SW_UNIT_LEASED = SWP_UNIT_LEASED,
    SW_UNIT_READY = SWP_UNIT_READY,
    SW_UNIT_CLOSED = SWP_UNIT_CLOSED,
    SW_UNIT_RELEASING = 5,
};

const char *sw_unit_state_name(int state); /* "ordered", "created", ... */
int sw_unit_state_parse(const char *name); /* -1 if unknown */

struct sw_unit {
    char *key;          /* idempotency key of the acquire intent; unique */
    char *market_id;    /* NULL until the marketplace created it */
    char *group;        /* interned (sw_name_intern): never freed, equal names equal pointers */
    char *region;       /* interned, as group */
    char *provider;     /* NULL until leased */
    double price_usd_hour;
    int state;          /* enum sw_unit_state */
    bool self;          /* steward runs inside it: never released */
    bool unhealthy;     /* failed probes past the threshold: the planner replaces it */
    int probe_failures; /* consecutive */
    int64_t ordered_ms;
    int64_t ready_ms;
    int64_t closed_ms;
    char **uris;
    size_t uri_count;
    char *close_reason;
    /* Set by sw_unit_new from a process-wide counter, kept by sw_unit_clone, never reused;
     * 0 for a unit not made by sw_unit_new. Key, group and region never change for one
     * serial: caches keyed by (serial, state, ...) need not compare names. */
    uint64_t serial;
    /* the runtime's watch pass: this unit was paired with listing entry watch_pos
     * under the market's listing version watch_version (0: never), when it had a market id
     * or not (watch_had_id). Its key never changes and its market id is only ever set once,
     * so under the same version the pairing is the same. */
    uint64_t watch_version;
    size_t watch_pos;
    bool watch_had_id;
    /* the listing entry of that pairing was applied to this unit (its market id, provider,
     * price and uris) and no other report has been applied since: under the same version
     * the entry is the same, so applying it again would change nothing. Cleared by every
     * writer of those fields on a unit the runtime holds. */
    bool watch_applied;
};

struct sw_units {
    struct sw_unit **items; /* owned */
    size_t count;
    size_t cap;
};

/* A zeroed unit with key copied, group and region interned, and a new serial. Owned by the
 * caller until added. */
struct sw_unit *sw_unit_new(const char *key, const char *group, const char *region);
void sw_unit_free(struct sw_unit *u);
struct sw_unit *sw_unit_clone(const struct sw_unit *u);
void sw_unit_set_uris(struct sw_unit *u, const char *const *uris, size_t count);
/* The same from a JSON array (a `const cJSON *`, kept out of this header's includes): its
 * string items, in order; other items are skipped. The array stays the caller's. */
void sw_unit_set_uris_json(struct sw_unit *u, const void *array);
/* ORDERED, CREATED or LEASED: capacity on its way. */
bool sw_unit_is_pending(const struct sw_unit *u);
/* Counts as capacity for planning: pending or ready, not releasing, not closed, healthy. */
bool sw_unit_counts(const struct sw_unit *u);

void sw_units_init(struct sw_units *us);
void sw_units_clear(struct sw_units *us);
/* Takes ownership of u. */
void sw_units_add(struct sw_units *us, struct sw_unit *u);
/* Removes and frees the unit at index i (order of the rest is kept). */
void sw_units_remove_at(struct sw_units *us, size_t i);
struct sw_unit *sw_units_find_key(const struct sw_units *us, const char *key);
struct sw_unit *sw_units_find_market_id(const struct sw_units *us, const char *market_id);
/* Units that count as capacity in (group, region); region NULL means all regions. */
int sw_units_count_capacity(const struct sw_units *us, const char *group, const char *region);
/* Units not closed (what costs money or may soon). */
int sw_units_count_open(const struct sw_units *us);
/* Sum of price_usd_hour over units not closed. */
double sw_units_spend_usd_hour(const struct sw_units *us);

/* ---- offers --------------------------------------------------------------------------- */

struct sw_offer {
    char *provider;
    char *region;
    double price_usd_hour;
    bool audited;
};

struct sw_offers {
    struct sw_offer *items;
    size_t count;
    size_t cap;
    /* set anew (never twice the same) by every sw_offers_add, 0 after init or
     * clear, kept by sw_offers_replace when it writes only prices and audit flags: equal
     * non-zero serials mean the same providers and regions in the same order. */
    uint64_t names_serial;
};

void sw_offers_init(struct sw_offers *o);
void sw_offers_clear(struct sw_offers *o);
void sw_offers_add(struct sw_offers *o, const char *provider, const char *region,
                   double price_usd_hour, bool audited);
/* Replaces the contents with the offers that name a provider and a region, in order
 * (offers borrowed; strings copied). Equivalent to clear + add of each. */
void sw_offers_replace(struct sw_offers *o, const struct swp_offer *offers, size_t count);
/* Lowest asking price in region, or -1 when nobody offers there. */
double sw_offers_best_price(const struct sw_offers *o, const char *region);
/* The same among the listed providers only (a group pinned to providers); count 0 = all. */
double sw_offers_best_price_among(const struct sw_offers *o, const char *region,
                                  const char *const *providers, size_t provider_count);

/* ---- metric samples ------------------------------------------------------------------- */

struct sw_sample {
    /* the same array as the previous sample's when the reporter's were one array (a
     * put compares those names once); owned by the first sample that has it */
    char **label_names;
    char **label_values;
    size_t label_count;
    double value;
};

/* The result of one named query, as the policy sees it through ctx.metrics. */
struct sw_metric {
    char *name;
    int status;   /* 0, or the error code of the failed query */
    char *error;  /* message when status < 0 */
    int64_t at_ms;
    struct sw_sample *samples;
    size_t sample_count;
    /* set when sw_metric_set_put makes the samples' labels anew, never twice to the
     * same value, kept while a scrape of the same series changes only values; 0 for a
     * metric not made by sw_metric_set_put. Lets sum_by reuse what it derived from labels. */
    uint64_t series_serial;
};

struct sw_metric_set {
    struct sw_metric *items;
    size_t count;
    size_t cap;
};

void sw_metric_set_init(struct sw_metric_set *m);
void sw_metric_set_clear(struct sw_metric_set *m);
/* Replaces any metric of the same name; copies everything. */
void sw_metric_set_put(struct sw_metric_set *m, const char *name, int64_t at_ms,
                       const struct swp_sample *samples, size_t count);
void sw_metric_set_put_error(struct sw_metric_set *m, const char *name, int64_t at_ms,
                             int status, const char *error);
const struct sw_metric *sw_metric_set_get(const struct sw_metric_set *m, const char *name);

/* ---- actions -------------------------------------------------------------------------- */

enum sw_action_kind {
    SW_ACTION_ACQUIRE = 1,
    SW_ACTION_RELEASE = 2,
};

struct sw_action {
    int kind;
    char *group;
    char *region;
    char *unit_key;       /* RELEASE: the unit; ACQUIRE: NULL until the runtime assigns */
    double price_usd_hour; /* ACQUIRE: best offer when planned; RELEASE: the unit's price */
    char *reason;         /* why the planner wants it, or why the guard refused it */
};

struct sw_actions {
    struct sw_action *items;
    size_t count;
    size_t cap;
};

void sw_actions_init(struct sw_actions *a);
void sw_actions_clear(struct sw_actions *a);
/* Copies strings. Returns the new action. */
struct sw_action *sw_actions_add(struct sw_actions *a, int kind, const char *group,
                                 const char *region, const char *unit_key,
                                 double price_usd_hour, const char *reason);
/* Moves a->items[i] to dst (appended) with a new reason; keeps order of the rest. */
void sw_actions_move(struct sw_actions *a, size_t i, struct sw_actions *dst,
                     const char *reason);
/* [{"kind":"acquire","group":..,"region":..,"unit":..,"price_usd_hour":..,"reason":..}] */
char *sw_actions_to_json(const struct sw_actions *a);
const char *sw_action_kind_name(int kind);

#endif /* SW_MODEL_H */
