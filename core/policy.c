#include "policy.h"

#include <cjson/cJSON.h>
#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <uv.h>

#include "event_json.h"
#include "log.h"
#include "lua_convert.h"
#include "lua_ctx.h"
#include "lua_sandbox.h"
#include "mem.h"

#define STATE_MAX_BYTES SW_POLICY_STATE_MAX_BYTES
#define PARAMS_MAX_BYTES (256u * 1024u)
#define EVENT_MAX_BYTES (64u * 1024u)
/* Under a simulated clock evaluations come thousands of times per real second: the file
 * is looked at once per real second at most, which a person saving it cannot tell apart
 * from every tick (a stat per tick was ~3% of a simulation). */
#define SIM_CHANGE_CHECK_NS 1000000000ull

/* One compiled version of the file: a reload builds a new one beside it and swaps only
 * when it loaded cleanly. */
struct version {
    struct sw_lua_sandbox *sb;
    struct sw_lua_ctx *ctx; /* inside the handle, owned by the state */
    int module_ref;
    int handle_ref;
    int64_t interval_ms;
    char *declared_name; /* the file's `name` field, or NULL */
};

struct file_sig {
    bool exists;
    int64_t mtime_sec;
    int64_t mtime_nsec;
    int64_t size;
};

struct sw_policy {
    char *name;
    char *file;
    char *lua_path;
    char *params_json;
    struct sw_clock *clock;
    uint64_t seed;
    int64_t max_instructions;
    size_t memory_limit;
    int64_t time_limit_ms;
    void (*log_fn)(void *ud, int level, const char *msg);
    void *log_ud;
    struct version cur;
    struct file_sig sig;
    uint64_t sig_checked_ns; /* real time of the last stat (simulated clock only) */
    struct sw_desired last_good;
    struct sw_lua_desired_hint desired_hint; /* evaluate's last result, as converted */
    uint64_t error_count;
    char *last_error; /* NULL after a success */
    bool event_wants_eval;
    uint64_t skipped_events; /* events answered without entering the module */
};

/* ---- results ------------------------------------------------------------------------- */

void sw_policy_result_init(struct sw_policy_result *r)
{
    memset(r, 0, sizeof(*r));
    sw_desired_init(&r->desired);
}

static void free_explanation_array(struct sw_explanation *e, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        free(e[i].group);
        free(e[i].region);
        free(e[i].text);
    }
    free(e);
}

void sw_policy_result_reset(struct sw_policy_result *r)
{
    free_explanation_array(r->explanations, r->explanation_count);
    r->explanations = NULL;
    r->explanation_count = 0;
    r->instructions = 0;
    r->memory_bytes = 0;
}

void sw_policy_result_clear(struct sw_policy_result *r)
{
    sw_desired_clear(&r->desired);
    free_explanation_array(r->explanations, r->explanation_count);
    r->explanations = NULL;
    r->explanation_count = 0;
    r->instructions = 0;
    r->memory_bytes = 0;
}

/* ---- helpers --------------------------------------------------------------------------- */

static struct file_sig file_signature(const char *path)
{
    struct stat st;
    struct file_sig sig = {0};
    if (stat(path, &st) != 0)
        return sig;
    sig.exists = true;
    sig.mtime_sec = (int64_t)st.st_mtim.tv_sec;
    sig.mtime_nsec = (int64_t)st.st_mtim.tv_nsec;
    sig.size = (int64_t)st.st_size;
    return sig;
}

static void version_free(struct version *v)
{
    sw_lua_sandbox_free(v->sb);
    free(v->declared_name);
    memset(v, 0, sizeof(*v));
}

/* ---- loading --------------------------------------------------------------------------- */

struct load_call {
    struct sw_policy *policy;
    struct version *v;
    const char *text;
    size_t len;
};

