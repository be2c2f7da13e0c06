---@meta
--- steward policy API — annotations for lua-language-server (completion and checks).
---
--- Add `lua/` to your workspace library ("Lua.workspace.library") and annotate:
---     ---@type steward.Policy
---     return { name = "geo", interval = "10s", evaluate = function(ctx) ... end }
--- docs/policies.md describes the same API; tests/policy/api_surface_spec.lua fails when
--- the real ctx and the steward.Ctx fields below disagree.

---A policy file returns this table.
---@class steward.Policy
---@field name? string                                informative; the config names the policy
---@field interval? string|number                     "10s", "1m", or seconds
---@field evaluate fun(ctx: steward.Ctx): steward.Desired
---@field on_event? fun(ctx: steward.Ctx, ev: steward.Event)

---What evaluate returns: group → region → replica count (integers 0..10000). Groups must
---be configured; a group left out keeps no explicit target.
---@alias steward.Desired table<string, table<string, integer>>

---The argument of evaluate and on_event. Read-only except ctx.state's contents; reading
---an unknown field raises. Read-only tables are proxies: use pairs/ipairs/#, not next().
---@class steward.Ctx
---@field now number                     seconds since the epoch, with milliseconds
---@field now_ms integer                 milliseconds since the epoch
---@field params table                   the policy's "params" from the config (read-only)
---@field state table                    plain data kept across ticks, reloads and restarts
---@field groups table<string, steward.Group> configured groups by name
---@field leases steward.Lease[]          units not closed
---@field capacity fun(group: string, region?: string): integer pending or ready, healthy units
---@field ready fun(group: string, region?: string): integer ready and healthy units
---@field offers steward.Offer[]          current offers
---@field price fun(region: string): number|nil lowest offer price (USD/hour) in region
---@field regions fun(): string[]         regions with offers, sorted
---@field metrics steward.Metrics
---@field budget steward.Budget
---@field probes steward.Probe[]         the last probe round ({} without "probes" in the config)
---@field providers steward.Provider[]    every provider's track record, by name
---@field log fun(fmt: any, ...: any)     info line (string.format when given arguments)
---@field warn fun(fmt: any, ...: any)    warning line
---@field explain fun(group: string, region: string|nil, text: string) why (shown with the plan)

---@class steward.Group
---@field name string
---@field min integer
---@field max integer
---@field regions string[]               allowed regions; empty means any
---@field max_price_usd_hour number      0 means no cap
---@field scale_up_cooldown_s number
---@field scale_down_cooldown_s number

---@alias steward.LeaseState "ordered"|"created"|"leased"|"ready"|"releasing"

---@class steward.Lease
---@field key string                     steward's idempotency key for the unit
---@field market_id string|nil           marketplace id (Akash dseq) once created
---@field group string
---@field region string
---@field provider string|nil            once leased
---@field price_usd_hour number
---@field state steward.LeaseState
---@field ready boolean
---@field pending boolean                ordered, created or leased
---@field healthy boolean                false after repeated probe failures
---@field age_s number                   seconds since ordered
---@field uris string[]

---A provider's track record (kept in the journal). A provider in back-off is left out of
---every acquire until backed_off_until.
---@class steward.Provider
---@field provider string
---@field closures integer               involuntary closures (lost leases, failed once leased)
---@field lease_hours number             ready time of its leases, ended and open
---@field mean_ready_s number|nil        mean bid-to-ready seconds; nil before the first ready
---@field backed_off_until number|nil    seconds since the epoch; nil when not backed off

---@class steward.Offer
---@field provider string
---@field region string
---@field price_usd_hour number
---@field audited boolean

---@class steward.Sample
---@field labels table<string, string>
---@field value number

---query(name): the samples, or nil and why (missing metric or failed query; never a
---silent zero). sum_by(name, label): sums per label value ("" for samples without it).
---@class steward.Metrics
---@field query fun(name: string): steward.Sample[]|nil, string|nil
---@field sum_by fun(name: string, label: string): table<string, number>|nil, string|nil

---One probe of the last round: a ready unit's endpoint or a configured URL.
---@class steward.Probe
---@field target string                  the URL probed
---@field unit? string                   the unit's key (ctx.leases[i].key); nil for configured URLs
---@field group? string
---@field region? string
---@field ok boolean                     answered in time with an expected status
---@field status integer                 HTTP status; 0 when no answer arrived
---@field connect_ms number              times from the start of the request
---@field tls_ms number                  0 for plain HTTP
---@field first_byte_ms number
---@field total_ms number
---@field error? string                  why it is not ok

---@class steward.Budget
---@field usd_per_hour number            the guard's budget; 0 means none
---@field spend_usd_per_hour number      what open units cost now

---An event from the runtime or a plugin; fields beyond these depend on the type.
---@class steward.Event
---@field type string                    "unit_lost", "alert", "job_started", ...
---@field market_id? string
---@field reason? string

---steward.ewma (C): many exponentially weighted moving averages in one call
---(docs/policies.md, "steward.ewma").
---@class steward.ewma
local ewma = {}

---avg[k] = a + alpha * (samples[k] - a), a = avg[k] or 0, for every key of samples but "".
---With lo, hi and moved: the keys whose new average left lo[k]..hi[k] fill moved[1..n].
---@param avg table<any, number>
---@param samples table<any, number>
---@param alpha number
---@param lo? table<any, number>
---@param hi? table<any, number>
---@param moved? any[]
---@return integer seen   keys that had an average
---@return integer fresh  keys that had none
---@return integer n      keys written to moved
function ewma.update(avg, samples, alpha, lo, hi, moved) end
