-- wrk script: durable creates of a small task record.
-- With TOKEN set, every request carries `Authorization: Bearer $TOKEN` (a session or API key).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local token = os.getenv("TOKEN")
if token and token ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. token
end
local counter = 0
request = function()
  counter = counter + 1
  return wrk.format(nil, nil, nil, '{"title":"load ' .. counter .. '","status":"doing","priority":3}')
end