static int load_trampoline(lua_State *L)
{
    struct load_call *c = lua_touserdata(L, 1);
    struct sw_policy *p = c->policy;
    const char *file = p->file;

    sw_lua_push_json_text(L, p->params_json, PARAMS_MAX_BYTES, true, "ctx.params");
    lua_newtable(L);
    c->v->ctx = sw_lua_ctx_new(L, -2, -1);
    c->v->handle_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_pop(L, 2);

    char *chunkname = sw_xasprintf("@%s", file);
    lua_pushstring(L, chunkname);
    free(chunkname);
    sw_lua_sandbox_load(L, c->text, c->len, lua_tostring(L, -1));
    lua_remove(L, -2);
    lua_call(L, 0, 1);
    struct sw_lua_policy_info info;
    struct sw_error err = {0};
    if (sw_lua_check_policy_table(L, -1, file, &info, &err) < 0) {
        lua_pushstring(L, err.msg);
        return lua_error(L);
    }
    c->v->interval_ms = info.interval_ms;
    c->v->declared_name = info.name;
    c->v->module_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return 0;
}

static int load_version(struct sw_policy *p, struct version *v, struct sw_error *err)
{
    memset(v, 0, sizeof(*v));
    size_t len = 0;
    char *text = sw_lua_sandbox_read_file(p->file, SW_LUA_MAX_SOURCE_BYTES, &len, err);
    if (text == NULL)
        return err != NULL ? err->code : SW_EIO;
    struct sw_lua_sandbox_opts opts = {
        .name = p->name,
        .lua_path = p->lua_path,
        .clock = p->clock,
        .seed = p->seed,
        .max_instructions = p->max_instructions,
        .memory_limit = p->memory_limit,
        .time_limit_ms = p->time_limit_ms,
        .log_fn = p->log_fn,
        .log_ud = p->log_ud,
    };
    v->sb = sw_lua_sandbox_new(&opts, err);
    if (v->sb == NULL) {
        free(text);
        return err != NULL ? err->code : SW_EPOLICY;
    }
    struct load_call call = {p, v, text, len};
    int rc = sw_lua_sandbox_call(v->sb, load_trampoline, &call, true, err);
    free(text);
    if (rc < 0) {
        version_free(v);
        return rc;
    }
    return 0;
}

/* ---- state ----------------------------------------------------------------------------- */

struct state_call {
    struct version *v;
    cJSON *tree;        /* save: out */
    const cJSON *input; /* load: in */
    struct sw_error err;
    int rc;
};

static int state_save_trampoline(lua_State *L)
{
    struct state_call *c = lua_touserdata(L, 1);
    lua_rawgeti(L, LUA_REGISTRYINDEX, c->v->handle_ref);
    sw_lua_ctx_push_state(L, -1);
    c->rc = sw_lua_to_json(L, -1, "ctx.state", STATE_MAX_BYTES, &c->tree, &c->err);
    lua_pop(L, 2);
    return 0;
}

static int state_load_trampoline(lua_State *L)
{
    struct state_call *c = lua_touserdata(L, 1);
    lua_rawgeti(L, LUA_REGISTRYINDEX, c->v->handle_ref);
    sw_lua_ctx_push_state(L, -1);
    sw_lua_fill_from_json(L, -1, c->input);
    lua_pop(L, 2);
    return 0;
}

static int version_state_save(struct version *v, char **json_out, struct sw_error *err)
{
    *json_out = NULL;
    struct state_call call = {.v = v};
    int rc = sw_lua_sandbox_call(v->sb, state_save_trampoline, &call, false, err);
    if (rc < 0)
        return rc;
    if (call.rc < 0) {
        cJSON_Delete(call.tree);
        if (err != NULL)
            *err = call.err;
        return call.rc;
    }
    bool empty = call.tree == NULL || call.tree->child == NULL;
    char *text = empty ? NULL : cJSON_PrintUnformatted(call.tree);
    cJSON_Delete(call.tree);
    if (text == NULL)
        return 0;
    size_t len = strlen(text);
    if (len > STATE_MAX_BYTES) {
        cJSON_free(text);
        return sw_error_set(err, SW_ETOOBIG,
                            "ctx.state: %zu bytes of JSON, over the %u-byte "
                            "limit",
                            len, STATE_MAX_BYTES);
    }
    *json_out = sw_xstrdup(text);
    cJSON_free(text);
    return 0;
}

