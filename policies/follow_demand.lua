-- follow_demand.lua — buy capacity where the demand is, give it back where it is not.
--
-- Each tick: read requests per second per region, smooth them (a time-aware moving
-- average, so a spike does not buy a data center), and ask for one unit per
-- `rps_per_unit` in every region whose demand reaches `min_rps_for_region`. Capacity is
-- given back only after demand has stayed below it for `scale_down_after_s`. The guard
-- still applies the group's min/max, the budget and the cooldowns to whatever this returns.
--
-- params: group ("web"), rps_per_unit, half_life_s (30), scale_down_after_s (60),
--         min_rps_for_region (0)
local smooth = require "steward.smooth"

return {
  name = "follow-demand",

  evaluate = function(ctx)
    local p = ctx.params
    local group = p.group or "web"
    local per_unit = assert(p.rps_per_unit, "params.rps_per_unit is required")
    local hold_s = p.scale_down_after_s or 60
    local demand, err = ctx.metrics.sum_by("rps", "region")
    if not demand then
      -- An error keeps the last good desired state: no signal, no change.
      error("no demand signal: " .. tostring(err))
    end

    local st = ctx.state
    st.avg = st.avg or {}
    st.low_since = st.low_since or {}

    local want = {}
    for region, rps in pairs(demand) do
      st.avg[region] = st.avg[region] or {}
      local avg = smooth.new(p.half_life_s or 30, st.avg[region]):update(rps, ctx.now)
      local n = 0
      if avg >= (p.min_rps_for_region or 0) then
        n = math.ceil(avg / per_unit)
      end
      local have = ctx.capacity(group, region)
      if n < have then
        st.low_since[region] = st.low_since[region] or ctx.now
        local waited = ctx.now - st.low_since[region]
        if waited < hold_s then
          ctx.explain(group, region, string.format(
            "%.0f rps needs %d, keeping %d until demand stays low %.0fs more",
            avg, n, have, hold_s - waited))
          n = have
        else
          ctx.explain(group, region, string.format(
            "%.0f rps for %.0fs: %d units are enough", avg, waited, n))
        end
      else
        st.low_since[region] = nil
        ctx.explain(group, region, string.format(
          "%.0f rps now, %.0f smoothed: %d x %d rps", rps, avg, n, per_unit))
      end
      want[region] = n
    end
    return { [group] = want }
  end,
}
