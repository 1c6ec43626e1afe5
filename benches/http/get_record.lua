-- wrk script: get-by-id over the first N records (N from the RECORDS environment variable).
local records = tonumber(os.getenv("RECORDS") or "10000")
local counter = 0
request = function()
  counter = counter + 1
  local id = (counter % records) + 1
  return wrk.format("GET", "/api/tables/tasks/records/" .. id)
end
