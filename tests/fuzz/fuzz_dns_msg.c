/* fuzz_dns_msg.c — libFuzzer target for dns_rfc2136's message parser: parse, then render
 * every RR's name and RDATA as the plugin does for a zone transfer, then re-parse the
 * question name. Built by tests/fuzz/run_dns_fuzz.sh with clang -fsanitize=fuzzer. */
#include <stddef.h>
#include <stdint.h>

#include "dns_wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct dns_msg m;
    if (dns_msg_parse(data, size, &m) < 0)
        return 0;
    for (size_t i = 0; i < m.rr_count; i++) {
        char text[4096];
        dns_rdata_to_text(data, size, m.rrs[i].type, m.rrs[i].rdata_offset, m.rrs[i].rdata_len,
                          text, sizeof(text));
        uint8_t wire[DNS_NAME_WIRE_MAX];
        dns_name_to_wire(m.rrs[i].name, wire, true);
    }
    if (m.qname[0] != '\0') {
        uint8_t wire[DNS_NAME_WIRE_MAX];
        dns_name_to_wire(m.qname, wire, false);
    }
    dns_msg_free(&m);
    return 0;
}
