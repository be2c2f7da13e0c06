/* name_index.h — a string → index map for lookups that would otherwise scan a list per
 * item (units by market id or key while syncing a marketplace listing: O(n²) strcmp at a
 * few hundred units). Names are borrowed: they must outlive the index, which lives for
 * one pass.
 * Context: any thread; one index per user.
 */
#ifndef SW_NAME_INDEX_H
#define SW_NAME_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sw_name_index_slot {
    const char *name; /* NULL: empty */
    size_t value;
    uint64_t hash; /* compared before the names */
};

struct sw_name_index {
    struct sw_name_index_slot *slots; /* owned */
    size_t cap;                       /* a power of two */
    size_t count;
};

/* An empty index sized for about expected names. Free with sw_name_index_free. */
void sw_name_index_init(struct sw_name_index *ix, size_t expected);
void sw_name_index_free(struct sw_name_index *ix);
/* Empties ix and sizes it for about expected names, reusing its slots when the size is
 * the same (an index rebuilt on every pass allocates nothing). ix is zeroed or was
 * initialized. */
void sw_name_index_reset(struct sw_name_index *ix, size_t expected);
/* Maps name (borrowed) to value unless name is already there: the first one added stays,
 * as in a front-to-back scan. NULL names are ignored. */
void sw_name_index_add(struct sw_name_index *ix, const char *name, size_t value);
/* True with *value set when name is in the index; false for NULL or absent names. */
bool sw_name_index_get(const struct sw_name_index *ix, const char *name, size_t *value);

/* The hash the index uses (0 for NULL): callers comparing many names against a few can
 * compare hashes first and strcmp only on a match. */
uint64_t sw_name_hash(const char *name);

/* ---- interned names ---------------------------------------------------------------------
 * One process-wide copy of each group and region name: the model (model.h) keeps these
 * names interned, so two equal names there are one pointer and the pipeline's hot
 * comparisons (desired vs desired, unit vs unit, unit vs desired) need no strcmp. The
 * copies live until the process exits (a few dozen names: groups and regions), reachable
 * from a static table.
 * Context: any thread (a mutex guards the table; only creating a unit, a desired entry or
 * an offer interns, never a comparison). */

/* The interned copy of name (equal content, one pointer per content); NULL for NULL. */
const char *sw_name_intern(const char *name);

/* Equality for names of which either may be interned or not: equal pointers first. */
static inline bool sw_name_eq(const char *a, const char *b)
{
    return a == b || (a != NULL && b != NULL && a[0] == b[0] && __builtin_strcmp(a, b) == 0);
}

#endif /* SW_NAME_INDEX_H */
