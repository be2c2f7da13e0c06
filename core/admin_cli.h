/* admin_cli.h — the CLI verbs that talk to a running steward through its admin API:
 * `steward status`, `leases`, `decisions`, `pause POLICY`, `resume POLICY`. Each runs its
 * own small uv loop with core/http_client.h for one request, prints a table (or the JSON
 * with --json) and exits. The token for pause/resume comes from $STEWARD_ADMIN_TOKEN.
 * Exit codes: 0 success, 1 the API could not be reached or refused the request, 2 usage.
 */
#ifndef SW_ADMIN_CLI_H
#define SW_ADMIN_CLI_H

#include <stdbool.h>

/* True for the verbs sw_admin_cli_main handles. */
bool sw_admin_cli_is_verb(const char *verb);

/* argv[0] is the verb. Context: the main thread, no loop running (it creates its own). */
int sw_admin_cli_main(int argc, char **argv);

#endif /* SW_ADMIN_CLI_H */
