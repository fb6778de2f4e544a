-- GET one post as its author, through the view rule `author.id = @request.auth.id`
-- (bench/seed.mjs makes the user, the post and the token).
local path = "/api/collections/posts/records/" .. os.getenv("BENCH_POST_ID")
wrk.headers["Authorization"] = os.getenv("BENCH_USER_TOKEN")
request = function()
    return wrk.format("GET", path)
end
