/* fuzz_dns_tsig.c — libFuzzer target for the TSIG verifier: the input is a reply to a
 * request signed with a fixed key and MAC, verified fully and timers-only (zone transfer
 * continuation). Built by tests/fuzz/run_dns_fuzz.sh with clang -fsanitize=fuzzer. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "dns_wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct dns_tsig_key key;
    static int ready;
    if (!ready) {
        dns_tsig_key_init(&key, "steward-key.", "c3Rld2FyZC10ZXN0LXNlY3JldC0wMTIzNDU2Nzg5YWJjZGVm");
        ready = 1;
    }
    uint8_t request_mac[DNS_TSIG_MAC_LEN];
    memset(request_mac, 0x5a, sizeof(request_mac));
    uint8_t mac[DNS_TSIG_MAC_LEN];
    int server_error = 0;
    dns_tsig_verify(data, size, &key, request_mac, sizeof(request_mac), false, 1700000000,
                    &server_error, mac);
    dns_tsig_verify(data, size, &key, mac, sizeof(mac), true, 1700000000, &server_error, NULL);
    return 0;
}
