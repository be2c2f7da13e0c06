/* dns_cli.h — `steward dns list|upsert|remove`: run one operation of the configured dns
 * plugin against the real server (operators check a zone with it; the integration tests
 * drive the plugins through it).
 * Context: main thread, owns its own loop.
 */
#ifndef SW_DNS_CLI_H
#define SW_DNS_CLI_H

#include <stddef.h>

#include "config.h"

/* Fills *dirs (owned array of owned strings) with the plugin search path for config. */
typedef void (*sw_dns_cli_dirs_fn)(const struct sw_config *config, char ***dirs,
                                   size_t *count);

/* argv[0] is "dns". Returns the process exit code: 0 done, 1 the operation failed, 2 bad
 * usage or configuration. Prints records (list) to stdout, errors to stderr. */
int sw_dns_cli_main(int argc, char **argv, sw_dns_cli_dirs_fn dirs_fn);

#endif /* SW_DNS_CLI_H */
