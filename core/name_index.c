#include "name_index.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mem.h"

/* Eight bytes at a time (byte-wise FNV-1a multiplies once per byte, a chain of dependent
 * multiplies). Only the index sees it: nothing depends on its values but lookups. */
static uint64_t hash_name(const char *name)
{
    size_t len = strlen(name);
    const unsigned char *p = (const unsigned char *)name;
    uint64_t h = 0x9e3779b97f4a7c15ULL ^ (uint64_t)len;
    uint64_t word;
    for (; len >= 8; p += 8, len -= 8) {
        memcpy(&word, p, 8);
        h = (h ^ word) * 0xff51afd7ed558ccdULL;
        h ^= h >> 32;
    }
    word = 0;
    for (size_t i = 0; i < len; i++) /* the tail: a byte loop beats a memcpy call here */
        word |= (uint64_t)p[i] << (8 * i);
    h = (h ^ word) * 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 29;
    h *= 0xff51afd7ed558ccdULL;
    return h ^ (h >> 32);
}

static void place(struct sw_name_index_slot *slots, size_t cap,
                  const struct sw_name_index_slot *slot)
{
    size_t i = (size_t)slot->hash & (cap - 1);
    while (slots[i].name != NULL)
        i = (i + 1) & (cap - 1);
    slots[i] = *slot;
}

/* The slot holding name (hash h), or the empty slot where it would go. */
static struct sw_name_index_slot *find(const struct sw_name_index *ix, const char *name, uint64_t h)
{
    size_t i = (size_t)h & (ix->cap - 1);
    while (ix->slots[i].name != NULL &&
           (ix->slots[i].hash != h || strcmp(ix->slots[i].name, name) != 0))
        i = (i + 1) & (ix->cap - 1);
    return &ix->slots[i];
}

uint64_t sw_name_hash(const char *name)
{
    return name != NULL ? hash_name(name) : 0;
}

void sw_name_index_init(struct sw_name_index *ix, size_t expected)
{
    size_t cap = 16;
    while (cap < expected * 2)
        cap *= 2;
    ix->slots = sw_xcalloc(cap, sizeof(*ix->slots));
    ix->cap = cap;
    ix->count = 0;
}

void sw_name_index_reset(struct sw_name_index *ix, size_t expected)
{
    size_t cap = 16;
    while (cap < expected * 2)
        cap *= 2;
    if (ix->slots == NULL || ix->cap != cap) {
        free(ix->slots);
        sw_name_index_init(ix, expected);
        return;
    }
    memset(ix->slots, 0, cap * sizeof(*ix->slots));
    ix->count = 0;
}

void sw_name_index_free(struct sw_name_index *ix)
{
    free(ix->slots);
    memset(ix, 0, sizeof(*ix));
}

void sw_name_index_add(struct sw_name_index *ix, const char *name, size_t value)
{
    if (name == NULL)
        return;
    uint64_t h = hash_name(name);
    if (find(ix, name, h)->name != NULL)
        return;
    if ((ix->count + 1) * 2 > ix->cap) { /* at most half full: probe runs stay short */
        size_t cap = ix->cap * 2;
        struct sw_name_index_slot *slots = sw_xcalloc(cap, sizeof(*slots));
        for (size_t i = 0; i < ix->cap; i++)
            if (ix->slots[i].name != NULL)
                place(slots, cap, &ix->slots[i]);
        free(ix->slots);
        ix->slots = slots;
        ix->cap = cap;
    }
    place(ix->slots, ix->cap, &(struct sw_name_index_slot){name, value, h});
    ix->count++;
}

bool sw_name_index_get(const struct sw_name_index *ix, const char *name, size_t *value)
{
    if (name == NULL || ix->cap == 0)
        return false;
    const struct sw_name_index_slot *slot = find(ix, name, hash_name(name));
    if (slot->name == NULL)
        return false;
    if (value != NULL)
        *value = slot->value;
    return true;
}

/* ---- interned names ------------------------------------------------------------------- */

static pthread_mutex_t intern_lock = PTHREAD_MUTEX_INITIALIZER;
static struct sw_name_index interned; /* name → nothing: the slot's name is the copy */

const char *sw_name_intern(const char *name)
{
    if (name == NULL)
        return NULL;
    uint64_t h = hash_name(name);
    pthread_mutex_lock(&intern_lock);
    if (interned.cap == 0)
        sw_name_index_init(&interned, 64);
    const char *copy = find(&interned, name, h)->name;
    if (copy == NULL) {
        copy = sw_xstrdup(name);
        sw_name_index_add(&interned, copy, 0);
    }
    pthread_mutex_unlock(&intern_lock);
    return copy;
}
