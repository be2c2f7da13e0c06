/* market_server.h — `steward market serve`: steward's own local marketplace. It speaks the
 * Akash Console managed-wallet API (../shared/marketplace-api.md, docs/marketplace.md) over
 * real HTTP with its state in its own SQLite file, providers from the same JSON file as
 * market_sim, a block clock that settles escrow, and fault injection, so the Akash client
 * plugin and everything above it can be tested end to end without the internet.
 * Context: the server owns a private libuv loop for the whole call of
 * sw_market_server_main; the parsing helpers below are pure functions.
 */
#ifndef SW_MARKET_SERVER_H
#define SW_MARKET_SERVER_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "error.h"

/* The `steward market ...` verb. argv[0] is "market", argv[1] the sub-command ("serve").
 * Runs the server until SIGINT/SIGTERM. Returns the process exit code: 0 after a clean
 * stop, 1 on a runtime failure (cannot listen, state file unusable), 2 on bad usage or
 * configuration (including an unset API key variable). Main thread only; it installs
 * SIGINT/SIGTERM handlers on its own loop for the duration of the call. */
int sw_market_server_main(int argc, char **argv);

/* Parse the YAML subset SDL files use into a cJSON tree: block mappings and sequences by
 * indentation, flow [..] and {..} on one line, plain/'single'/"double" quoted scalars,
 * literal (|) and folded (>) block scalars, # comments, one document. Plain scalars are
 * typed as YAML 1.2 core (null, true/false, integers and floats become JSON values).
 * Anchors, aliases, tags and multi-line plain or flow scalars are refused with a message.
 * Returns an owned tree (cJSON_Delete) or NULL with err (SW_EINVAL, "line N: ...").
 * Never reads past text + len; nesting depth is capped at 64. */
cJSON *sw_market_yaml_parse(const char *text, size_t len, struct sw_error *err);

/* Validate an SDL document the way `POST /v1/deployments` does and describe what the
 * server derives from it: {"groups": [{"gseq", "name", "attributes": {..}, "signed_by":
 * {"any_of": [..], "all_of": [..]}, "max_price": "<uact 18 decimals>", "units",
 * "gpu_units", "services": [{"name", "count", "global", "accept"}], "resources_offer":
 * [..]}], "env": {..}, "manifest": "<the manifest string the server returns>"}.
 * Owned (cJSON_Delete); NULL with err (SW_EINVAL, "sdl: <path>: ...") when invalid. */
cJSON *sw_market_sdl_describe(const char *text, size_t len, struct sw_error *err);

#endif /* SW_MARKET_SERVER_H */