static int version_state_load(struct version *v, const char *json, struct sw_error *err)
{
    size_t len = strlen(json);
    if (len > STATE_MAX_BYTES + 1024)
        return sw_error_set(err, SW_ETOOBIG,
                            "ctx.state: %zu bytes of JSON, over the %u-byte "
                            "limit",
                            len, STATE_MAX_BYTES);
    cJSON *tree = cJSON_ParseWithLength(json, len);
    if (!cJSON_IsObject(tree) && !cJSON_IsArray(tree)) {
        cJSON_Delete(tree);
        return sw_error_set(err, SW_EINVAL, "ctx.state: expected a JSON object");
    }
    struct state_call call = {.v = v, .input = tree};
    int rc = sw_lua_sandbox_call(v->sb, state_load_trampoline, &call, false, err);
    cJSON_Delete(tree);
    if (rc < 0 && err != NULL)
        err->code = SW_EINVAL;
    return rc < 0 ? SW_EINVAL : 0;
}

/* ---- lifecycle --------------------------------------------------------------------------- */

struct sw_policy *sw_policy_new(const struct sw_policy_opts *opts, struct sw_error *err)
{
    if (opts == NULL || opts->file == NULL) {
        sw_error_set(err, SW_EINVAL, "policy: no file given");
        return NULL;
    }
    struct sw_policy *p = sw_xcalloc(1, sizeof(*p));
    p->file = sw_xstrdup(opts->file);
    p->name = sw_xstrdup(opts->name);
    p->lua_path = sw_xstrdup(opts->lua_path);
    p->params_json = sw_xstrdup(opts->params_json);
    p->clock = opts->clock;
    p->seed = opts->seed;
    p->max_instructions = opts->max_instructions;
    p->memory_limit = opts->memory_limit;
    p->time_limit_ms = opts->time_limit_ms;
    p->log_fn = opts->log_fn;
    p->log_ud = opts->log_ud;
    sw_desired_init(&p->last_good);
    p->sig = file_signature(p->file);
    if (load_version(p, &p->cur, err) < 0) {
        sw_policy_free(p);
        return NULL;
    }
    if (p->name == NULL) {
        const char *base = strrchr(p->file, '/');
        p->name =
            sw_xstrdup(p->cur.declared_name ? p->cur.declared_name : (base ? base + 1 : p->file));
    }
    return p;
}

void sw_policy_free(struct sw_policy *policy)
{
    if (policy == NULL)
        return;
    version_free(&policy->cur);
    sw_desired_clear(&policy->last_good);
    sw_lua_desired_hint_free(&policy->desired_hint);
    free(policy->name);
    free(policy->file);
    free(policy->lua_path);
    free(policy->params_json);
    free(policy->last_error);
    free(policy);
}

/* ---- calls ------------------------------------------------------------------------------- */

struct eval_call {
    struct sw_policy *policy;
    const struct sw_policy_input *in;
    struct sw_desired *desired; /* evaluate only */
    const cJSON *event;         /* on_event only */
    bool skipped;               /* no on_event defined */
    bool wants_eval;            /* on_event returned true */
    struct sw_error check_err;
    int check_rc;
};

/* Stack: 1 call, 2 handle, 3 module. */
static void begin_call(lua_State *L, struct eval_call *c)
{
    struct version *v = &c->policy->cur;
    lua_rawgeti(L, LUA_REGISTRYINDEX, v->handle_ref);
    sw_lua_ctx_refresh(L, 2, c->in);
    lua_rawgeti(L, LUA_REGISTRYINDEX, v->module_ref);
}

static void check_state(lua_State *L, struct eval_call *c)
{
    sw_lua_ctx_push_state(L, 2);
    c->check_rc = sw_lua_to_json(L, -1, "ctx.state", STATE_MAX_BYTES, NULL, &c->check_err);
    lua_pop(L, 1);
}

static int eval_trampoline(lua_State *L)
{
    struct eval_call *c = lua_touserdata(L, 1);
    begin_call(L, c);
    lua_getfield(L, 3, "evaluate");
    sw_lua_ctx_push(L, 2);
    lua_call(L, 1, 1);
    c->check_rc = sw_lua_check_desired_hinted(L, -1, c->in->groups, c->in->group_count, c->desired,
                                              &c->policy->desired_hint, &c->check_err);
    lua_pop(L, 1);
    if (c->check_rc == 0)
        check_state(L, c);
    return 0;
}

