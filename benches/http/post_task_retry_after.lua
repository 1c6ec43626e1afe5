-- wrk script: durable creates of a small task record, by clients that honour `Retry-After`:
-- after a 503 the connection waits the second the server asks for before its next create.
-- wrk calls `delay` right after `response` on the same connection, so the one flag is that
-- connection's. With TOKEN set, every request carries `Authorization: Bearer $TOKEN`.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local token = os.getenv("TOKEN")
if token and token ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. token
end
local counter = 0
local refused = false
request = function()
  counter = counter + 1
  return wrk.format(nil, nil, nil, '{"title":"load ' .. counter .. '","status":"doing","priority":3}')
end
response = function(status, headers, body)
  refused = status == 503
end
delay = function()
  if refused then
    refused = false
    return 1000
  end
  return 0
end
