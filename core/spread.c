#include "spread.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mem.h"

/* A share times a size is a float: 0.5 × 4 must give 2, not 1.9999. */
#define SHARE_EPSILON 1e-9
/* Same tolerance as the market plugins use for a group's max price. */
#define PRICE_EPSILON 1e-12

/* ---- names ---------------------------------------------------------------------------- */

void sw_names_clear(struct sw_names *names)
{
    if (names == NULL)
        return;
    for (size_t i = 0; i < names->count; i++)
        free(names->items[i]);
    free(names->items);
    *names = (struct sw_names){0};
}

bool sw_names_has(const struct sw_names *names, const char *name)
{
    for (size_t i = 0; names != NULL && name != NULL && i < names->count; i++)
        if (strcmp(names->items[i], name) == 0)
            return true;
    return false;
}

void sw_names_add(struct sw_names *names, const char *name)
{
    if (name == NULL || sw_names_has(names, name))
        return;
    if (names->count == names->cap) {
        names->cap = names->cap ? names->cap * 2 : 8;
        names->items = sw_xrealloc(names->items, names->cap * sizeof(char *));
    }
    names->items[names->count++] = sw_xstrdup(name);
}

static int string_order(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* ---- counts --------------------------------------------------------------------------- */

void sw_provider_counts_clear(struct sw_provider_counts *counts)
{
    if (counts == NULL)
        return;
    free(counts->items);
    *counts = (struct sw_provider_counts){0};
}

int sw_provider_counts_get(const struct sw_provider_counts *counts, const char *provider)
{
    for (size_t i = 0; provider != NULL && i < counts->count; i++)
        if (strcmp(counts->items[i].provider, provider) == 0)
            return counts->items[i].count;
    return 0;
}

void sw_provider_counts_add(struct sw_provider_counts *counts, const char *provider, int delta)
{
    if (provider == NULL)
        return;
    for (size_t i = 0; i < counts->count; i++) {
        if (strcmp(counts->items[i].provider, provider) == 0) {
            counts->items[i].count += delta;
            return;
        }
    }
    if (counts->count == counts->cap) {
        counts->cap = counts->cap ? counts->cap * 2 : 8;
        counts->items = sw_xrealloc(counts->items, counts->cap * sizeof(*counts->items));
    }
    counts->items[counts->count++] = (struct sw_provider_count){provider, delta};
}

static bool in_group(const struct sw_unit *u, const char *group)
{
    return u->group != NULL && strcmp(u->group, group) == 0;
}

void sw_spread_count(const char *group, const struct sw_units *units, const struct sw_unit *except,
                     struct sw_provider_counts *out)
{
    out->count = 0;
    for (size_t i = 0; i < units->count; i++) {
        const struct sw_unit *u = units->items[i];
        if (u != except && u->provider != NULL && in_group(u, group) && sw_unit_counts(u))
            sw_provider_counts_add(out, u->provider, 1);
    }
}

static int distinct_providers(const struct sw_provider_counts *counts)
{
    int n = 0;
    for (size_t i = 0; i < counts->count; i++)
        n += counts->items[i].count > 0;
    return n;
}

static int placed_units(const struct sw_provider_counts *counts)
{
    int n = 0;
    for (size_t i = 0; i < counts->count; i++)
        n += counts->items[i].count > 0 ? counts->items[i].count : 0;
    return n;
}

/* ---- rules ---------------------------------------------------------------------------- */

static bool has_share_limit(const struct sw_group_config *g)
{
    return g->spread_max_share > 0 && g->spread_max_share < 1;
}

bool sw_spread_enabled(const struct sw_group_config *g)
{
    return g != NULL && (has_share_limit(g) || g->spread_min_providers > 1);
}

int sw_spread_allowed(const struct sw_group_config *g, int total)
{
    if (g == NULL || !has_share_limit(g))
        return INT_MAX;
    double share = floor(g->spread_max_share * (double)(total > 0 ? total : 0) + SHARE_EPSILON);
    return share < 1 ? 1 : (int)share;
}

/* The largest holder (ties: smallest name), or NULL when nobody holds anything. */
static const struct sw_provider_count *largest(const struct sw_provider_counts *counts)
{
    const struct sw_provider_count *best = NULL;
    for (size_t i = 0; i < counts->count; i++) {
        const struct sw_provider_count *c = &counts->items[i];
        if (c->count <= 0)
            continue;
        if (best == NULL || c->count > best->count ||
            (c->count == best->count && strcmp(c->provider, best->provider) < 0))
            best = c;
    }
    return best;
}

static const char *heavy_in(const struct sw_group_config *g,
                            const struct sw_provider_counts *counts, int total)
{
    if (!sw_spread_enabled(g) || total <= 0)
        return NULL;
    const struct sw_provider_count *top = largest(counts);
    if (top == NULL)
        return NULL;
    if (top->count > sw_spread_allowed(g, total))
        return top->provider;
    int want = g->spread_min_providers;
    if (want > 1 && total >= want && distinct_providers(counts) < want && top->count >= 2)
        return top->provider;
    return NULL;
}

const char *sw_spread_heavy(const struct sw_group_config *g, const struct sw_units *units,
                            int total)
{
    if (!sw_spread_enabled(g))
        return NULL;
    struct sw_provider_counts counts = {0};
    sw_spread_count(g->name, units, NULL, &counts);
    const char *heavy = heavy_in(g, &counts, total);
    sw_provider_counts_clear(&counts);
    return heavy;
}

/* ---- avoid lists ---------------------------------------------------------------------- */

static bool offer_eligible(const struct sw_group_config *g, const struct sw_offer *o,
                           const char *region)
{
    if (o->provider == NULL || o->region == NULL || strcmp(o->region, region) != 0)
        return false;
    return g->max_price_usd_hour <= 0 ||
           o->price_usd_hour <= g->max_price_usd_hour * (1 + PRICE_EPSILON);
}

/* The offer the marketplace would pick in region among providers not in avoid: lowest
 * price, ties to the smallest name. NULL when none. */
static const struct sw_offer *cheapest(const struct sw_group_config *g,
                                       const struct sw_offers *offers, const char *region,
                                       const struct sw_names *avoid)
{
    const struct sw_offer *best = NULL;
    for (size_t i = 0; offers != NULL && i < offers->count; i++) {
        const struct sw_offer *o = &offers->items[i];
        if (!offer_eligible(g, o, region) || sw_names_has(avoid, o->provider))
            continue;
        if (best == NULL || o->price_usd_hour < best->price_usd_hour ||
            (o->price_usd_hour == best->price_usd_hour && strcmp(o->provider, best->provider) < 0))
            best = o;
    }
    return best;
}

static bool region_has_offers(const struct sw_group_config *g, const struct sw_offers *offers,
                              const char *region)
{
    for (size_t i = 0; offers != NULL && i < offers->count; i++)
        if (offer_eligible(g, &offers->items[i], region))
            return true;
    return false;
}

static void add_all(struct sw_names *out, const struct sw_names *from)
{
    for (size_t i = 0; from != NULL && i < from->count; i++)
        sw_names_add(out, from->items[i]);
}

/* The avoid list of one more unit in region, given where the group's units are (counts). */
static int avoid_for(const struct sw_spread_input *in, const struct sw_provider_counts *counts,
                     const char *region, struct sw_names *out)
{
    const struct sw_group_config *g = in->group;
    sw_names_clear(out);
    add_all(out, in->backed_off);
    if (sw_spread_enabled(g)) {
        int total = in->target_total;
        int allowed = sw_spread_allowed(g, total);
        for (size_t i = 0; i < counts->count; i++)
            if (counts->items[i].count >= allowed)
                sw_names_add(out, counts->items[i].provider);
        /* Each later unit can add at most one provider: if even all of them landing on new
         * ones would leave the group short, this one must go somewhere new. */
        int want = g->spread_min_providers;
        int distinct = distinct_providers(counts);
        int later = total - placed_units(counts) - 1;
        if (want > 1 && total >= want && distinct + (later > 0 ? later : 0) < want)
            for (size_t i = 0; i < counts->count; i++)
                if (counts->items[i].count > 0)
                    sw_names_add(out, counts->items[i].provider);
    }
    if (region == NULL || !region_has_offers(g, in->offers, region) ||
        cheapest(g, in->offers, region, out) != NULL)
        return SW_SPREAD_KEPT;
    sw_names_clear(out);
    add_all(out, in->backed_off);
    if (cheapest(g, in->offers, region, out) != NULL)
        return SW_SPREAD_SPREAD_DROPPED;
    sw_names_clear(out);
    return SW_SPREAD_ALL_DROPPED;
}

static int waiting_order(const void *pa, const void *pb)
{
    const struct sw_unit *a = *(const struct sw_unit *const *)pa;
    const struct sw_unit *b = *(const struct sw_unit *const *)pb;
    if (a->ordered_ms != b->ordered_ms)
        return a->ordered_ms < b->ordered_ms ? -1 : 1;
    return strcmp(a->key != NULL ? a->key : "", b->key != NULL ? b->key : "");
}

int sw_spread_avoid(const struct sw_spread_input *in, const struct sw_unit *unit,
                    struct sw_names *out)
{
    const struct sw_group_config *g = in->group;
    struct sw_provider_counts counts = {0};
    if (sw_spread_enabled(g)) {
        sw_spread_count(g->name, in->units, unit, &counts);
        /* The group's other units still waiting for a bid will land somewhere too: on
         * what the marketplace would choose for them, given their own avoid lists. */
        const struct sw_unit **waiting = sw_xcalloc(in->units->count + 1, sizeof(*waiting));
        size_t waiting_count = 0;
        for (size_t i = 0; i < in->units->count; i++) {
            const struct sw_unit *u = in->units->items[i];
            if (u != unit && u->provider == NULL && u->region != NULL && in_group(u, g->name) &&
                sw_unit_counts(u))
                waiting[waiting_count++] = u;
        }
        qsort(waiting, waiting_count, sizeof(*waiting), waiting_order);
        struct sw_names guess_avoid = {0};
        for (size_t i = 0; i < waiting_count; i++) {
            avoid_for(in, &counts, waiting[i]->region, &guess_avoid);
            const struct sw_offer *o = cheapest(g, in->offers, waiting[i]->region, &guess_avoid);
            if (o != NULL)
                sw_provider_counts_add(&counts, o->provider, 1);
        }
        sw_names_clear(&guess_avoid);
        free(waiting);
    }
    int relaxed = avoid_for(in, &counts, unit->region, out);
    sw_provider_counts_clear(&counts);
    if (out->count > 1)
        qsort(out->items, out->count, sizeof(char *), string_order);
    return relaxed;
}

/* ---- rebalancing ---------------------------------------------------------------------- */

static bool group_in_desired(const struct sw_desired *desired, const char *group)
{
    for (size_t i = 0; i < desired->count; i++)
        if (strcmp(desired->entries[i].group, group) == 0)
            return true;
    return false;
}

/* Nothing on its way in or out: a rebalance only starts from a settled group. */
static bool group_settled(const struct sw_units *units, const char *group)
{
    for (size_t i = 0; i < units->count; i++) {
        const struct sw_unit *u = units->items[i];
        if (in_group(u, group) && (sw_unit_is_pending(u) || u->state == SW_UNIT_RELEASING))
            return false;
    }
    return true;
}

/* The region where provider holds most of the group's units (ties: smallest name). */
static const char *heavy_region(const struct sw_units *units, const char *group,
                                const char *provider)
{
    const char *best = NULL;
    int best_count = 0;
    for (size_t i = 0; i < units->count; i++) {
        const struct sw_unit *u = units->items[i];
        if (!in_group(u, group) || u->region == NULL || u->provider == NULL ||
            strcmp(u->provider, provider) != 0 || !sw_unit_counts(u))
            continue;
        int n = 0;
        for (size_t j = 0; j < units->count; j++) {
            const struct sw_unit *v = units->items[j];
            n += in_group(v, group) && v->region != NULL && v->provider != NULL &&
                 strcmp(v->region, u->region) == 0 && strcmp(v->provider, provider) == 0 &&
                 sw_unit_counts(v);
        }
        if (n > best_count || (n == best_count && strcmp(u->region, best) < 0)) {
            best = u->region;
            best_count = n;
        }
    }
    return best;
}

static void rebalance_group(const struct sw_group_config *g, const struct sw_desired *desired,
                            const struct sw_units *units, const struct sw_offers *offers,
                            const struct sw_names *backed_off, struct sw_actions *out)
{
    int total = sw_desired_group_total(desired, g->name);
    if (total <= 0 || sw_units_count_capacity(units, g->name, NULL) != total ||
        !group_settled(units, g->name))
        return;
    struct sw_provider_counts counts = {0};
    sw_spread_count(g->name, units, NULL, &counts);
    const char *heavy = heavy_in(g, &counts, total);
    const char *region = heavy != NULL ? heavy_region(units, g->name, heavy) : NULL;
    if (region == NULL) {
        sw_provider_counts_clear(&counts);
        return;
    }
    int allowed = sw_spread_allowed(g, total);
    int distinct = distinct_providers(&counts);
    bool need_new = g->spread_min_providers > 1 && distinct < g->spread_min_providers;
    /* Where the extra unit may go: anyone but the heavy one, below its own limit once it
     * has the unit, and new to the group if the group spans too few providers. */
    struct sw_names avoid = {0};
    add_all(&avoid, backed_off);
    sw_names_add(&avoid, heavy);
    for (size_t i = 0; i < counts.count; i++)
        if (counts.items[i].count + 1 > allowed || (need_new && counts.items[i].count > 0))
            sw_names_add(&avoid, counts.items[i].provider);
    const struct sw_offer *target = cheapest(g, offers, region, &avoid);
    if (target != NULL) {
        int held = sw_provider_counts_get(&counts, heavy);
        char reason[256];
        if (held > allowed)
            snprintf(reason, sizeof(reason),
                     "spread: %s holds %d of %s's %d units (at most %d per provider); adding one "
                     "elsewhere, then releasing one there",
                     heavy, held, g->name, total, allowed);
        else
            snprintf(reason, sizeof(reason),
                     "spread: %s spans %d provider%s, needs %d; adding one elsewhere, then "
                     "releasing one on %s",
                     g->name, distinct, distinct == 1 ? "" : "s", g->spread_min_providers, heavy);
        sw_actions_add(out, SW_ACTION_ACQUIRE, g->name, region, NULL, target->price_usd_hour,
                       reason);
    }
    sw_names_clear(&avoid);
    sw_provider_counts_clear(&counts);
}

void sw_spread_rebalance(const struct sw_desired *desired, const struct sw_units *units,
                         const struct sw_offers *offers, const struct sw_group_config *groups,
                         size_t group_count, const struct sw_names *backed_off,
                         struct sw_actions *out)
{
    for (size_t i = 0; i < group_count; i++)
        if (sw_spread_enabled(&groups[i]) && group_in_desired(desired, groups[i].name))
            rebalance_group(&groups[i], desired, units, offers, backed_off, out);
}
