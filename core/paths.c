/* paths.c — where steward looks for plugins and Lua modules. */
#include "paths.h"

#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mem.h"


static bool is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static char *exe_dir(void)
{
    char buf[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
    if (n <= 0)
        return sw_xstrdup(".");
    buf[n] = '\0';
    char *slash = strrchr(buf, '/');
    if (slash != NULL)
        *slash = '\0';
    return sw_xstrdup(buf);
}

static void dirs_add(char ***dirs, size_t *count, const char *dir)
{
    if (dir == NULL || dir[0] == '\0')
        return;
    for (size_t i = 0; i < *count; i++)
        if (strcmp((*dirs)[i], dir) == 0)
            return;
    *dirs = sw_xrealloc(*dirs, (*count + 1) * sizeof(char *));
    (*dirs)[(*count)++] = sw_xstrdup(dir);
}

char **sw_paths_plugin_dirs(const struct sw_config *config, size_t *count)
{
    char **dirs = NULL;
    *count = 0;
    for (size_t i = 0; config != NULL && i < config->plugin_dir_count; i++)
        dirs_add(&dirs, count, config->plugin_dirs[i]);
    const char *env = getenv("STEWARD_PLUGIN_PATH");
    if (env != NULL) {
        char *copy = sw_xstrdup(env);
        char *save = NULL;
        for (char *part = strtok_r(copy, ":", &save); part; part = strtok_r(NULL, ":", &save))
            dirs_add(&dirs, count, part);
        free(copy);
    }
    char *dir = exe_dir();
    char *beside = sw_xasprintf("%s/plugins", dir);
    char *installed = sw_xasprintf("%s/../lib/steward/plugins", dir);
    if (is_dir(beside))
        dirs_add(&dirs, count, beside);
    if (is_dir(installed))
        dirs_add(&dirs, count, installed);
    dirs_add(&dirs, count, SW_INSTALL_PLUGIN_DIR);
    free(beside);
    free(installed);
    free(dir);
    return dirs;
}

void sw_paths_free(char **dirs, size_t count)
{
    for (size_t i = 0; i < count; i++)
        free(dirs[i]);
    free(dirs);
}

char *sw_paths_lua(const struct sw_config *config)
{
    if (config != NULL && config->lua_path != NULL)
        return sw_xstrdup(config->lua_path);
    const char *env = getenv("STEWARD_LUA_PATH");
    if (env != NULL && env[0] != '\0')
        return sw_xstrdup(env);
    char *dir = exe_dir();
    char *candidates[] = {
        sw_xasprintf("%s/../share/steward/lua", dir),
        sw_xasprintf("%s/lua", SW_SOURCE_DIR),
        sw_xstrdup(SW_INSTALL_LUA_DIR),
    };
    char *chosen = NULL;
    for (size_t i = 0; i < SW_ARRAY_LEN(candidates); i++) {
        char *probe = sw_xasprintf("%s/steward", candidates[i]);
        if (chosen == NULL && is_dir(probe))
            chosen = sw_xstrdup(candidates[i]);
        free(probe);
        free(candidates[i]);
    }
    free(dir);
    return chosen != NULL ? chosen : sw_xstrdup(SW_INSTALL_LUA_DIR);
}

