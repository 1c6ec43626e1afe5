-- wrk script: durable creates of a small task record.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local counter = 0
request = function()
  counter = counter + 1
  return wrk.format(nil, nil, nil, '{"title":"load ' .. counter .. '","status":"doing","priority":3}')
end
