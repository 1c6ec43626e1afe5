-- wrk script: get-by-id over the first N records (N from the RECORDS environment variable).
-- With TOKEN set, every request carries `Authorization: Bearer $TOKEN` (a session or API key).
local records = tonumber(os.getenv("RECORDS") or "10000")
local token = os.getenv("TOKEN")
if token and token ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. token
end
local counter = 0
request = function()
  counter = counter + 1
  local id = (counter % records) + 1
  return wrk.format("GET", "/api/tables/tasks/records/" .. id)
end
