-- fixed_size.lua — a group of constant size in one region: the resilience examples measure
-- what provider outages do to it, not what demand does.
-- params: group ("web"), region, count
return {
  name = "fixed-size",
  evaluate = function(ctx)
    local p = ctx.params
    return { [p.group or "web"] = { [p.region] = p.count } }
  end,
}
