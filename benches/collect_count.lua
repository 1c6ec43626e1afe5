-- wrk script for the callgrind run of benches/collect_callgrind.sh: the same request mix as
-- analytics_collect.lua, but after STOP_AFTER responses wrk stops sending and touches DONE_FILE
-- (instruction counts per request need a known number of requests; wrk's -d only bounds the
-- time, and a stopped wrk still waits for it, so the script kills wrk once the file appears).
local agents = {
  "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
  "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Safari/605.1.15",
  "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1",
  "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36",
  "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
  "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.6 Mobile/15E148 Safari/604.1",
}
local referrers = { "https://www.google.com/", "https://news.ycombinator.com/item?id=1", "" }
local counter = 0
local responses = 0
local stop_after = tonumber(os.getenv("STOP_AFTER") or "20000")

request = function()
  counter = counter + 1
  local body = '{"p":"/page/' .. (counter % 100000) .. '","t":"A page","r":"' ..
    referrers[(counter % #referrers) + 1] .. '","sw":1920,"sh":1080}'
  return wrk.format("POST", nil, {
    ["Content-Type"] = "text/plain;charset=UTF-8",
    ["User-Agent"] = agents[(counter % #agents) + 1],
  }, body)
end

response = function(status, headers, body)
  responses = responses + 1
  if responses == stop_after then
    local done = io.open(os.getenv("DONE_FILE") or "/dev/null", "w")
    if done then done:write("done\n") done:close() end
    wrk.thread:stop()
  end
end
