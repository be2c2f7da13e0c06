/* test_log.c — log lines: the timestamp (kept per second between lines), redaction of
 * registered secrets, and the text and JSON shapes. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "sw_test.h"

static int64_t fake_now;

static int64_t now_fake(void *ud)
{
    (void)ud;
    return fake_now;
}

/* Everything logged since the last call, as one string (owned). */
static char *captured(FILE *f)
{
    long len = ftell(f);
    char *text = calloc(1, (size_t)len + 1);
    rewind(f);
    size_t got = fread(text, 1, (size_t)len, f);
    text[got] = '\0';
    rewind(f);
    if (ftruncate(fileno(f), 0) != 0)
        text[0] = '\0';
    return text;
}

SW_TEST(text_lines_carry_the_clock_time_to_the_millisecond)
{
    FILE *f = tmpfile();
    sw_log_configure(f, SW_LOG_FORMAT_TEXT, SW_LOG_INFO);
    sw_log_set_time_source(now_fake, NULL);
    /* 2026-11-22T06:16:17.279Z, then the same second, the next one, a new day */
    int64_t times[] = {1795328177279, 1795328177999, 1795328178000, 1795392000005};
    const char *stamps[] = {"2026-11-22T06:16:17.279Z", "2026-11-22T06:16:17.999Z",
                            "2026-11-22T06:16:18.000Z", "2026-11-23T00:00:00.005Z"};
    for (int i = 0; i < 4; i++) {
        fake_now = times[i];
        sw_log(SW_LOG_INFO, "runtime", "unit u%d: %s", i, "ready");
        char *text = captured(f);
        char want[128];
        snprintf(want, sizeof(want), "%s INFO  [runtime] unit u%d: ready\n", stamps[i], i);
        SW_ASSERT_STREQ(text, want);
        free(text);
    }
    sw_log(SW_LOG_DEBUG, "runtime", "below the level");
    sw_log(SW_LOG_ERROR, NULL, "no component");
    char *text = captured(f);
    SW_ASSERT_STREQ(text, "2026-11-23T00:00:00.005Z ERROR [steward] no component\n");
    free(text);
    sw_log_set_time_source(NULL, NULL);
    sw_log_configure(NULL, SW_LOG_FORMAT_TEXT, SW_LOG_INFO);
    fclose(f);
}

SW_TEST(secrets_are_redacted_in_text_and_json)
{
    FILE *f = tmpfile();
    sw_log_configure(f, SW_LOG_FORMAT_TEXT, SW_LOG_INFO);
    sw_log_set_time_source(now_fake, NULL);
    fake_now = 1795328177279;
    sw_log_add_secret("s3cr3t-key");
    sw_log(SW_LOG_WARN, "akash", "header x-api-key: %s and again %s", "s3cr3t-key", "s3cr3t-key");
    char *text = captured(f);
    SW_ASSERT_STREQ(text, "2026-11-22T06:16:17.279Z WARN  [akash] header x-api-key: [REDACTED] "
                          "and again [REDACTED]\n");
    free(text);

    sw_log_configure(f, SW_LOG_FORMAT_JSON, SW_LOG_INFO);
    sw_log(SW_LOG_INFO, "akash", "quote \" key s3cr3t-key");
    text = captured(f);
    SW_ASSERT_STREQ(text, "{\"ts\":\"2026-11-22T06:16:17.279Z\",\"level\":\"info\",\"component\":"
                          "\"akash\",\"msg\":\"quote \\\" key [REDACTED]\"}\n");
    free(text);

    /* a line that redaction makes longer than the assembly buffer is still written whole */
    sw_log_configure(f, SW_LOG_FORMAT_TEXT, SW_LOG_INFO);
    sw_log_add_secret("zq9w");
    char long_msg[2001];
    memset(long_msg, 'x', sizeof(long_msg) - 1);
    long_msg[sizeof(long_msg) - 1] = '\0';
    for (int i = 0; i < 100; i++)
        memcpy(long_msg + 20 * i, "zq9w", 4);
    sw_log(SW_LOG_INFO, "c", "%s", long_msg);
    text = captured(f);
    SW_ASSERT(strstr(text, "zq9w") == NULL);
    SW_ASSERT_EQ(strlen(text), strlen("2026-11-22T06:16:17.279Z INFO  [c] ") + 2000 + 600 + 1);
    SW_ASSERT(text[strlen(text) - 1] == '\n');
    free(text);

    sw_log_clear_secrets();
    sw_log_set_time_source(NULL, NULL);
    sw_log_configure(NULL, SW_LOG_FORMAT_TEXT, SW_LOG_INFO);
    fclose(f);
}

SW_TEST_MAIN()
