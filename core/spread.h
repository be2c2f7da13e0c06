/* spread.h — keeps a group's units spread over providers, so that one provider going away
 * takes at most a known share of the group with it. It works at guard level: the policy
 * says how many units, never where they may pile up.
 *
 * A group's "spread" (config.h) caps the units one provider may hold at
 * max(1, floor(max_share_per_provider × size)) and asks a group of min_providers units or
 * more to span min_providers distinct providers. Three uses:
 *   - sw_spread_avoid: the avoid_providers of one acquire (spread + providers in back-off),
 *     so the marketplace's bid choice honours the spread;
 *   - sw_spread_heavy: the provider a group holds too much of (the planner then keeps
 *     replacements and releases there first);
 *   - sw_spread_rebalance: one extra acquire elsewhere for a settled group that is over its
 *     spread; the planner releases the surplus on the heavy provider once it is ready.
 * Context: loop thread only. Pure logic on borrowed data.
 */
#ifndef SW_SPREAD_H
#define SW_SPREAD_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "model.h"

/* A set of provider names. Owns its strings; zero-initialised is empty. */
struct sw_names {
    char **items;
    size_t count;
    size_t cap;
};

/* Frees the strings; names stays usable (empty). NULL ok. */
void sw_names_clear(struct sw_names *names);
/* Adds a copy of name unless it is NULL or already present. */
void sw_names_add(struct sw_names *names, const char *name);
bool sw_names_has(const struct sw_names *names, const char *name);

/* How many units of a group each provider holds. Strings are borrowed from the units the
 * counts were built from; zero-initialised is empty. */
struct sw_provider_count {
    const char *provider;
    int count;
};
struct sw_provider_counts {
    struct sw_provider_count *items;
    size_t count;
    size_t cap;
};

/* Units of group that count as capacity (sw_unit_counts) and whose provider is known,
 * per provider, in order of first appearance; except (may be NULL) is left out. out is
 * cleared first. */
void sw_spread_count(const char *group, const struct sw_units *units, const struct sw_unit *except,
                     struct sw_provider_counts *out);
int sw_provider_counts_get(const struct sw_provider_counts *counts, const char *provider);
/* Adds delta to provider's count (the entry is created at 0 first); provider borrowed. */
void sw_provider_counts_add(struct sw_provider_counts *counts, const char *provider, int delta);
void sw_provider_counts_clear(struct sw_provider_counts *counts);

/* True when g asks for a spread (a share below 1, or min_providers above 1). */
bool sw_spread_enabled(const struct sw_group_config *g);
/* Units one provider may hold in a group of total units: max(1, floor(share × total));
 * INT_MAX when the group has no share limit. */
int sw_spread_allowed(const struct sw_group_config *g, int total);

/* The provider holding more of g than its spread allows in a group of total units,
 * counting units that count and whose provider is known: over the allowed share, or,
 * when the group spans fewer than min_providers, the largest holder if it holds two or
 * more. Greatest count first, ties to the smallest name. NULL when the spread holds or
 * g asks for none. Borrowed from units. */
const char *sw_spread_heavy(const struct sw_group_config *g, const struct sw_units *units,
                            int total);

struct sw_spread_input {
    const struct sw_group_config *group;
    const struct sw_units *units;      /* the acquired unit is among them (pending) */
    const struct sw_offers *offers;    /* may be NULL: no placement guess, no relaxing */
    int target_total;                  /* the group's size once this batch is done */
    const struct sw_names *backed_off; /* providers in back-off; may be NULL */
};

/* What sw_spread_avoid had to give up because nobody offering in the unit's region would
 * be left to choose from (offers known). Capacity first: a unit on a heavy or backed-off
 * provider beats no unit. */
enum sw_spread_relaxed {
    SW_SPREAD_KEPT = 0,       /* every rule holds */
    SW_SPREAD_SPREAD_DROPPED, /* only providers in back-off are avoided */
    SW_SPREAD_ALL_DROPPED,    /* nothing is avoided */
};

/* Fills out (cleared first, sorted by name) with the providers the acquire of unit must
 * not land on: providers in back-off; providers already holding their allowed share of
 * target_total; and, when the group could not otherwise reach min_providers, every
 * provider it already uses. Counted: units that count with a known provider, plus the
 * group's other units still waiting for a bid, each placed (in order: ordered_ms, then
 * key) on the cheapest offer in its region that its own avoid list allows, which is what
 * the marketplace will do with it. Returns an enum sw_spread_relaxed. in and unit are
 * borrowed; out's strings are copies. */
int sw_spread_avoid(const struct sw_spread_input *in, const struct sw_unit *unit,
                    struct sw_names *out);

/* Appends to out one ACQUIRE per group that is settled (in desired, capacity equal to its
 * desired total, nothing pending or releasing) yet has a heavy provider, in the region
 * where that provider holds most units, when some other provider offering there (not in
 * backed_off, within max price) could take a unit without reaching its own limit. It is
 * priced at that offer. The group holds one unit above desired until the planner
 * releases the surplus on the heavy provider (planner.h). backed_off may be NULL. */
void sw_spread_rebalance(const struct sw_desired *desired, const struct sw_units *units,
                         const struct sw_offers *offers, const struct sw_group_config *groups,
                         size_t group_count, const struct sw_names *backed_off,
                         struct sw_actions *out);

#endif /* SW_SPREAD_H */
