-- follow_demand.lua — buy capacity where the demand is, give it back where it is not.
--
-- Each tick: read requests per second per region, smooth them (exponential moving average
-- with a half-life, so a spike does not buy a data center), and ask for one unit per
-- `rps_per_unit` in every region above `min_rps_for_region`. Capacity is given back only
-- after demand has stayed below it for `scale_down_after_s`. The guard still applies the
-- group's min/max, the budget and the cooldowns on top of whatever this returns.
--
-- params: group, rps_per_unit, half_life_s, scale_down_after_s, min_rps_for_region
return {
  name = "follow-demand",

  evaluate = function(ctx)
    local p = ctx.params
    local group = p.group or "web"
    local demand, err = ctx.metrics.sum_by("rps", "region")
    if not demand then
      -- An error keeps the last good desired state: no signal, no change.
      error("no demand signal: " .. tostring(err))
    end

    local st = ctx.state
    st.avg = st.avg or {}
    st.low_since = st.low_since or {}
    local dt = st.last_now and (ctx.now - st.last_now) or 0
    local alpha = dt > 0 and (1 - 0.5 ^ (dt / (p.half_life_s or 30))) or 1
    st.last_now = ctx.now

    local want = {}
    for region, rps in pairs(demand) do
      local prev = st.avg[region]
      local avg = prev and (prev + alpha * (rps - prev)) or rps
      st.avg[region] = avg

      local n = 0
      if avg >= (p.min_rps_for_region or 0) then
        n = math.ceil(avg / p.rps_per_unit)
      end
      local have = ctx.capacity(group, region)
      if n < have then
        st.low_since[region] = st.low_since[region] or ctx.now
        local waited = ctx.now - st.low_since[region]
        if waited < (p.scale_down_after_s or 60) then
          ctx.explain(group, region, string.format(
            "%.0f rps wants %d, keeping %d until demand stays low %.0fs more",
            avg, n, have, p.scale_down_after_s - waited))
          n = have
        else
          ctx.explain(group, region, string.format(
            "%.0f rps for %.0fs: %d units are enough", avg, waited, n))
        end
      else
        st.low_since[region] = nil
        ctx.explain(group, region, string.format(
          "%.0f rps now, %.0f smoothed: %d x %d rps", rps, avg, n, p.rps_per_unit))
      end
      want[region] = n
    end
    return { [group] = want }
  end,
}