static int event_trampoline(lua_State *L)
{
    struct eval_call *c = lua_touserdata(L, 1);
    begin_call(L, c);
    if (lua_getfield(L, 3, "on_event") != LUA_TFUNCTION) {
        c->skipped = true;
        return 0;
    }
    sw_lua_ctx_push(L, 2);
    sw_lua_push_json(L, c->event);
    lua_call(L, 2, 1);
    c->wants_eval = lua_toboolean(L, -1);
    lua_pop(L, 1);
    check_state(L, c);
    return 0;
}

static int record_failure(struct sw_policy *p, const char *full, int rc)
{
    p->error_count++;
    free(p->last_error);
    p->last_error = sw_xstrdup(full);
    return rc;
}

/* Run one call; on failure count it and keep the full text. */
static int run_call(struct sw_policy *p, lua_CFunction fn, struct eval_call *call,
                    struct sw_error *err)
{
    struct version *v = &p->cur;
    /* No input (an event outside a tick): ctx sees no units, offers, metrics or groups. */
    struct sw_policy_input empty = {.now_ms = p->clock != NULL ? sw_clock_now(p->clock) : 0};
    if (call->in == NULL)
        call->in = &empty;
    call->policy = p;
    int rc = sw_lua_sandbox_call(v->sb, fn, call, true, err);
    sw_lua_ctx_release(v->ctx);
    if (rc < 0)
        return record_failure(p, sw_lua_sandbox_last_error(v->sb), rc);
    if (call->check_rc < 0) {
        if (err != NULL)
            *err = call->check_err;
        return record_failure(p, call->check_err.msg, SW_EPOLICY);
    }
    free(p->last_error);
    p->last_error = NULL;
    return 0;
}

int sw_policy_eval(struct sw_policy *policy, const struct sw_policy_input *in,
                   struct sw_policy_result *out, struct sw_error *err)
{
    /* out->desired is replaced, not cleared: its storage is reused when the policy returns
     * the same groups and regions as last time (sw_lua_check_desired). */
    sw_policy_result_reset(out);
    struct eval_call call = {.in = in, .desired = &out->desired};
    int rc = run_call(policy, eval_trampoline, &call, err);
    struct sw_explanation *explanations = NULL;
    size_t explanation_count = 0;
    sw_lua_ctx_take_explanations(policy->cur.ctx, &explanations, &explanation_count);
    out->instructions = sw_lua_sandbox_instructions(policy->cur.sb);
    out->memory_bytes = sw_lua_sandbox_memory(policy->cur.sb);
    if (rc < 0) {
        free_explanation_array(explanations, explanation_count);
        sw_desired_copy(&out->desired, &policy->last_good);
        return rc;
    }
    out->explanations = explanations;
    out->explanation_count = explanation_count;
    sw_desired_copy(&policy->last_good, &out->desired); /* counts only, when keys repeat */
    return 0;
}

struct lookup_call {
    struct version *v;
    bool none; /* certainly no on_event function */
};

/* Without a metatable, the rawget sees what event_trampoline's lua_getfield would. */
static int lookup_trampoline(lua_State *L)
{
    struct lookup_call *c = lua_touserdata(L, 1);
    lua_rawgeti(L, LUA_REGISTRYINDEX, c->v->module_ref);
    if (lua_getmetatable(L, -1))
        return 0;
    lua_pushliteral(L, "on_event");
    c->none = lua_rawget(L, -2) != LUA_TFUNCTION;
    return 0;
}

/* True when the event's call would only refresh ctx (for every unit, offer and metric) to
 * find no on_event: the module has none, so the module can be asked without a budget. */
static bool lacks_on_event(struct sw_policy *p)
{
    struct lookup_call call = {.v = &p->cur};
    return sw_lua_sandbox_call(p->cur.sb, lookup_trampoline, &call, false, NULL) == 0 && call.none;
}

