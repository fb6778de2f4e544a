-- auth-with-password as the user bench/seed.mjs creates.
wrk.method = "POST"
wrk.path = "/api/collections/users/auth-with-password"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"identity":"reader@example.com","password":"reader-password"}'
