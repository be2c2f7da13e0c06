/* paths.h — the search paths for plugins and Lua modules, shared by every command
 * (run, check, plugins, simulate, replay, dns): the config's own entries first, then
 * $STEWARD_PLUGIN_PATH / $STEWARD_LUA_PATH, then where this binary lives (build tree or
 * installed layout), then the install prefix compiled in.
 */
#ifndef SW_PATHS_H
#define SW_PATHS_H

#include <stddef.h>

#include "config.h"

/* Directories to search for swp_<name>.so, in order, without duplicates. config may be
 * NULL. Owned array of owned strings: free with sw_paths_free. */
char **sw_paths_plugin_dirs(const struct sw_config *config, size_t *count);
void sw_paths_free(char **dirs, size_t count);

/* The directory holding steward/<module>.lua. Owned by the caller. */
char *sw_paths_lua(const struct sw_config *config);

#endif /* SW_PATHS_H */