int sw_policy_on_event(struct sw_policy *policy, const struct sw_policy_input *in,
                       const char *ev_json, struct sw_error *err)
{
    size_t len = ev_json != NULL ? strlen(ev_json) : 0;
    if (len > EVENT_MAX_BYTES)
        return sw_error_set(err, SW_EINVAL, "event: %zu bytes of JSON, over the %u-byte limit", len,
                            EVENT_MAX_BYTES);
    /* The outcome of the full call below when there is no on_event and the text is an
     * object; a text the strict check cannot vouch for is parsed, for the same errors. */
    if (lacks_on_event(policy) && (ev_json == NULL || sw_event_json_is_object(ev_json, len))) {
        policy->skipped_events++;
        policy->event_wants_eval = false;
        free(policy->last_error);
        policy->last_error = NULL;
        return 0;
    }
    cJSON *event = ev_json != NULL ? cJSON_ParseWithLength(ev_json, len) : cJSON_CreateObject();
    if (!cJSON_IsObject(event)) {
        cJSON_Delete(event);
        return sw_error_set(err, SW_EINVAL, "event: expected a JSON object");
    }
    struct eval_call call = {.in = in, .event = event};
    int rc = run_call(policy, event_trampoline, &call, err);
    policy->event_wants_eval = rc == 0 && call.wants_eval;
    cJSON_Delete(event);
    /* Explanations only mean something next to a desired state. */
    struct sw_explanation *explanations = NULL;
    size_t explanation_count = 0;
    sw_lua_ctx_take_explanations(policy->cur.ctx, &explanations, &explanation_count);
    free_explanation_array(explanations, explanation_count);
    return rc;
}

int sw_policy_reload(struct sw_policy *policy, struct sw_error *err)
{
    /* Remember what was tried even when it fails: the same broken file is not retried on
     * every check, and the next save is noticed. */
    policy->sig = file_signature(policy->file);
    struct version next;
    int rc = load_version(policy, &next, err);
    if (rc < 0)
        return rc;
    char *state = NULL;
    struct sw_error state_err = {0};
    if (version_state_save(&policy->cur, &state, &state_err) < 0)
        sw_lua_sandbox_log(next.sb, SW_LOG_WARN, state_err.msg);
    if (state != NULL && version_state_load(&next, state, &state_err) < 0)
        sw_lua_sandbox_log(next.sb, SW_LOG_WARN, state_err.msg);
    free(state);
    version_free(&policy->cur);
    policy->cur = next;
    /* The hint's Lua strings lived in the old state: a new one may reuse their addresses. */
    sw_lua_desired_hint_free(&policy->desired_hint);
    return 0;
}

bool sw_policy_file_changed(struct sw_policy *policy)
{
    if (policy->clock != NULL && policy->clock->simulated) {
        uint64_t real_ns = uv_hrtime();
        if (policy->sig_checked_ns != 0 && real_ns - policy->sig_checked_ns < SIM_CHANGE_CHECK_NS)
            return false;
        policy->sig_checked_ns = real_ns;
    }
    struct file_sig now = file_signature(policy->file);
    return now.exists != policy->sig.exists || now.mtime_sec != policy->sig.mtime_sec ||
           now.mtime_nsec != policy->sig.mtime_nsec || now.size != policy->sig.size;
}

int sw_policy_state_save(struct sw_policy *policy, char **json_out, struct sw_error *err)
{
    return version_state_save(&policy->cur, json_out, err);
}

char *sw_policy_state_json(struct sw_policy *policy)
{
    char *json = NULL;
    struct sw_error err = {0};
    if (version_state_save(&policy->cur, &json, &err) < 0)
        sw_lua_sandbox_log(policy->cur.sb, SW_LOG_ERROR, err.msg);
    return json;
}

int sw_policy_state_load(struct sw_policy *policy, const char *json)
{
    if (json == NULL)
        return SW_EINVAL;
    return version_state_load(&policy->cur, json, NULL);
}

const char *sw_policy_name(const struct sw_policy *policy)
{
    return policy->name;
}

int64_t sw_policy_interval_ms(const struct sw_policy *policy)
{
    return policy->cur.interval_ms;
}

uint64_t sw_policy_error_count(const struct sw_policy *policy)
{
    return policy->error_count;
}

const struct sw_desired *sw_policy_last_good(const struct sw_policy *policy)
{
    return &policy->last_good;
}

const char *sw_policy_last_error(const struct sw_policy *policy)
{
    return policy->last_error != NULL ? policy->last_error : "";
}

bool sw_policy_event_wants_eval(const struct sw_policy *policy)
{
    return policy->event_wants_eval;
}

uint64_t sw_policy_skipped_events(const struct sw_policy *policy)
{
    return policy->skipped_events;
}
