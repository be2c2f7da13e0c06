/* sw_test.h — the assertions every C suite uses.
 *
 *   SW_TEST(name) { ... SW_ASSERT_EQ(a, b); ... }
 *   SW_TEST_MAIN()
 *
 * Tests register themselves; the binary runs all of them (or those whose name contains
 * argv[1]), prints one line per test and exits non-zero if any failed. A failed assertion
 * prints both values and ends that test only.
 */
#ifndef SW_TEST_H
#define SW_TEST_H

#include <math.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef void (*sw_test_fn)(void);

struct sw_test_case {
    const char *name;
    sw_test_fn fn;
};

#define SW_TEST_MAX 256
static struct sw_test_case sw_test_cases[SW_TEST_MAX];
static int sw_test_count;
static jmp_buf sw_test_jmp;
static int sw_test_failed_here;

#define SW_TEST(name)                                                                    \
    static void sw_test_##name(void);                                                    \
    __attribute__((constructor)) static void sw_test_register_##name(void)              \
    {                                                                                    \
        if (sw_test_count < SW_TEST_MAX)                                                 \
            sw_test_cases[sw_test_count++] = (struct sw_test_case){#name, sw_test_##name}; \
    }                                                                                    \
    static void sw_test_##name(void)

#define SW_FAIL_AT(...)                                                                  \
    do {                                                                                 \
        fprintf(stderr, "    %s:%d: ", __FILE__, __LINE__);                              \
        fprintf(stderr, __VA_ARGS__);                                                    \
        fputc('\n', stderr);                                                             \
        sw_test_failed_here = 1;                                                         \
        longjmp(sw_test_jmp, 1);                                                         \
    } while (0)

#define SW_ASSERT(cond)                                                                  \
    do {                                                                                 \
        if (!(cond))                                                                     \
            SW_FAIL_AT("assertion failed: %s", #cond);                                   \
    } while (0)

#define SW_ASSERT_EQ(a, b)                                                               \
    do {                                                                                 \
        long long sw_a_ = (long long)(a), sw_b_ = (long long)(b);                        \
        if (sw_a_ != sw_b_)                                                              \
            SW_FAIL_AT("%s == %s: %lld != %lld", #a, #b, sw_a_, sw_b_);                  \
    } while (0)

#define SW_ASSERT_NE(a, b)                                                               \
    do {                                                                                 \
        long long sw_a_ = (long long)(a), sw_b_ = (long long)(b);                        \
        if (sw_a_ == sw_b_)                                                              \
            SW_FAIL_AT("%s != %s: both %lld", #a, #b, sw_a_);                            \
    } while (0)

#define SW_ASSERT_STREQ(a, b)                                                            \
    do {                                                                                 \
        const char *sw_a_ = (a), *sw_b_ = (b);                                           \
        if (sw_a_ == NULL || sw_b_ == NULL || strcmp(sw_a_, sw_b_) != 0)                 \
            SW_FAIL_AT("%s == %s:\n      \"%s\"\n   != \"%s\"", #a, #b,                  \
                       sw_a_ ? sw_a_ : "(null)", sw_b_ ? sw_b_ : "(null)");              \
    } while (0)

#define SW_ASSERT_CONTAINS(haystack, needle)                                             \
    do {                                                                                 \
        const char *sw_h_ = (haystack), *sw_n_ = (needle);                               \
        if (sw_h_ == NULL || strstr(sw_h_, sw_n_) == NULL)                               \
            SW_FAIL_AT("%s does not contain \"%s\":\n      \"%s\"", #haystack, sw_n_,    \
                       sw_h_ ? sw_h_ : "(null)");                                        \
    } while (0)

#define SW_ASSERT_NEAR(a, b, eps)                                                        \
    do {                                                                                 \
        double sw_a_ = (double)(a), sw_b_ = (double)(b);                                 \
        if (fabs(sw_a_ - sw_b_) > (eps))                                                 \
            SW_FAIL_AT("%s ~= %s: %.9g vs %.9g", #a, #b, sw_a_, sw_b_);                  \
    } while (0)

/* xorshift64: the next of a reproducible sequence of test inputs (x must not be 0). */
static inline uint64_t sw_test_next_random(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

#define SW_TEST_MAIN()                                                                   \
    int main(int argc, char **argv)                                                      \
    {                                                                                    \
        volatile int failed = 0, ran = 0; /* live across setjmp: -Wclobbered */          \
        for (volatile int i = 0; i < sw_test_count; i++) {                               \
            if (argc > 1 && strstr(sw_test_cases[i].name, argv[1]) == NULL)              \
                continue;                                                                \
            sw_test_failed_here = 0;                                                     \
            ran++;                                                                       \
            if (setjmp(sw_test_jmp) == 0)                                                \
                sw_test_cases[i].fn();                                                   \
            printf("%s %s\n", sw_test_failed_here ? "FAIL" : "ok  ", sw_test_cases[i].name); \
            fflush(stdout);                                                              \
            failed += sw_test_failed_here;                                               \
        }                                                                                \
        printf("%d passed, %d failed\n", ran - failed, failed);                          \
        return failed ? 1 : (ran ? 0 : 1);                                               \
    }

#endif /* SW_TEST_H */
