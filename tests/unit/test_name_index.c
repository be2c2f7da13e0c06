/* test_name_index.c — the string → index map behind the marketplace sync: the first name
 * added wins (as a front-to-back scan finds it), NULL names are never in it, lookups
 * survive growth, and names are compared by content, not by pointer. */
#include <stdio.h>
#include <string.h>

#include "name_index.h"
#include "sw_test.h"

SW_TEST(first_added_wins_and_null_is_absent)
{
    struct sw_name_index ix;
    sw_name_index_init(&ix, 2);
    sw_name_index_add(&ix, "dseq-1", 0);
    sw_name_index_add(&ix, NULL, 1);
    sw_name_index_add(&ix, "dseq-1", 2);
    size_t value = 99;
    SW_ASSERT(sw_name_index_get(&ix, "dseq-1", &value));
    SW_ASSERT_EQ(value, 0);
    SW_ASSERT(!sw_name_index_get(&ix, NULL, &value));
    SW_ASSERT(!sw_name_index_get(&ix, "dseq-2", &value));
    SW_ASSERT_EQ(ix.count, 1);
    sw_name_index_free(&ix);
}

SW_TEST(grows_and_compares_by_content)
{
    struct sw_name_index ix;
    sw_name_index_init(&ix, 0);
    static char names[1000][16];
    for (size_t i = 0; i < 1000; i++) {
        snprintf(names[i], sizeof(names[i]), "unit-%zu", i);
        sw_name_index_add(&ix, names[i], i);
    }
    SW_ASSERT_EQ(ix.count, 1000);
    SW_ASSERT(ix.cap >= 2000);
    for (size_t i = 0; i < 1000; i++) {
        char copy[16];
        snprintf(copy, sizeof(copy), "unit-%zu", i);
        size_t value = 0;
        SW_ASSERT(sw_name_index_get(&ix, copy, &value));
        SW_ASSERT_EQ(value, i);
    }
    SW_ASSERT(!sw_name_index_get(&ix, "unit-1000", NULL));
    sw_name_index_free(&ix);
    SW_ASSERT(ix.slots == NULL);
}

/* one pointer per name, whatever buffer it came from; equal names compare equal
 * through sw_name_eq with or without interning. */
SW_TEST(intern_gives_one_pointer_per_content)
{
    char a[16], b[16];
    snprintf(a, sizeof(a), "eu-%s", "west");
    snprintf(b, sizeof(b), "eu-west");
    const char *ia = sw_name_intern(a), *ib = sw_name_intern(b);
    SW_ASSERT(ia == ib);
    SW_ASSERT(ia != a && ia != b);
    SW_ASSERT_STREQ(ia, "eu-west");
    SW_ASSERT(sw_name_intern(ia) == ia);
    SW_ASSERT(sw_name_intern("eu-east") != ia);
    SW_ASSERT(sw_name_intern(NULL) == NULL);
    a[0] = 'x'; /* the interned copy does not follow its source */
    SW_ASSERT_STREQ(ia, "eu-west");
    SW_ASSERT(sw_name_eq(b, ia));
    SW_ASSERT(!sw_name_eq("eu-east", ia));
    SW_ASSERT(!sw_name_eq(NULL, ia));
    SW_ASSERT(sw_name_eq("", ""));
}

SW_TEST(reset_empties_and_keeps_working)
{
    struct sw_name_index ix = {0};
    sw_name_index_reset(&ix, 4);
    sw_name_index_add(&ix, "a", 1);
    sw_name_index_add(&ix, "b", 2);
    struct sw_name_index_slot *slots = ix.slots;
    sw_name_index_reset(&ix, 4);
    SW_ASSERT(ix.slots == slots); /* same size: same storage */
    SW_ASSERT_EQ(ix.count, 0);
    SW_ASSERT(!sw_name_index_get(&ix, "a", NULL));
    sw_name_index_add(&ix, "b", 7);
    size_t value = 0;
    SW_ASSERT(sw_name_index_get(&ix, "b", &value));
    SW_ASSERT_EQ(value, 7);
    sw_name_index_reset(&ix, 100); /* bigger */
    SW_ASSERT(!sw_name_index_get(&ix, "b", NULL));
    for (size_t i = 0; i < 100; i++) {
        char name[16];
        snprintf(name, sizeof(name), "n%zu", i);
        sw_name_index_add(&ix, sw_name_intern(name), i);
    }
    SW_ASSERT(sw_name_index_get(&ix, "n57", &value));
    SW_ASSERT_EQ(value, 57);
    sw_name_index_free(&ix);
}

SW_TEST_MAIN()
