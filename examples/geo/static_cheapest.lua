-- static_cheapest.lua — baseline for the geo simulation: all capacity, `units` sized for the
-- trace's peak, in the single cheapest region of the group. The region is chosen once, from
-- the first tick's offers (ctx.price), and kept: a static deployment, never rescaled.
return {
  name = "static-cheapest",

  evaluate = function(ctx)
    local group = ctx.params.group or "web"
    local units = ctx.params.units
    if type(units) ~= "number" or units < 1 then
      error("params.units is required: the units to hold in the cheapest region", 0)
    end
    local st = ctx.state
    if st.region == nil then
      local best, best_price
      for _, region in ipairs(ctx.groups[group].regions) do
        local price = ctx.price(region)
        if price ~= nil and (best == nil or price < best_price) then
          best, best_price = region, price
        end
      end
      if best == nil then
        error("no offers yet: waiting to pick the cheapest region", 0)
      end
      st.region, st.price = best, best_price
    end
    ctx.explain(group, st.region, string.format("static: %d units in the cheapest region, "
      .. "%s at %.3f USD/h", units, st.region, st.price))
    return { [group] = { [st.region] = units } }
  end,
}
